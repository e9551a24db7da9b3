"""Gaussian heads: the Dense layer that gives a diagonal Gaussian's raw parameters, and its initialisation.

Initialisation of the conditionals' Gaussian heads (`gaussian_head`: q(z^{i+1}|z^i) and p(z^i|z^{i+1}) of the
hierarchies); the encoder's q(z^1|x) head is a plain Dense layer (`encoder_head`, below). Each head is one Dense
layer whose outputs are the means, then the pre-softplus scales, of a diagonal Gaussian. With
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
  - a number (the inference conditionals q(z^{i+1}|z^i), 1): a fan-in variance-scaled kernel with scale
    `loc_gain / units`, so the mean vector's expected squared norm starts near `loc_gain` * E[h^2] whatever the
    layer's width: the layer starts within a few nats of its prior (the KL of a unit-scale Gaussian is
    ||mu - mu_p||^2 / 2).
  - `0` (the generative conditionals p(z^i|z^{i+1})): zero means, so they start exactly at N(0, I), the
    standard-normal hierarchy, and learn their dependence on z^{i+1} from the first step (the head's kernel gets
    gradients at once; the layers below it from the second step).

The encoder's head q(z^1|x) (`encoder_head`, every model) is a plain Dense layer: Glorot uniform over the whole
kernel (means and pre-softplus scales alike) and zero bias, so its scales start at softplus(h.w) ~ 0.7, varying
with the input. For a while it, too, started with unit scales and a zero scale kernel; that gave the conditionals
nothing (their health comes from their own heads: tests/test_training_health.py) and cost the beta-TCVAE its
disentangling: MLP pair, beta = 6, batch 256, one epoch, held-out MIG 0.031 (seed 0) against 0.100 with the plain
head, the ELBO the same (-109.6 against -110.8); per factor, position 0.04 and 0.01 against 0.20 and 0.23; and a
learning curve with the unit-scale head stayed at MIG 0.03 for 4.4 epochs (docs/REPRODUCTION.md). An encoder whose
scales all start equal to the prior's, independent of x, seems to let the code settle into a rotated (entangled)
solution that the total-correlation penalty does not undo at these batch sizes; why is not established.

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
  """Kernel `[fan_in, 2 * units]` of a conditional's Gaussian head: the means' half fan-in variance-scaled with
  scale `loc_gain / units` (truncated normal), or zeros (`loc_gain` 0); the scales' half zeros."""

  def __init__(self, loc_gain=DEFAULT_LOC_GAIN, seed=None):
    self.loc_gain = float(loc_gain)
    self.seed = seed

  def __call__(self, shape, dtype=None):
    fan_in, width = int(shape[0]), int(shape[1])
    units = width // 2
    zeros = keras.ops.zeros((fan_in, units), dtype=dtype)
    if self.loc_gain == 0.0:
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


def _check_units(units, name):
  if int(units) < 1:
    raise ValueError(f"A Gaussian head needs at least one unit, got {units} (layer {name!r}).")


def gaussian_head(units, name, loc_gain=DEFAULT_LOC_GAIN):
  """A conditional's Dense layer `[B, fan_in]` -> `[B, 2 * units]` of a diagonal Gaussian's raw parameters (means,
  then pre-softplus scales), initialised to start near a unit-scale Gaussian (see the module docstring)."""
  _check_units(units, name)
  return layers.Dense(2 * int(units), kernel_initializer=GaussianHeadKernel(loc_gain),
                      bias_initializer=GaussianHeadBias(), name=name)


def encoder_head(units, name):
  """The encoder's Dense layer `[B, fan_in]` -> `[B, 2 * units]` of q(z^1|x)'s raw parameters (means, then
  pre-softplus scales), Keras's default initialisation: Glorot uniform kernel, zero bias (see the module
  docstring for why not the unit-scale start of the conditionals)."""
  _check_units(units, name)
  return layers.Dense(2 * int(units), name=name)
