"""Representation-function front ends: metrics of an encoder given as a callable (live model or SavedModel).

The callable is the attacks' `encode_fn(x) -> [(loc, scale), ...]` (one pair per stochastic layer, bottom first):
`attacks.ModelFns(model).encode_fn` on a live model, `serving.SavedModelFns(path).encode_fn` on an export. The
representation of a hierarchy is its top layer z^L (paper Appendix J), or any layer on request.
"""

import keras
import numpy as np
import tensorflow as tf

from seatbelt_tf.metrics import mutual_info_gap as mig_lib


def encode_dataset(encode_fn, source, indices, batch_size=500, verbose=False):
  """Posterior parameters of the source's images at `indices`, batch by batch.

  Returns:
    list (one entry per layer, bottom first) of (loc `[n, d_i]`, scale `[n, d_i]`) float32 numpy arrays.
  """
  indices = np.asarray(indices, np.int64)
  bar = keras.utils.Progbar(len(indices), unit_name="image") if verbose else None
  parts = None
  for start in range(0, len(indices), batch_size):
    batch = indices[start:start + batch_size]
    params = encode_fn(source.tf_images(tf.constant(batch)))
    arrays = [(np.asarray(loc, np.float32), np.asarray(scale, np.float32)) for loc, scale in params]
    parts = [[a] for a in arrays] if parts is None else [p + [a] for p, a in zip(parts, arrays)]
    if bar is not None:
      bar.add(len(batch))
  return [(np.concatenate([a[0] for a in p]), np.concatenate([a[1] for a in p])) for p in parts]


def choose_points(source, num_points, seed):
  """`num_points` distinct indices drawn uniformly from the whole source (all of it when None or larger)."""
  if not getattr(source, "factor_sizes", ()):
    raise ValueError(f"Dataset {getattr(source, 'name', source)!r} has no ground-truth factors, so MIG cannot be "
                     "computed on it: use a dataset with factors (dsprites_procedural, dsprites, shapes3d).")
  n = source.num_examples
  if num_points is None or num_points >= n:
    return np.arange(n, dtype=np.int64)
  return np.sort(np.random.default_rng(seed).choice(n, size=num_points, replace=False)).astype(np.int64)


def compute_mig(encode_fn, source, method="histogram", num_points=10000, num_bins=20, num_samples=10000,
                layers="top", seed=0, batch_size=500, verbose=False):
  """MIG of an encoder on a dataset with ground-truth factors (`metrics.mig` on its posterior parameters).

  Args:
    encode_fn: x `[B, H, W, C]` -> [(loc, scale), ...] per layer.
    source: a `seatbelt_tf.data` source with `factors()`.
    method: "histogram" or "exact" (see `seatbelt_tf.metrics.mutual_info_gap`).
    num_points: points drawn uniformly from the whole dataset; None: the full factor grid (Chen et al.).
    num_bins, num_samples: the protocols' settings.
    layers: "top" (z^L, the paper's Appendix J) or "all" (every layer; keys `layer_1` ... `layer_L`).
    seed: seeds the points and the exact protocol's samples.

  Returns:
    the `mig` dict of the top layer, plus `layer` (1-based) and, with layers="all", `layers`: {"layer_i": dict}.
  """
  return compute_migs(encode_fn, source, (method,), num_points, num_bins, num_samples, layers, seed, batch_size,
                      verbose)[method]


def compute_migs(encode_fn, source, methods=mig_lib.METHODS, num_points=10000, num_bins=20, num_samples=10000,
                 layers="top", seed=0, batch_size=500, verbose=False):
  """`compute_mig` under several protocols, encoding the points once: {method: its `compute_mig` dict}."""
  if layers not in ("top", "all"):
    raise ValueError(f"layers={layers!r} must be 'top' (z^L) or 'all'.")
  for method in methods:  # before the encoding, which takes minutes on a full grid
    mig_lib.check_method(method)
  indices = choose_points(source, num_points, seed)
  params = encode_dataset(encode_fn, source, indices, batch_size, verbose)
  factors = source.factors(indices)
  names = list(source.factor_names)

  def one(i, method):
    loc, scale = params[i]
    out = mig_lib.mig(loc, factors, method=method, num_bins=num_bins, scales=scale, num_samples=num_samples,
                      seed=seed, factor_names=names, verbose=verbose)
    return {**out, "layer": i + 1}

  results = {}
  for method in methods:
    per_layer = [one(i, method) for i in (range(len(params)) if layers == "all" else [len(params) - 1])]
    top = dict(per_layer[-1])
    if layers == "all":
      top["layers"] = {f"layer_{r['layer']}": r for r in per_layer}
    results[method] = top
  return results
