"""Gaussian heads: the Dense layer that gives a diagonal Gaussian's raw parameters, and its initialisation.

Initialisation of every Gaussian head (`gaussian_head`: the encoder's q(z^1|x) and both conditionals). Each
head is one Dense layer whose outputs are the means, then the pre-softplus scales, of a diagonal Gaussian. With
default (Glorot) initialisation a head's scales start at softplus(N(0, ~1)) and its means at N(0, ~1) per unit;
in a hierarchy the single-sample log-ratio log q(z^i|.) - log p(z^i|z^{i+1}) of a lower layer then divides by the
smallest of 96 random generative scales (measured: 4e-4 at seed 0, L = 2, KL_1 = 8.5 million nats and a global
gradient norm of 3e9 at step 0), and Adam's second moments stay inflated for thousands of steps, freezing the
encoder. The heads here follow what deep hierarchies that train well do (NVAE, Vahdat & Kautz 2020, and very
deep VAEs, Child 2021, start every conditional at or near the standard normal by zero-initialising its last
layer; the ladder VAE, Sønderby et al. 2016, needed warm-up without it):

* scale half: zero kernel and bias softplus^-1(1), so every scale starts at exactly 1 (+ MIN_SCALE) and moves
  only as the data asks;
* mean half, by `loc_gain`:
  - `None` (the encoder's q(z^1|x), every model): Keras's Glorot uniform, exactly what the means had before. The
    single-layer models trained well with it, and smaller encoder means slowed the MLP pair, whose encoder sees
    raw pixels without BatchNorm (400 steps, seed 0: held-out ELBO -241 against -177 for the beta-TCVAE, -415
    against -283 for the L = 2 Seatbelt-VAE; conv unchanged; docs/BENCHMARKS.md, "Training health").
  - a number (the inference conditionals q(z^{i+1}|z^i), 1): a fan-in variance-scaled kernel with scale
    `loc_gain / units`, so the mean vector's expected squared norm starts near `loc_gain` * E[h^2] whatever the
    layer's width: the layer starts within a few nats of its prior (the KL of a unit-scale Gaussian is
    ||mu - mu_p||^2 / 2).
  - `0` (the generative conditionals p(z^i|z^{i+1})): zero means, so they start exactly at N(0, I), the
    standard-normal hierarchy, and learn their dependence on z^{i+1} from the first step (the head's kernel gets
    gradients at once; the layers below it from the second step).

Only the initial values change: the variables, the parameterisation (softplus + MIN_SCALE scales) and eqs. (6)-(11)
are exactly as before, so checkpoints of earlier runs load unchanged.
"""

import math

import keras
from keras import layers

UNIT_SCALE_BIAS = math.log(math.expm1(1.0))  # softplus^-1(1)
DEFAULT_LOC_GAIN = 1.0


@keras.saving.register_keras_serializable(package="seatbelt_tf")
class GaussianHeadKernel(keras.initializers.Initializer):
  """Kernel `[fan_in, 2 * units]` of a Gaussian head: the means' half Glorot uniform (`loc_gain` None), fan-in
  variance-scaled with scale `loc_gain / units` (truncated normal) or zeros (`loc_gain` 0); the scales' half zeros."""

  def __init__(self, loc_gain=DEFAULT_LOC_GAIN, seed=None):
    self.loc_gain = None if loc_gain is None else float(loc_gain)
    self.seed = seed

  def __call__(self, shape, dtype=None):
    fan_in, width = int(shape[0]), int(shape[1])
    units = width // 2
    zeros = keras.ops.zeros((fan_in, units), dtype=dtype)
    if self.loc_gain is None:  # the means as a plain Dense layer of this shape starts them (Glorot uniform)
      loc = keras.initializers.GlorotUniform(seed=self.seed)((fan_in, width), dtype)[:, :units]
    elif self.loc_gain == 0.0:
      loc = zeros
    else:
      loc = keras.initializers.VarianceScaling(scale=self.loc_gain / units, mode="fan_in",
                                               distribution="truncated_normal", seed=self.seed)((fan_in, units), dtype)
    return keras.ops.concatenate([loc, zeros], axis=1)

  def get_config(self):
    return {"loc_gain": self.loc_gain, "seed": self.seed}


@keras.saving.register_keras_serializable(package="seatbelt_tf")
class GaussianHeadBias(keras.initializers.Initializer):
  """Bias `[2 * units]` of a Gaussian head: zeros for the means, softplus^-1(1) for the scales (unit scale)."""

  def __call__(self, shape, dtype=None):
    units = int(shape[0]) // 2
    return keras.ops.concatenate([keras.ops.zeros((units,), dtype=dtype),
                                  keras.ops.full((units,), UNIT_SCALE_BIAS, dtype=dtype)])


def gaussian_head(units, name, loc_gain=DEFAULT_LOC_GAIN):
  """The Dense layer `[B, fan_in]` -> `[B, 2 * units]` of a diagonal Gaussian's raw parameters (means, then
  pre-softplus scales), initialised to start near a unit-scale Gaussian (see the module docstring)."""
  if int(units) < 1:
    raise ValueError(f"A Gaussian head needs at least one unit, got {units} (layer {name!r}).")
  return layers.Dense(2 * int(units), kernel_initializer=GaussianHeadKernel(loc_gain),
                      bias_initializer=GaussianHeadBias(), name=name)
