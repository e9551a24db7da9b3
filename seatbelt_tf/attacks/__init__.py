"""Adversarial attacks on VAEs (paper Section 4): objectives of callables and a batched box-constrained L-BFGS."""

from seatbelt_tf.attacks.lbfgs import OPTIMIZERS, minimize_batched, minimize_scipy
from seatbelt_tf.attacks.objectives import (LAYER_SETS, MODES, NORM_EPSILON, ModelFns, distortion_norm,
                                            latent_divergence, latent_objective, output_objective, select_layers)
from seatbelt_tf.attacks.protocol import (ATTACK_RECORD_KEYS, choose_factor_pairs, choose_pairs, lambda_grid,
                                          mark_display, merge_shards, run_attack)

__all__ = ["ATTACK_RECORD_KEYS", "LAYER_SETS", "MODES", "NORM_EPSILON", "ModelFns", "OPTIMIZERS", "choose_factor_pairs", "choose_pairs", "lambda_grid",
           "mark_display", "merge_shards", "run_attack", "distortion_norm", "latent_divergence", "latent_objective",
           "minimize_batched", "minimize_scipy", "output_objective", "select_layers"]
