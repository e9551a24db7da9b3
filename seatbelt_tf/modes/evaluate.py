"""--mode=evaluate: held-out metrics of the latest checkpoint (or an export) and the evaluation suite."""

import os
import time

from seatbelt_tf import attacks as attacks_lib
from seatbelt_tf import evaluation
from seatbelt_tf import runs


def evaluate(config):
  """Evaluates the workdir's latest checkpoint (or, with --saved_model, an export).

  A checkpoint: held-out metrics to `results.json` (as after training), then the evaluation suite
  (`evaluation.run_suite`) to `<workdir>/evaluation/`. An export: the suite alone (no weight norms or per-unit
  KLs), on the same held-out images and seeds, so its numbers match the checkpoint's.
  """
  start = time.time()
  if config.export.saved_model:
    config, source, fns, run = runs.open_export(config)
    model, title = None, f"{fns.card.get('model_family', fns.card['model'])} (SavedModel)"
    results = {"mode": "evaluate", "saved_model": config.export.saved_model, "step": fns.card.get("step")}
  else:
    config, source, model = runs.open_trained_run(config)
    fns, run, title = attacks_lib.ModelFns(model), {}, runs.run_title(config)
    # Nothing is trained here: the training's own records of this step (its loop speed) stay in results.json.
    records = runs.training_records(config.workdir, int(model.optimizer.iterations.numpy()))
    results = runs.evaluate_and_record(config, model, source, start, records)
  suite = evaluation.run_suite(
      fns, source, runs.heldout_indices(config, source, run), config.evaluation,
      os.path.join(config.workdir, "evaluation"), title, model=model, kl_units=results.get("kl_units"),
      seed=run.get("seed", config.train.seed), batch_size=config.train.eval_batch_size,
      verbose=config.train.verbose > 0)
  summary = {"elbo_fixed_noise": suite["elbo"]["elbo"],
             "noise_median": {k: v["median"] for k, v in suite["noise"].items()}}
  if "mig" in suite:
    summary["mig"] = suite["mig"]["mig"]
  return {**results, "evaluation": summary, "wall_time_s": time.time() - start}
