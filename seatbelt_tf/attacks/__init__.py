"""Adversarial attacks on VAEs (paper Section 4): objectives of callables and a batched box-constrained L-BFGS."""

from seatbelt_tf.attacks.lbfgs import OPTIMIZERS, minimize_batched, minimize_scipy
from seatbelt_tf.attacks.objectives import (LAYER_SETS, MODES, distortion_norm, latent_divergence, latent_objective,
                                            model_fns, output_objective, select_layers)

__all__ = ["LAYER_SETS", "MODES", "OPTIMIZERS", "distortion_norm", "latent_divergence", "latent_objective",
           "minimize_batched", "minimize_scipy", "model_fns", "output_objective", "select_layers"]
