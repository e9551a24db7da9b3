"""Adversarial attacks on VAEs (paper Section 4): objectives of callables and a batched box-constrained L-BFGS;
beyond the paper, fixed-budget PGD attacks, AUDDC, r-robustness margins and an HMC defence."""

from seatbelt_tf.attacks.budget import (BUDGET_RECORD_KEYS, epsilon_grid, minimize_pgd, project_ball_box,
                                        run_budget_attack)
from seatbelt_tf.attacks.defence import defended_output_effect, defended_target_nll, hmc_chain, refine
from seatbelt_tf.attacks.lbfgs import minimize_batched, minimize_scipy
from seatbelt_tf.attacks.measures import auddc, auddc_per_pair, margin_summary, robustness_margins
from seatbelt_tf.attacks.tfp_lbfgs import minimize_tfp
from seatbelt_tf.attacks.objectives import (LAYER_SETS, MODES, NORM_EPSILON, ModelFns, RowWiseTargets,
                                            distortion_norm, latent_divergence, latent_objective, output_objective, select_layers)
from seatbelt_tf.attacks.protocol import (ATTACK_RECORD_KEYS, OPTIMIZERS, choose_factor_pairs, choose_pairs, lambda_grid,
                                          mark_display, merge_shards, run_attack)

__all__ = ["ATTACK_RECORD_KEYS", "BUDGET_RECORD_KEYS", "LAYER_SETS", "MODES", "NORM_EPSILON", "ModelFns",
           "OPTIMIZERS", "RowWiseTargets", "auddc", "auddc_per_pair", "choose_factor_pairs", "choose_pairs", "defended_output_effect",
           "defended_target_nll", "distortion_norm", "epsilon_grid", "hmc_chain", "lambda_grid", "latent_divergence",
           "latent_objective", "margin_summary", "mark_display", "merge_shards", "minimize_batched", "minimize_pgd",
           "minimize_scipy", "minimize_tfp", "output_objective", "project_ball_box", "refine", "robustness_margins", "run_attack",
           "run_budget_attack", "select_layers"]
