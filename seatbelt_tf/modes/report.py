"""--mode=report: the runs of --workdirs aggregated into one report with the paper's figures and tables."""

import time

from seatbelt_tf import evaluation


def report(config):
  """Aggregates the runs of --workdirs into `<workdir>/report.md` and figures (`evaluation.write_report`)."""
  config.validate()
  start = time.time()
  summary = evaluation.write_report(config.evaluation.workdirs, config.workdir)
  return {**summary, "mode": "report", "wall_time_s": time.time() - start}
