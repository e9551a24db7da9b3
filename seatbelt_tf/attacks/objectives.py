"""Adversarial objectives against VAEs (paper Section 4, eqs. 12-15), as pure functions of callables.

An attacker looks for a distortion d so that the model, given x* = x + d, produces something close to a target
x^t, while ||d||_2 stays small. Both objectives are minimised over x* inside the data range (box constraints), with
d = x* - x:

* **latent attack** (eqs. 13-15): sum over the attacked layers of KL(q(z^i|x*) || q(z^i|x^t)) + lambda ||d||_2.
  `layers` picks z^1 only ("first", eq. 14, the DLGM's attack), z^L only ("top"), or every layer ("all", eq. 15,
  the Seatbelt-VAE's). For i > 1, q(z^i|x) is the inference chain evaluated at the posterior means of the layers
  below (`posterior_layers`), the same convention the SavedModel `encode` endpoint uses.
* **output attack** (eq. 12): -ELBO(x^t; q(z|x*)) + lambda ||d||_2, the ELBO of the target under the posterior of
  the adversarial input, each model with its own likelihood and KL terms (the true ELBO, without beta), estimated
  with fixed standard-normal noise so that the objective is a deterministic function of x* for the optimiser.

The callables: `encode_fn(x) -> [(loc, scale), ...]` (one pair per layer, bottom first), `terms_fn(x_input,
x_target, noise) -> {"reconstruction": [B], "kl": [B]}` (the ELBO of x_target under q(z|x_input) is their
difference) and `recon_fn(x) -> [B, H, W, C]` (mean reconstruction). `ModelFns(model)` builds them (and `elbo_fn`) from a
live model; a reloaded SavedModel provides the same.

The optimiser sees ||d||_2 smoothed as sqrt(sum d^2 + 1e-12), so that its gradient exists at d = 0 (where
lambda = 2^20 puts the optimum); the smoothing moves the objective by at most lambda * 1e-6 (1.05 at lambda = 2^20).
Attack records carry Delta with the exact norm as `objective` and the optimiser's value as `objective_smoothed`
(`seatbelt_tf.attacks.protocol`).
"""

import tensorflow as tf
import tensorflow_probability as tfp

from seatbelt_tf.config import ATTACK_LAYER_SETS as LAYER_SETS
from seatbelt_tf.config import ATTACK_MODES as MODES

tfd = tfp.distributions


NORM_EPSILON = 1e-12


class ModelFns:
  """The callables an attack needs, from a live model (inference mode)."""

  def __init__(self, model):
    self.layer_sizes = tuple(model.layer_sizes)
    self.image_shape = tuple(model.image_shape)
    self.encode_fn = lambda x: model.posterior_layers(x, training=False)
    self.terms_fn = model.attack_terms
    self.elbo_fn = model.attack_elbo
    self.recon_fn = lambda x: model(x, training=False)
    self.generate_fn = model.generate
    self.log_joint_fn = model.log_joint


def distortion_norm(d):
  """Smoothed ||d||_2 per example: `[B, ...]` -> `[B]`."""
  flat = tf.reshape(d, [tf.shape(d)[0], -1])
  return tf.sqrt(tf.reduce_sum(tf.square(flat), axis=1) + NORM_EPSILON)


def select_layers(num_layers, layers):
  """Indices of the layers a latent attack matches: "all", "first" (z^1) or "top" (z^L)."""
  if layers not in LAYER_SETS:
    raise ValueError(f"Unknown layer set {layers!r}: choose one of {', '.join(LAYER_SETS)}.")
  return {"all": list(range(num_layers)), "first": [0], "top": [num_layers - 1]}[layers]


def latent_divergence(params, target_params, layers="all"):
  """sum_{i in layers} KL(q(z^i|x*) || q(z^i|x^t)), `[B]` (eqs. 13-15 without the penalty).

  Args:
    params, target_params: lists of (loc `[B, d_i]`, scale `[B, d_i]`), one per layer, bottom first.
    layers: "all", "first" or "top".
  """
  total = 0.0
  for i in select_layers(len(params), layers):
    loc, scale = params[i]
    t_loc, t_scale = target_params[i]
    kl = tfd.kl_divergence(tfd.Normal(loc, scale), tfd.Normal(tf.cast(t_loc, loc.dtype), tf.cast(t_scale, loc.dtype)))
    total += tf.reduce_sum(kl, axis=-1)
  return total


def latent_objective(encode_fn, x_adv, x, target_params, lam, layers="all"):
  """Delta_latent (eqs. 13-15): `[B]` latent divergence + lam * ||x_adv - x||_2.

  Args:
    encode_fn: x -> [(loc, scale), ...].
    x_adv: `[B, H, W, C]` adversarial inputs x* = x + d.
    x: `[B, H, W, C]` original inputs.
    target_params: encode_fn(x^t), per layer `[B, d_i]`.
    lam: `[B]` penalty weights.
    layers: the attacked layer set.
  """
  return latent_divergence(encode_fn(x_adv), target_params, layers) + lam * distortion_norm(x_adv - x)


def output_objective(elbo_fn, x_adv, x, x_target, noise, lam):
  """Delta_output (eq. 12), to minimise: `[B]` -ELBO(x^t; q(z|x_adv)) + lam * ||x_adv - x||_2."""
  return -elbo_fn(x_adv, x_target, noise) + lam * distortion_norm(x_adv - x)


class RowWiseTargets:
  """`ModelFns` whose encoder runs one image at a time when asked for the targets' posteriors (run_attack encodes
  the targets once, as one batch; every other call is passed through unchanged): the same attack problems with
  the target posteriors q(z|x^t) rounded differently (oneDNN picks kernels by batch size; the parameters move by
  up to ~5e-7). For measuring how far an optimiser's end points move under float32 rounding
  (tests/test_attacks.py, benchmarks/attack_fidelity.py)."""

  def __init__(self, fns, num_targets):
    self._fns, self._num = fns, num_targets
    for name in ("layer_sizes", "terms_fn", "recon_fn", "elbo_fn", "image_shape"):
      if hasattr(fns, name):
        setattr(self, name, getattr(fns, name))
    self._first = True

  def encode_fn(self, x):
    if self._first and x.shape[0] == self._num:
      self._first = False
      parts = [self._fns.encode_fn(x[i:i + 1]) for i in range(self._num)]
      return [tuple(tf.concat([p[j][k] for p in parts], 0) for k in range(2)) for j in range(len(parts[0]))]
    return self._fns.encode_fn(x)
