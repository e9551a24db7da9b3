"""--mode=tune: a Keras Tuner search (`seatbelt_tf.tuning`)."""

import os
import time

from seatbelt_tf import runs
from seatbelt_tf import tuning


def tune(config):
  """Runs (or resumes) a Keras Tuner search from the settings of `config` (`seatbelt_tf.tuning`)."""
  start = time.time()
  config.validate()
  config, source = runs.open_source(config)
  os.makedirs(config.workdir, exist_ok=True)
  summary = tuning.run_search(config, source)
  return {**summary, "mode": "tune", "wall_time_s": time.time() - start}
