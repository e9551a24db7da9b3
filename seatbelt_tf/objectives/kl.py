"""Analytic Gaussian KL divergences and free bits, as pure tensor functions.

Paper: D_KL(q(z|x) || p(z)) in eq. (2) (term 2 + term 4) with the standard-normal prior p(z) = N(0, I), and the
per-layer conditional KLs D_KL(q(z^m|.) || p(z^m|z^{m+1})) of eq. (9). Free bits follow Kingma et al. (2016),
which the paper uses to make hierarchical models train (Section 3).
"""

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions


def as_dtype(value, dtype):
  """`value` as a tensor of `dtype`; a Python float is converted directly (tf.cast would round it to float32)."""
  if tf.is_tensor(value):
    return tf.cast(value, dtype)
  return tf.constant(value, dtype=dtype)


def gaussian_kl(loc, scale, prior_loc=0.0, prior_scale=1.0):
  """Per-dimension KL(N(loc, scale^2) || N(prior_loc, prior_scale^2)).

  Args:
    loc: `[batch, latent_dim]` posterior means.
    scale: `[batch, latent_dim]` posterior standard deviations (> 0).
    prior_loc: prior means, broadcastable to `loc` (default 0: p(z) = N(0, I)).
    prior_scale: prior standard deviations, broadcastable to `loc` (default 1).

  Returns:
    `[batch, latent_dim]` KL of each unit; sum over the last axis for the KL of the diagonal Gaussian.
  """
  prior_loc = tf.broadcast_to(as_dtype(prior_loc, loc.dtype), tf.shape(loc))
  prior_scale = tf.broadcast_to(as_dtype(prior_scale, loc.dtype), tf.shape(loc))
  return tfd.kl_divergence(tfd.Normal(loc, scale), tfd.Normal(prior_loc, prior_scale))


def free_bits_kl(kl_per_unit, free_bits):
  """The free-bits KL penalty sum_j max(free_bits, E_batch KL_j) (Kingma et al., 2016, eq. 15).

  Each unit's KL is averaged over the minibatch before the floor is applied, so a unit is only pushed towards
  the prior once it carries more than `free_bits` nats on average. With `free_bits=0` this is exactly the batch
  mean of the summed KL.

  Args:
    kl_per_unit: `[batch, latent_dim]` per-unit KL, e.g. from `gaussian_kl`.
    free_bits: float >= 0, nats per unit.

  Returns:
    scalar: the penalty for the batch (already averaged over the batch).
  """
  mean_kl = tf.reduce_mean(kl_per_unit, axis=0)
  if free_bits:
    mean_kl = tf.maximum(mean_kl, as_dtype(free_bits, mean_kl.dtype))
  return tf.reduce_sum(mean_kl)
