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
# Samples per block of the mixture estimates: a [D, 64, B] slab of the [B, B, D] log densities at a time. At
# B = 2048, D = 10 on a 2-core CPU, 64 was fastest of 16-256 (docs/BENCHMARKS.md, benchmarks/estimator_blocks.py).
BLOCK_ROWS = 64


def gaussian_log_density_matrix(z, loc, scale):
  """All-pairs diagonal-Gaussian log densities, one per coordinate.

  Args:
    z: `[batch, latent_dim]` samples, row i drawn from component i.
    loc: `[batch, latent_dim]` component means.
    scale: `[batch, latent_dim]` component standard deviations (> 0).

  Returns:
    `[batch, batch, latent_dim]` tensor whose `[i, j, d]` entry is log N(z_id; loc_jd, scale_jd^2).
  """
  return _gaussian_log_density(z[:, None, :], loc[None, :, :], scale[None, :, :])


def _gaussian_log_density(z, loc, scale):
  """Elementwise log N(z; loc, scale^2) (broadcasting)."""
  return (-0.5 * tf.square((z - loc) / scale) - tf.math.log(scale)
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
  loc, scale, log_w, _ = _components_and_weights(z, loc, scale, dataset_size, method)
  return _mixture_estimates(tf.convert_to_tensor(z), loc, scale, log_w)


def _components_and_weights(z, loc, scale, dataset_size, method, global_params=None):
  """The mixture components `(loc, scale)` `[M, D]`, the log-weights and each sample's own component index `[B]`:
  the batch's own components (M = B) or, with `global_params`, the whole global batch's (M = G), of which this batch
  holds rows offset..offset+B (so its weight rows are those rows of the global weight matrix). MWS weights are all
  equal, so they come as one scalar; MSS weights as the `[B, M]` rows of `log_importance_weights`."""
  _check_method(method)
  z = tf.convert_to_tensor(z)
  if global_params is None:
    loc = tf.convert_to_tensor(loc, dtype=z.dtype)
    scale = tf.convert_to_tensor(scale, dtype=z.dtype)
    own = tf.range(tf.shape(z)[0])
  else:
    loc, scale, offset = global_params
    loc, scale = tf.cast(loc, z.dtype), tf.cast(scale, z.dtype)
    own = tf.cast(offset, tf.int32) + tf.range(tf.shape(z)[0])
  components = tf.shape(loc)[0]
  if method == "mws":
    return loc, scale, -tf.math.log(tf.cast(dataset_size, z.dtype) * tf.cast(components, z.dtype)), own
  return loc, scale, tf.gather(log_importance_weights(components, dataset_size, method, dtype=z.dtype), own), own


def _mixture_estimates(z, loc, scale, log_w, block_rows=BLOCK_ROWS):
  """log q(z_i) and log prod_d q(z_id) of eq. B.7 / B.15 (or MSS), row block by row block, with their gradient.

  Mathematically `logsumexp_j(log_w_ij + sum_d L_ijd)` and `sum_d logsumexp_j(log_w_ij + L_ijd)` with L the
  `[B, M, D]` tensor of `gaussian_log_density_matrix`, but that tensor is never built: the samples are taken
  `block_rows` at a time (a `[D, block_rows, M]` slab that stays in cache), and the gradient is written out
  (`tf.custom_gradient`) so the backward pass reuses the forward's per-coordinate normalisers instead of
  differentiating the log-sum-exps (one exponential per entry in each direction, no `[B, M, D]` tensors kept for
  the backward pass). docs/BENCHMARKS.md measures it against the dense form (`benchmarks/estimator_blocks.py`).

  With u_ijd = (z_id - loc_jd) / scale_jd, P_ij the softmax over j of the joint terms and Q_ijd that of each
  coordinate's, and g, h the upstream gradients of the two outputs:

      d/dz_id     = -sum_j (g_i P_ij + h_i Q_ijd) u_ijd / scale_jd
      d/dloc_jd   =  sum_i (g_i P_ij + h_i Q_ijd) u_ijd / scale_jd
      d/dscale_jd =  sum_i (g_i P_ij + h_i Q_ijd) (u_ijd^2 - 1) / scale_jd

  Args:
    z: `[B, D]` samples.
    loc, scale: `[M, D]` the mixture components.
    log_w: `[B, M]` log-weights, or one scalar for equal weights (no gradient flows to them).
    block_rows: samples per block.

  Returns:
    `(log_qz, log_qz_product)`, each `[B]`.
  """
  batch = tf.shape(z)[0]
  latent_dim = z.shape[-1]
  padded = (batch + block_rows - 1) // block_rows * block_rows
  # Rows past the batch are zeros, scored and dropped; their upstream gradient is zero, so they add nothing.
  z_padded = tf.pad(z, [[0, padded - batch], [0, 0]])
  if log_w.shape.rank == 0:  # equal weights: log-sum-exp(x + c) = log-sum-exp(x) + c
    log_qz, log_qz_product = _blocked_log_mixtures(z_padded, loc, scale, (), block_rows, latent_dim)
    return log_qz[:batch] + log_w, log_qz_product[:batch] + latent_dim * log_w
  log_w_padded = tf.pad(log_w, [[0, padded - batch], [0, 0]])
  log_qz, log_qz_product = _blocked_log_mixtures(z_padded, loc, scale, (log_w_padded,), block_rows, latent_dim)
  return log_qz[:batch], log_qz_product[:batch]


def _blocked_log_mixtures(z, loc, scale, weights, block_rows, latent_dim):
  """`_mixture_estimates` on a batch whose size is a multiple of `block_rows`, with `weights` `(log_w,)` or `()`
  for equal weights (see there)."""
  dtype = z.dtype

  @tf.custom_gradient
  def estimates(z, loc, scale, *weights):
    blocks = tf.shape(z)[0] // block_rows
    z_t = tf.transpose(z)  # [D, B]
    loc_t = tf.transpose(loc)[:, None, :]  # [D, 1, M]
    inv_t = tf.transpose(1.0 / scale)[:, None, :]
    log_norm_t = tf.transpose(tf.math.log(scale))[:, None, :] + tf.constant(0.5 * math.log(2.0 * math.pi), dtype)

    def block(k):
      """The standardised distances u `[D, R, M]`, log densities plus weights `[D, R, M]` and the joint `[R, M]`."""
      z_block = tf.slice(z_t, [0, k * block_rows], [latent_dim, block_rows])[:, :, None]
      u = (z_block - loc_t) * inv_t
      log_density = -0.5 * tf.square(u) - log_norm_t
      joint = tf.reduce_sum(log_density, axis=0)
      if not weights:
        return u, log_density, joint
      w_block = tf.slice(weights[0], [k * block_rows, 0], [block_rows, -1])
      return u, log_density + w_block[None], joint + w_block

    def forward(k):
      _, weighted, joint = block(k)
      return tf.reduce_logsumexp(joint, axis=1), tf.reduce_logsumexp(weighted, axis=2)

    log_qz, log_marginals = tf.map_fn(
        forward, tf.range(blocks),
        fn_output_signature=(tf.TensorSpec([block_rows], dtype), tf.TensorSpec([latent_dim, block_rows], dtype)))
    log_marginals = tf.reshape(tf.transpose(log_marginals, [1, 0, 2]), [latent_dim, -1])  # [D, B]
    log_qz = tf.reshape(log_qz, [-1])

    def grad(g_qz, g_product):
      def backward(k):
        u, weighted, joint = block(k)
        start = k * block_rows
        rows = lambda v: tf.slice(v, [start], [block_rows])  # pylint: disable=cell-var-from-loop
        p = tf.exp(joint - rows(log_qz)[:, None])  # [R, M]
        q = tf.exp(weighted - tf.slice(log_marginals, [0, start], [latent_dim, block_rows])[:, :, None])  # [D, R, M]
        g = rows(g_qz)[None, :, None] * p[None] + rows(g_product)[None, :, None] * q
        gu = g * u
        return (-tf.reduce_sum(gu * inv_t, axis=2), tf.reduce_sum(gu, axis=1),
                tf.reduce_sum(g * (tf.square(u) - 1.0), axis=1))

      g_z, g_loc, g_scale = tf.map_fn(
          backward, tf.range(blocks),
          fn_output_signature=(tf.TensorSpec([latent_dim, block_rows], dtype),
                               tf.TensorSpec([latent_dim, loc.shape[0]], dtype),
                               tf.TensorSpec([latent_dim, loc.shape[0]], dtype)))
      g_z = tf.transpose(tf.reshape(tf.transpose(g_z, [1, 0, 2]), [latent_dim, -1]))  # [B, D]
      inv = 1.0 / scale
      g_loc = tf.transpose(tf.reduce_sum(g_loc, axis=0)) * inv
      g_scale = tf.transpose(tf.reduce_sum(g_scale, axis=0)) * inv
      return (g_z, g_loc, g_scale) + (None,) * len(weights)

    return (log_qz, tf.reduce_sum(log_marginals, axis=0)), grad

  return estimates(z, loc, scale, *weights)


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
  z = tf.convert_to_tensor(z)
  components_loc, components_scale, log_w, own = _components_and_weights(z, loc, scale, dataset_size, method,
                                                                         global_params)
  log_qz, log_qz_product = _mixture_estimates(z, components_loc, components_scale, log_w)
  own_loc, own_scale = tf.gather(components_loc, own), tf.gather(components_scale, own)
  log_qz_given_x = tf.reduce_sum(_gaussian_log_density(z, own_loc, own_scale), axis=1)
  if log_pz is None:
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
