"""Data log-likelihoods log p(x|z) as pure tensor functions.

Paper: the first term of eqs. (2), (5), (9)-(11), E_q log p_theta(x|z). Binary data (dSprites) uses a
Bernoulli likelihood on {0, 1} pixels; continuous data scaled to [-1, 1] (paper Appendix C) uses a
diagonal Gaussian. Every function sums over all non-batch axes and returns one value per example.
"""

import tensorflow as tf
import tensorflow_probability as tfp

from seatbelt_tf.objectives.kl import as_dtype

tfd = tfp.distributions


def _event_ndims(x):
  return x.shape.rank - 1


def bernoulli_log_likelihood(x, logits):
  """log p(x|z) for a factorised Bernoulli likelihood.

  Args:
    x: `[batch, ...]` float tensor with values in {0, 1}.
    logits: `[batch, ...]` decoder logits, same shape as `x`.

  Returns:
    `[batch]` log-likelihoods, summed over pixels.
  """
  x = tf.convert_to_tensor(x, dtype=logits.dtype)
  dist = tfd.Independent(tfd.Bernoulli(logits=logits, dtype=x.dtype),
                         reinterpreted_batch_ndims=_event_ndims(x))
  return dist.log_prob(x)


def gaussian_log_likelihood(x, loc, scale):
  """log p(x|z) for a factorised Gaussian likelihood N(x; loc, scale^2).

  Args:
    x: `[batch, ...]` float tensor (paper: scaled to [-1, 1]).
    loc: `[batch, ...]` decoder means, same shape as `x`.
    scale: positive standard deviations broadcastable to `x` (a scalar is fine).

  Returns:
    `[batch]` log-likelihoods, summed over pixels.
  """
  x = tf.convert_to_tensor(x, dtype=loc.dtype)
  scale = tf.broadcast_to(as_dtype(scale, loc.dtype), tf.shape(loc))
  dist = tfd.Independent(tfd.Normal(loc=loc, scale=scale),
                         reinterpreted_batch_ndims=_event_ndims(x))
  return dist.log_prob(x)
