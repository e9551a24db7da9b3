"""Evaluations of a trained model beyond its training losses (paper Sections 5.1, 5.3, 5.4; Appendices D-F, I).

Each takes the callables of `attacks.ModelFns` (live model) or `serving.SavedModelFns` (export), so the numbers
are the same on both, and returns plain numpy/float results:

* `fixed_noise_elbo`: the held-out ELBO without beta (eqs. 3, 10 with beta = 1), one posterior sample per image
  drawn with seeded standard-normal noise, so a live model and its export give the same value.
* `noise_robustness` (Section 5.3, Figure 8): log p(x|z*) of clean images x, with z* ~ q(z|x + s eps),
  eps ~ N(0, I), for several scales s. The noisy input is clipped into the data range (as every served input must
  lie there); the paper's data were in [-1, 1] without clipping, so compare trends, not values.
* `weight_norms` (Section 5.4, Table 1, Appendix D): L2 norms of the encoder's and the decoder's weights (live
  models only).
* `samples`, `traversals` (Appendix I): decoder means from z^L ~ N(0, I) through the generative chain, and
  from z^L moved along one unit at a time.
"""

import numpy as np
import tensorflow as tf


def _noise(layer_sizes, n, seed):
  """Seeded standard-normal `[n, d_i]` arrays, one per layer."""
  rng = np.random.default_rng(seed)
  return [rng.standard_normal((n, d)).astype(np.float32) for d in layer_sizes]


def _batches(n, batch_size):
  return [(i, min(n, i + batch_size)) for i in range(0, n, batch_size)]


def fixed_noise_elbo(fns, images, seed=0, batch_size=500):
  """Mean ELBO terms of `images` `[N, H, W, C]` with one seeded posterior sample each.

  Returns:
    dict of floats: `elbo` (reconstruction - kl), `reconstruction` (log p(x|z)) and `kl` (summed over layers).
  """
  images = np.asarray(images, np.float32)
  noise = _noise(fns.layer_sizes, len(images), seed)
  rec, kl = [], []
  for a, b in _batches(len(images), batch_size):
    x = tf.constant(images[a:b])
    terms = fns.terms_fn(x, x, [tf.constant(e[a:b]) for e in noise])
    rec.append(np.asarray(terms["reconstruction"], np.float64))
    kl.append(np.asarray(terms["kl"], np.float64))
  rec, kl = np.concatenate(rec), np.concatenate(kl)
  return {"elbo": float(np.mean(rec - kl)), "reconstruction": float(np.mean(rec)), "kl": float(np.mean(kl))}


def noise_robustness(fns, images, scales, data_range, seed=0, batch_size=500):
  """log p(x|z*), z* ~ q(z|clip(x + s eps)), per image and scale (Section 5.3).

  Args:
    fns: the model's callables (`terms_fn`, `layer_sizes`).
    images: `[N, H, W, C]` clean images.
    scales: noise scales s (0 gives the clean baseline).
    data_range: (lo, hi) the noisy inputs are clipped into.
    seed: seeds eps and the posterior samples (the same eps, scaled, for every s).

  Returns:
    {s: float64 `[N]` log-likelihoods of the clean images}.
  """
  images = np.asarray(images, np.float32)
  rng = np.random.default_rng(seed)
  eps = rng.standard_normal(images.shape).astype(np.float32)
  noise = _noise(fns.layer_sizes, len(images), seed + 1)
  out = {}
  for s in scales:
    noisy = np.clip(images + float(s) * eps, data_range[0], data_range[1])
    values = []
    for a, b in _batches(len(images), batch_size):
      terms = fns.terms_fn(tf.constant(noisy[a:b]), tf.constant(images[a:b]), [tf.constant(e[a:b]) for e in noise])
      values.append(np.asarray(terms["reconstruction"], np.float64))
    out[float(s)] = np.concatenate(values)
  return out


def _kernel_norm(layers):
  """sqrt of the summed squares of every kernel (dense and convolution weights; biases and BatchNorm excluded)."""
  total = 0.0
  for layer in layers:
    for v in layer.trainable_weights:
      if v.name.split("/")[-1].startswith("kernel"):
        total += float(np.sum(np.square(np.asarray(v, np.float64))))
  return float(np.sqrt(total))


def weight_norms(model):
  """L2 norms of the kernels of the inference side (encoder network and q(z^{i+1}|z^i) MLPs) and the generative
  side (decoder network and p(z^i|z^{i+1}) MLPs), as in Table 1: {"encoder": float, "decoder": float}."""
  return {"encoder": _kernel_norm([model.encoder] + list(getattr(model, "up", []))),
          "decoder": _kernel_norm([model.decoder] + list(getattr(model, "down", [])))}


def samples(fns, num, seed=0, sample_below=True):
  """Decoder means of `num` ancestral samples: z^L ~ N(0, I), the layers below sampled from p(z^i|z^{i+1}) (or at
  their means with `sample_below=False`). Returns `[num, H, W, C]`."""
  rng = np.random.default_rng(seed)
  z_top = rng.standard_normal((num, fns.layer_sizes[-1])).astype(np.float32)
  noise = [rng.standard_normal((num, d)).astype(np.float32) for d in fns.layer_sizes[:-1]]
  if not sample_below:
    noise = [np.zeros_like(e) for e in noise]
  return np.asarray(fns.generate_fn(tf.constant(z_top), [tf.constant(e) for e in noise]))


def traversals(fns, image, values=np.linspace(-3.0, 3.0, 9)):
  """Latent traversals of the top layer (Appendix I.34): z^L at the posterior mean of `image` `[H, W, C]` with one
  unit at a time set to each of `values`; layers below at their conditional means.

  Returns:
    `[d_L, len(values), H, W, C]` decoder means.
  """
  loc = np.asarray(fns.encode_fn(tf.constant(np.asarray(image, np.float32)[None]))[-1][0])[0]
  d, k = loc.shape[0], len(values)
  codes = np.repeat(loc[None], d * k, axis=0).reshape(d, k, d)
  for j in range(d):
    codes[j, :, j] = values
  codes = codes.reshape(d * k, d).astype(np.float32)
  noise = [tf.zeros((d * k, size)) for size in fns.layer_sizes[:-1]]
  out = np.asarray(fns.generate_fn(tf.constant(codes), noise))
  return out.reshape((d, k) + out.shape[1:])


def smoothed_density(values, grid):
  """A Gaussian kernel density estimate of `values` on `grid` (Scott's bandwidth), for Figure 8's histograms."""
  from scipy import stats  # pylint: disable=g-import-not-at-top
  values = np.asarray(values, np.float64)
  if np.ptp(values) == 0:
    return np.where(np.isclose(grid, values[0]), 1.0, 0.0)
  return stats.gaussian_kde(values)(grid)
