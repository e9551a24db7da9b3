"""The Mutual Information Gap (MIG; Chen et al. 2018; paper Appendix J, eq. J.1), under two protocols.

    MIG = 1/K sum_k 1/H(v_k) [ I(z_{j*}; v_k) - max_{j != j*} I(z_j; v_k) ],   j* = argmax_j I(z_j; v_k)   (J.1)

(the paper writes the sum; we report the mean over factors, as Chen et al. and disentanglement_lib do, so MIG lies
in [0, 1]). Published MIG values depend on how I(z_j; v_k) is estimated, so both common protocols are here:

* `histogram` (disentanglement_lib): the codes are the posterior means; each unit is discretised into `num_bins`
  equal-width bins spanning its observed range; I and H are discrete (plug-in) estimates in nats. It can never
  exceed what the binning resolves: a factor with more classes than bins loses information (dSprites orientation
  has 40 classes, so with 20 bins even a perfect code scores log 20 / log 40 on it).
* `exact` (Chen et al. 2018): z_j is sampled from q(z_j|x) (the posterior means and scales) and the entropies are
  estimated from those samples with the posterior mixture,
      H(z_j) = -E log q(z_j),          q(z_j) = 1/N sum_n q(z_j|x_n),
      H(z_j|v_k) = -E log q(z_j|v_k),  q(z_j|v_k) = mixture over the x_n whose factor k equals the sample's,
  so I(z_j; v_k) = H(z_j) - H(z_j|v_k). Chen et al. evaluate it over the full factor grid; `compute_mig` does too
  unless told to subsample. The cost is `num_samples` x N log-densities per unit (plus a fraction for the
  conditionals), computed in blocks.

H(v_k) is the plug-in entropy of the factor's classes (log |V_k| on a full grid). Factors that never vary in the
given data (H = 0) cannot be scored; they are left out and listed under `constant_factors`.
"""

import math

import numpy as np
import tensorflow as tf

METHODS = ("histogram", "exact")
# The exact protocol's blocks: samples per XLA call, components per step of its streamed log-sum-exp.
SAMPLE_BLOCK = 256
COMPONENT_BLOCK = 1024
# The smallest calls (`block_shapes`): fewer samples or components are padded up to these.
MIN_SAMPLE_BLOCK = 32
MIN_COMPONENT_BLOCK = 128


def check_method(method):
  if method not in METHODS:
    raise ValueError(f"Unknown MIG method {method!r}: choose one of {', '.join(METHODS)}.")


def _check_inputs(codes, factors):
  codes = np.asarray(codes)
  factors = np.asarray(factors)
  if codes.ndim != 2 or factors.ndim != 2:
    raise ValueError(f"codes must be [N, D] and factors [N, K]; got shapes {codes.shape} and {factors.shape}.")
  if codes.shape[0] != factors.shape[0]:
    raise ValueError(f"codes and factors must describe the same N points; got {codes.shape[0]} codes and "
                     f"{factors.shape[0]} factor rows.")
  if codes.shape[0] < 2:
    raise ValueError(f"MIG needs at least 2 points, got {codes.shape[0]}.")
  if not np.all(np.isfinite(codes)):
    raise ValueError("codes contain NaN or Inf: the encoder's output is not usable (check the checkpoint).")
  return codes, factors


def _labels(column):
  """Any discrete column -> (int labels 0..V-1, V)."""
  values, labels = np.unique(column, return_inverse=True)
  return labels.reshape(-1).astype(np.int64), len(values)


def discretize(codes, num_bins=20):
  """Histogram discretisation per unit (disentanglement_lib): `[N, D]` floats -> int `[N, D]` bins in 0..num_bins-1.

  Each unit gets `num_bins` equal-width bins over its own [min, max]; a constant unit falls in one bin.
  """
  if num_bins < 2:
    raise ValueError(f"num_bins={num_bins} must be >= 2.")
  codes = np.asarray(codes, dtype=np.float64)
  out = np.zeros(codes.shape, dtype=np.int64)
  for j in range(codes.shape[1]):
    edges = np.histogram_bin_edges(codes[:, j], bins=num_bins)
    out[:, j] = np.clip(np.digitize(codes[:, j], edges[1:-1]), 0, num_bins - 1)
  return out


def discrete_entropy(labels):
  """Plug-in entropy in nats of each column of a discrete `[N, K]` array: `[K]`."""
  labels = np.asarray(labels)
  out = np.zeros(labels.shape[1])
  for k in range(labels.shape[1]):
    _, counts = np.unique(labels[:, k], return_counts=True)
    p = counts / counts.sum()
    out[k] = -np.sum(p * np.log(p))
  return out


def discrete_mutual_info(a, b):
  """Plug-in mutual information in nats between every column of discrete `[N, D]` `a` and `[N, K]` `b`: `[D, K]`."""
  a, b = np.asarray(a), np.asarray(b)
  n = a.shape[0]
  out = np.zeros((a.shape[1], b.shape[1]))
  b_labels = [_labels(b[:, k]) for k in range(b.shape[1])]
  for j in range(a.shape[1]):
    la, va = _labels(a[:, j])
    pa = np.bincount(la, minlength=va) / n
    for k, (lb, vb) in enumerate(b_labels):
      joint = np.bincount(la * vb + lb, minlength=va * vb).reshape(va, vb) / n
      pb = joint.sum(axis=0)
      nz = joint > 0
      out[j, k] = np.sum(joint[nz] * np.log(joint[nz] / np.outer(pa, pb)[nz]))
  return np.maximum(out, 0.0)


@tf.function(jit_compile=True, autograph=False, reduce_retracing=True)
def _streamed_log_density(z, loc, inv_scale, log_scale, mask):
  """log sum_n N(z_sj; loc_nj, scale_nj) over one chunk of components, streamed block by block.

  Args:
    z: `[S, D]` samples.
    loc, inv_scale, log_scale: `[blocks, n, D]` the chunk's components (loc, 1 / scale, log scale) in blocks of n.
    mask: `[blocks, n]` 0 for a component, -inf for padding.

  Returns:
    `[S, D]` float32: the log of the sum over the chunk's components (-inf where every term underflows).
  """
  dtype = z.dtype

  def body(k, top, total):
    x = -0.5 * tf.square((z[:, None, :] - loc[k][None]) * inv_scale[k][None]) - log_scale[k][None]
    x += mask[k][None, :, None]
    new_top = tf.maximum(top, tf.reduce_max(x, axis=1))
    shift = tf.where(tf.math.is_finite(new_top), new_top, tf.zeros_like(new_top))
    total = total * tf.exp(top - shift) + tf.reduce_sum(tf.exp(x - shift[:, None, :]), axis=1)
    return k + 1, new_top, total

  start = (tf.constant(0), tf.fill(tf.shape(z), tf.constant(-np.inf, dtype)), tf.zeros_like(z))
  _, top, total = tf.while_loop(lambda k, *_: k < tf.shape(loc)[0], body, start)
  shift = tf.where(tf.math.is_finite(top), top, tf.zeros_like(top))
  return shift + tf.math.log(total)


def _power_of_two_at_least(count, floor):
  return max(floor, 1 << max(0, int(count) - 1).bit_length())


def block_shapes(s_count, n_count, dim, block_elements=1 << 24):
  """`log_mixture_density`'s call shapes: (samples per call, components per block, blocks per call).

  The full shapes (256 samples, blocks of 1024 components, as many blocks as `block_elements` allows) serve large
  problems; S and N below them shrink the call to the next power of two (at least 32 samples and 128 components),
  so a 96-point problem scores a 128 x 128 slab instead of padding up to 256 x ~10^4 (its cost was the padding's).
  """
  s_full = max(1, min(SAMPLE_BLOCK, block_elements // dim))
  s_block = min(s_full, _power_of_two_at_least(s_count, MIN_SAMPLE_BLOCK))
  n_full = max(1, min(COMPONENT_BLOCK, block_elements // (dim * s_block)))
  n_block = min(n_full, _power_of_two_at_least(n_count, MIN_COMPONENT_BLOCK))
  blocks_full = max(1, block_elements // (dim * s_block * n_block))
  blocks = min(blocks_full, _power_of_two_at_least(-(-n_count // n_block), 1))
  return s_block, n_block, blocks


def log_mixture_density(z, loc, scale, block_elements=1 << 24, progress=None):
  """log (1/N) sum_n N(z_sj; loc_nj, scale_nj) per unit: z `[S, D]`, loc/scale `[N, D]` -> float64 `[S, D]`.

  One XLA call scores 256 samples against a chunk of about `block_elements` / (256 x D) components, streaming a
  running log-sum-exp over blocks of 1024 of them (a slab that stays in cache; nothing of size S x N is built);
  the chunks' results are combined in float64. Samples and components are padded up to the call's shapes, which
  depend on D and on S and N only through `block_shapes`' powers of two, so a few programs are compiled per D:
  the full-size one for large problems (the full grid) and smaller ones for small S or N, which would otherwise
  pay for a whole padded chunk. `progress` (a `keras.utils.Progbar` counting sample-component pairs) advances
  chunk by chunk. docs/BENCHMARKS.md ("MIG on the full procedural dSprites grid") measures it.
  """
  z = np.asarray(z, np.float32)
  loc, scale = np.asarray(loc, np.float32), np.asarray(scale, np.float32)
  s_count, dim = z.shape
  n_count = loc.shape[0]
  s_block, n_block, blocks = block_shapes(s_count, n_count, dim, block_elements)
  n_chunk = blocks * n_block
  padded_n = -(-n_count // n_chunk) * n_chunk

  def chunks(values, fill):
    padded = np.full((padded_n,) + values.shape[1:], fill, np.float32)
    padded[:n_count] = values
    return padded.reshape((-1, blocks, n_block) + values.shape[1:])

  arrays = (chunks(loc, 0.0), chunks(1.0 / scale, 1.0), chunks(np.log(scale), 0.0),
            chunks(np.zeros(n_count, np.float32), -np.inf))
  comps = [tuple(tf.constant(a[c]) for a in arrays) for c in range(arrays[0].shape[0])]  # once, not per sample block
  out = np.full((s_count, dim), -np.inf)
  for s0 in range(0, s_count, s_block):
    rows = min(s_block, s_count - s0)
    zs = np.zeros((s_block, dim), np.float32)
    zs[:rows] = z[s0:s0 + rows]
    zs = tf.constant(zs)
    acc = np.full((s_block, dim), -np.inf)
    for c, chunk in enumerate(comps):
      part = _streamed_log_density(zs, *chunk)
      acc = np.logaddexp(acc, part.numpy().astype(np.float64))
      if progress is not None:
        progress.add(rows * (min(n_chunk, n_count - c * n_chunk)))
    out[s0:s0 + rows] = acc[:rows]
  return out - 0.5 * math.log(2 * math.pi) - math.log(n_count)


def gaussian_mutual_info(loc, scale, factors, num_samples=10000, seed=0, verbose=False):
  """I(z_j; v_k) in nats for Gaussian posteriors (the `exact` protocol, module docstring): `[D, K]`.

  Args:
    loc, scale: `[N, D]` posterior means and standard deviations of the N points.
    factors: `[N, K]` discrete factor classes of the same points.
    num_samples: points whose posterior sample estimates the entropies (all N when N is smaller).
    seed: seeds the choice of points and the posterior samples.
    verbose: a progress bar over the sample-component pairs (the full grid takes minutes).
  """
  loc = np.asarray(loc, np.float64)
  scale = np.asarray(scale, np.float64)
  if loc.shape != scale.shape:
    raise ValueError(f"loc and scale must have the same shape; got {loc.shape} and {scale.shape}.")
  if not np.all(scale > 0):
    raise ValueError("scale must be positive everywhere (posterior standard deviations).")
  rng = np.random.default_rng(seed)
  n = loc.shape[0]
  chosen = np.sort(rng.choice(n, size=min(num_samples, n), replace=False))
  z = loc[chosen] + scale[chosen] * rng.standard_normal((len(chosen), loc.shape[1]))
  progress = None
  if verbose:  # exact count: marginal pairs S*N plus, per factor and class, (samples in it) x (points in it)
    import keras  # pylint: disable=g-import-not-at-top
    labels = [_labels(factors[:, k])[0] for k in range(factors.shape[1])]
    total = len(chosen) * n + sum(int(np.sum(np.bincount(lab[chosen], minlength=lab.max() + 1) * np.bincount(lab)))
                                  for lab in labels)
    progress = keras.utils.Progbar(total, unit_name="pair")
  marginal = -log_mixture_density(z, loc, scale, progress=progress).mean(axis=0)  # H(z_j), [D]
  out = np.zeros((loc.shape[1], factors.shape[1]))
  for k in range(factors.shape[1]):
    labels, num_values = _labels(factors[:, k])
    conditional = np.zeros(loc.shape[1])
    for v in range(num_values):
      members = labels == v
      samples = members[chosen]
      if not samples.any():
        continue
      conditional -= log_mixture_density(z[samples], loc[members], scale[members], progress=progress).sum(axis=0)
    out[:, k] = marginal - conditional / len(chosen)  # H(z_j) - H(z_j | v_k)
  return np.maximum(out, 0.0)


def mig(codes, factors, method="histogram", num_bins=20, scales=None, num_samples=10000, seed=0,
        factor_names=None, verbose=False):
  """MIG (eq. J.1) of codes against ground-truth factors.

  Args:
    codes: `[N, D]` representations: the posterior means (of z^L in a hierarchy).
    factors: `[N, K]` discrete ground-truth factor classes of the same points.
    method: "histogram" (disentanglement_lib) or "exact" (Chen et al. 2018); module docstring.
    num_bins: bins per unit for "histogram".
    scales: `[N, D]` posterior standard deviations, required by "exact".
    num_samples: posterior samples that estimate the entropies for "exact".
    seed: seeds the "exact" samples.
    factor_names: K names for `per_factor` (default "factor_0", ...).
    verbose: a progress bar for the "exact" protocol.

  Returns:
    dict: `mig` (mean normalised gap over the factors that vary), `per_factor` {name: gap / H(v_k)},
    `mutual_info` (`[D][K]` nats), `factor_entropy` ({name: H(v_k)}), `best_unit` ({name: j*}),
    `constant_factors` (names left out), `factor_names` (the K names in the order of `mutual_info`'s columns:
    the dicts' keys are sorted when written as JSON), `method`, `num_points`.
  """
  codes, factors = _check_inputs(codes, factors)
  check_method(method)
  if codes.shape[1] < 2:
    raise ValueError(f"MIG needs at least 2 code units (the gap is between the best two); got {codes.shape[1]}.")
  names = list(factor_names) if factor_names is not None else [f"factor_{k}" for k in range(factors.shape[1])]
  if len(names) != factors.shape[1]:
    raise ValueError(f"{len(names)} factor_names for {factors.shape[1]} factor columns.")
  if method == "histogram":
    info = discrete_mutual_info(discretize(codes, num_bins), factors)
  else:
    if scales is None:
      raise ValueError("method='exact' needs scales: the [N, D] posterior standard deviations of the codes.")
    info = gaussian_mutual_info(codes, scales, factors, num_samples=num_samples, seed=seed, verbose=verbose)
  entropy = discrete_entropy(factors)
  per_factor, best, constant = {}, {}, []
  for k, name in enumerate(names):
    if entropy[k] <= 1e-12:
      constant.append(name)
      continue
    order = np.argsort(info[:, k])[::-1]
    per_factor[name] = float((info[order[0], k] - info[order[1], k]) / entropy[k])
    best[name] = int(order[0])
  if not per_factor:
    raise ValueError("No factor varies over the given points, so MIG is undefined: evaluate on more points.")
  return {"mig": float(np.mean(list(per_factor.values()))), "per_factor": per_factor,
          "mutual_info": info.tolist(), "factor_entropy": {n: float(h) for n, h in zip(names, entropy)},
          "best_unit": best, "constant_factors": constant, "factor_names": names, "method": method,
          "num_points": int(codes.shape[0])}
