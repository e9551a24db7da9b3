"""--mode=export: the latest checkpoint as a new SavedModel version for TF Serving."""

import json
import os
import time

from seatbelt_tf import runs
from seatbelt_tf import serving


def export(config):
  """Exports the workdir's latest checkpoint as a new SavedModel version for TF Serving (`seatbelt_tf.serving`).

  Writes `<export_dir>/<model_name>/<version>/` atomically (default export_dir `<workdir>/export`, model_name the
  model family), with `model_card.json` holding the run's settings and its held-out `results.json` metrics.
  """
  start = time.time()
  config, source, model = runs.open_trained_run(config)
  export_dir = config.export.export_dir or os.path.join(config.workdir, "export")
  model_name = config.export.model_name or config.model.model
  metrics = None
  results_path = os.path.join(config.workdir, "results.json")
  if os.path.isfile(results_path):
    with open(results_path) as f:
      metrics = json.load(f)
  step = int(model.optimizer.iterations.numpy())
  card = serving.model_card(model, source.data_range, config=config, metrics=metrics, step=step)
  path = serving.export_model(model, source.data_range, export_dir, model_name, card)
  return {"export_path": path, "version": int(os.path.basename(path)), "step": step,
          "wall_time_s": time.time() - start, "mode": "export"}
