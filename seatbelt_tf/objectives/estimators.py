"""Minibatch estimators of the aggregate posterior q(z) and of its marginals (paper Section 3.1, Appendix B).

The aggregate posterior q(z) = 1/N sum_n q(z|x_n) (the "average encoding distribution" of eq. 3) depends on the
whole dataset. Two estimators evaluate it for the samples z_i ~ q(z|x_i) of a minibatch {x_1..x_B}:

* **MWS**, minibatch weighted sampling (paper eq. B.7; eq. B.15 for the top layer of a hierarchy, where the
  components are q(z^L|z^{L-1}_j) instead of q(z|x_j)):

      log q(z_i) ~= logsumexp_j log q(z_i|x_j) - log(N M),   M = B.

* **MSS**, minibatch stratified sampling (Chen et al. 2018, Appendix C.2): with M = B - 1,

      q(z_i) ~= sum_j W_ij q(z_i|x_j),   W_ii = 1/N,  W_i,(i+1 mod B) = (N - M)/(N M),  W_ij = 1/M otherwise.

  Every row of W sums to 1, and since the other batch members are uniform draws from the remaining N - 1 points
  the inner estimate is unbiased for q(z_i). (The widely copied reference code fills `W.view(-1)[::M+1]`, a stride
  of B, which walks down the first column instead of the diagonal; this module builds W by index.)

The same weights applied per coordinate give the estimate of log prod_j q(z_j) used by the total correlation.
"""

import math

import tensorflow as tf

ESTIMATORS = ("mws", "mss")


def gaussian_log_density_matrix(z, loc, scale):
  """All-pairs diagonal-Gaussian log densities, one per coordinate.

  Args:
    z: `[batch, latent_dim]` samples, row i drawn from component i.
    loc: `[batch, latent_dim]` component means.
    scale: `[batch, latent_dim]` component standard deviations (> 0).

  Returns:
    `[batch, batch, latent_dim]` tensor whose `[i, j, d]` entry is log N(z_id; loc_jd, scale_jd^2).
  """
  z = z[:, None, :]
  loc = loc[None, :, :]
  scale = scale[None, :, :]
  standardized = (z - loc) / scale
  return (-0.5 * tf.square(standardized) - tf.math.log(scale)
          - tf.constant(0.5 * math.log(2.0 * math.pi), dtype=z.dtype))


def log_importance_weights(batch_size, dataset_size, method="mws", dtype=tf.float32):
  """Log of the `[batch, batch]` weight matrix of an estimator (see the module docstring).

  Args:
    batch_size: B, the minibatch size (>= 2).
    dataset_size: N, the number of examples the minibatch was drawn from (>= B).
    method: "mws" (every weight 1/(N B)) or "mss" (stratified weights; rows sum to 1).
    dtype: float dtype of the result.

  Returns:
    `[batch, batch]` tensor of log-weights; row i weights the components used for sample i.
  """
  _check_method(method)
  batch_size = tf.convert_to_tensor(batch_size, dtype=tf.int32)
  n = tf.cast(dataset_size, dtype)
  b = tf.cast(batch_size, dtype)
  if method == "mws":
    return tf.fill([batch_size, batch_size], -tf.math.log(n * b))
  m = b - 1.0
  row = tf.range(batch_size)[:, None]
  col = tf.range(batch_size)[None, :]
  own = tf.equal(row, col)
  stratum = tf.equal(col, tf.math.floormod(row + 1, batch_size))
  weights = tf.where(own, 1.0 / n, tf.where(stratum, (n - m) / (n * m), 1.0 / m))
  return tf.math.log(tf.cast(weights, dtype))


def log_qz_minibatch(z, loc, scale, dataset_size, method="mws"):
  """Minibatch estimates of log q(z_i) and log prod_d q(z_id) for each sample of a batch.

  Paper eq. B.7 (MWS; B.15 for q(z^L) with components q(z^L|z^{L-1}_j)) and Chen et al. (2018) MSS.

  Args:
    z: `[batch, latent_dim]` samples, z_i ~ q(z|x_i).
    loc: `[batch, latent_dim]` posterior means of the batch (the mixture components).
    scale: `[batch, latent_dim]` posterior standard deviations of the batch.
    dataset_size: N, the size of the dataset the batch was drawn from (a Python int or scalar tensor).
    method: "mws" or "mss".

  Returns:
    `(log_qz, log_qz_product)`, each `[batch]`: the estimates of log q(z_i) and of sum_d log q(z_id).
  """
  log_density, log_w, _ = _log_density_and_weights(z, loc, scale, dataset_size, method)
  return _mixture_estimates(log_density, log_w)


def _log_density_and_weights(z, loc, scale, dataset_size, method, global_params=None):
  """The `[B, M, D]` log densities of the samples under the mixture components and the `[B, M]` log-weights; the
  components are the batch's own (M = B) or, with `global_params`, the whole global batch's (M = G), of which this
  batch holds rows offset..offset+B (so its weight rows are those rows of the global weight matrix)."""
  _check_method(method)
  z = tf.convert_to_tensor(z)
  if global_params is None:
    loc = tf.convert_to_tensor(loc, dtype=z.dtype)
    scale = tf.convert_to_tensor(scale, dtype=z.dtype)
    log_density = gaussian_log_density_matrix(z, loc, scale)  # [i, j, d]
    log_w = log_importance_weights(tf.shape(z)[0], dataset_size, method, dtype=z.dtype)  # [i, j]
    return log_density, log_w, tf.range(tf.shape(z)[0])
  global_loc, global_scale, offset = global_params
  log_density = gaussian_log_density_matrix(z, tf.cast(global_loc, z.dtype), tf.cast(global_scale, z.dtype))
  own = tf.cast(offset, tf.int32) + tf.range(tf.shape(z)[0])
  log_w = tf.gather(log_importance_weights(tf.shape(global_loc)[0], dataset_size, method, dtype=z.dtype), own)
  return log_density, log_w, own


def _mixture_estimates(log_density, log_w):
  log_qz = tf.reduce_logsumexp(tf.reduce_sum(log_density, axis=2) + log_w, axis=1)
  log_qz_product = tf.reduce_sum(tf.reduce_logsumexp(log_density + log_w[:, :, None], axis=1), axis=1)
  return log_qz, log_qz_product


def estimator_offsets(latent_dim, dataset_size, method="mws"):
  """How far the estimator's terms sit from the batch mixture's, per sample: {"mi", "tc", "dim_kl": float}.

  MWS normalises each mixture by N M instead of M (eq. B.7), so log q(z) and each log q(z_j) sit log N below the
  batch mixture's: the estimated MI sits log N above it, the TC (D - 1) log N above and the dimension-wise KL
  D log N below (the three offsets cancel in their sum). MSS weights rows that sum to 1: no offset. Subtracting
  these gives values a reader can interpret (a TC near 0 for a factorised code); the loss may use either, since
  they differ by a constant.

  Args:
    latent_dim: D, the width of the decomposed layer.
    dataset_size: N.
    method: "mws" or "mss".
  """
  _check_method(method)
  log_n = math.log(dataset_size) if method == "mws" else 0.0
  return {"mi": log_n, "tc": (latent_dim - 1) * log_n, "dim_kl": -latent_dim * log_n}


def decompose_kl(z, loc, scale, dataset_size, method="mws", log_pz=None, global_params=None):
  """Per-sample terms of the decomposition of the KL in eqs. (2)-(3) (Chen et al. 2018, eq. 2).

      log q(z|x) - log p(z) = [log q(z|x) - log q(z)]                 index-code MI (term 2 of eq. 2)
                            + [log q(z) - log prod_j q(z_j)]          total correlation (term A of eq. 3)
                            + [log prod_j q(z_j) - log p(z)]          dimension-wise KL (term B of eq. 3)

  The three terms add up to log q(z_i|x_i) - log p(z_i) exactly, whatever the estimator.

  Args:
    z: `[batch, latent_dim]` samples z_i ~ q(z|x_i) (for a hierarchy: z^L_i ~ q(z^L|z^{L-1}_i)).
    loc: `[batch, latent_dim]` posterior means.
    scale: `[batch, latent_dim]` posterior standard deviations.
    dataset_size: N.
    method: "mws" or "mss".
    log_pz: optional `[batch]` prior log density of `z`; defaults to the standard normal.
    global_params: optional (loc `[G, D]`, scale `[G, D]`, offset) of the global batch this batch is rows
      offset..offset+B of (tf.distribute replicas: `seatbelt_tf.distribute.gather_components`); the samples are
      then scored against all G components, exactly as one device would on the global batch.

  Returns:
    dict of `[batch]` tensors: `mi`, `tc`, `dim_kl`, and the estimates `log_qz`, `log_qz_product`,
    `log_qz_given_x`, `log_pz`.
  """
  log_density, log_w, own = _log_density_and_weights(z, loc, scale, dataset_size, method, global_params)
  log_qz, log_qz_product = _mixture_estimates(log_density, log_w)
  log_qz_given_x = tf.gather(tf.reduce_sum(log_density, axis=2), own[:, None], axis=1, batch_dims=1)[:, 0]
  if log_pz is None:
    z = tf.convert_to_tensor(z)
    log_pz = tf.reduce_sum(-0.5 * tf.square(z) - tf.constant(0.5 * math.log(2.0 * math.pi), dtype=z.dtype), axis=1)
  return {
      "mi": log_qz_given_x - log_qz,
      "tc": log_qz - log_qz_product,
      "dim_kl": log_qz_product - log_pz,
      "log_qz": log_qz,
      "log_qz_product": log_qz_product,
      "log_qz_given_x": log_qz_given_x,
      "log_pz": log_pz,
  }


def _check_method(method):
  if method not in ESTIMATORS:
    raise ValueError(f"Unknown estimator {method!r}: choose one of {', '.join(ESTIMATORS)} "
                     "(minibatch weighted or stratified sampling).")
