"""Evaluation beyond the losses: ELBO without beta, noise robustness, weight norms, samples, traversals, the
per-model suite (`run_suite`) and multi-run reports (`write_report`); statistics over seeds (`seeds`, numpy only);
which latent units are active (`units`, numpy only).

Names are imported on first use, as in the top-level package: the numpy-only `seeds` and `units`, and the
campaign's file-only scripts that use them (launch/reproduction_tables.py, launch/collect_attacks.py,
launch/collect_reproduction.py), then load without TensorFlow.
"""

import importlib

# Public functions and the submodule that holds each.
_FUNCTIONS = {"fixed_noise_elbo": "measures", "noise_robustness": "measures", "samples": "measures",
              "traversals": "measures", "weight_norms": "measures", "run_suite": "suite", "find_runs": "report",
              "write_report": "report"}
SUBMODULES = ("history", "measures", "plots", "report", "seeds", "suite", "units")

__all__ = [*_FUNCTIONS, *SUBMODULES]


def __getattr__(name):
  if name in _FUNCTIONS:
    return getattr(importlib.import_module(f"seatbelt_tf.evaluation.{_FUNCTIONS[name]}"), name)
  if name in SUBMODULES:
    return importlib.import_module(f"seatbelt_tf.evaluation.{name}")
  raise AttributeError(f"module 'seatbelt_tf.evaluation' has no attribute {name!r}")
