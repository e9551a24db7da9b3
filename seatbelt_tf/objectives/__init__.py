"""Objectives as pure tensor functions: likelihoods, KLs, the minibatch estimators of q(z), hierarchy terms."""

from seatbelt_tf.objectives.estimators import (ESTIMATORS, decompose_kl, estimator_offsets,
                                               gaussian_log_density_matrix, log_importance_weights,
                                               log_qz_minibatch)
from seatbelt_tf.objectives.hierarchy import beta_tc_loss, hierarchy_kl_terms, warmup_beta
from seatbelt_tf.objectives.kl import as_dtype, free_bits_kl, gaussian_kl
from seatbelt_tf.objectives.likelihoods import bernoulli_log_likelihood, gaussian_log_likelihood

__all__ = [
    "ESTIMATORS", "as_dtype", "bernoulli_log_likelihood", "beta_tc_loss", "decompose_kl", "estimator_offsets",
    "free_bits_kl", "gaussian_kl",
    "gaussian_log_density_matrix", "gaussian_log_likelihood", "hierarchy_kl_terms", "log_importance_weights",
    "log_qz_minibatch", "warmup_beta",
]
