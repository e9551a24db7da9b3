"""The networks' building blocks against Keras's own layers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seatbelt_tf.nn import networks


@pytest.mark.parametrize("shape", [(32, 8, 8, 5), (64, 7)])
def test_fused_batch_norm_equals_keras_batch_norm(shape):
  """Outputs, gradients (inputs, gamma, beta), moving statistics over three training calls, and inference equal
  Keras's BatchNormalization with the same weights, to float rounding; the variables are the same four, in order."""
  rng = np.random.default_rng(0)
  fused = networks.FusedBatchNormalization(momentum=0.9)
  plain = keras.layers.BatchNormalization(momentum=0.9)
  fused.build(shape)
  plain.build(shape)
  assert [v.path.split("/")[-1] for v in fused.variables] == [v.path.split("/")[-1] for v in plain.variables]
  gamma, beta = rng.uniform(0.5, 2.0, shape[-1]), rng.normal(size=shape[-1])
  for layer in (fused, plain):
    layer.gamma.assign(gamma)
    layer.beta.assign(beta)
  weights = tf.constant(rng.normal(size=shape), tf.float32)
  for call in range(3):
    x = tf.constant(rng.normal(loc=call, scale=1 + call, size=shape), tf.float32)
    results = []
    for layer in (fused, plain):
      with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(weights * y)
      results.append((y, *tape.gradient(loss, [x, layer.gamma, layer.beta])))
    for got, want in zip(*results):
      np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4 * np.abs(want.numpy()).max())
    np.testing.assert_allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fused.moving_variance.numpy(), plain.moving_variance.numpy(), rtol=1e-5)
  x = tf.constant(rng.normal(size=shape), tf.float32)
  np.testing.assert_allclose(fused(x, training=False).numpy(), plain(x, training=False).numpy(), rtol=1e-5,
                             atol=1e-5)


def test_fused_batch_norm_is_used_outside_a_strategy_and_round_trips():
  layer = networks.batch_norm("bn")
  assert isinstance(layer, networks.FusedBatchNormalization)
  again = keras.layers.deserialize(keras.layers.serialize(layer))
  assert type(again) is networks.FusedBatchNormalization and again.get_config() == layer.get_config()
