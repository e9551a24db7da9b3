"""seatbelt_tf: hierarchical disentangled VAEs (VAE, beta-TCVAE, beta-TC DLGM, Seatbelt-VAE) in TensorFlow/Keras,
their robustness to adversarial attack, and SavedModel export of their encoders.

Paper: "Disentangling Improves VAEs' Robustness to Adversarial Attacks" (Seatbelt-VAE).
"""

__version__ = "0.1.0"

import importlib

# Subpackages reachable as attributes (`seatbelt_tf.data`, ...), imported on first use.
SUBPACKAGES = ("attacks", "config", "data", "evaluation", "health", "metrics", "models", "modes", "nn", "objectives",
               "runs", "scores", "serving", "tuning")

__all__ = ["__version__", "log_qz_minibatch", *SUBPACKAGES]


def __getattr__(name):
  # Lazy, so that `python -m seatbelt_tf.launch` can configure TensorFlow's logging before TensorFlow loads.
  if name == "log_qz_minibatch":
    from seatbelt_tf.objectives.estimators import log_qz_minibatch  # pylint: disable=g-import-not-at-top
    return log_qz_minibatch
  if name in SUBPACKAGES:
    return importlib.import_module(f"seatbelt_tf.{name}")
  raise AttributeError(f"module 'seatbelt_tf' has no attribute {name!r}")
