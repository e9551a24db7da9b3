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


def _plain_block(layer, norm, activation, x, training):
  return activation(norm(layer(x), training=training))


@pytest.mark.parametrize("kind", ["conv", "conv_transpose", "conv_transpose_1x1", "dense", "dense_synchronized"])
def test_norm_block_equals_the_plain_block(kind):
  """`norm_block` (bias left out of the map, handed to BatchNorm as a shift) against the same layers called one
  after the other with Keras's own code: outputs, every gradient, the moving statistics over three training calls
  and inference, to float rounding. The biases' exact gradient is 0: the block gives 0, the plain block round-off
  small on the kernel gradient's scale. The variables are Keras's layer's (configs and checkpoints carry over).
  `dense_synchronized`: the layer built under a strategy (Keras's synchronised code, `batch_norm`)."""
  rng = np.random.default_rng(1)
  synchronized = kind.endswith("_synchronized")
  kind = kind.removesuffix("_synchronized")
  make, keras_cls, shape = {
      "conv": (lambda: networks.Conv2D(6, 4, strides=2, padding="same"), keras.layers.Conv2D, (16, 8, 8, 3)),
      "conv_transpose": (lambda: networks.Conv2DTranspose(6, 4, strides=2, padding="same"),
                         keras.layers.Conv2DTranspose, (16, 4, 4, 3)),
      "conv_transpose_1x1": (lambda: networks.Conv2DTranspose(6, 4, strides=1, padding="valid"),
                             keras.layers.Conv2DTranspose, (16, 1, 1, 5)),
      "dense": (lambda: networks.Dense(7), keras.layers.Dense, (16, 5)),
  }[kind]
  pairs = []
  for _ in range(2):
    layer, norm = make(), networks.FusedBatchNormalization(momentum=0.9, synchronized=synchronized)
    layer.build(shape)
    norm.build(layer.compute_output_shape(shape))
    pairs.append((layer, norm))
  reference = keras_cls.from_config(pairs[0][0].get_config())
  reference.build(shape)
  assert [v.path.split("/")[-1] for v in pairs[0][0].variables] == [v.path.split("/")[-1] for v in reference.variables]
  for (layer, norm) in pairs:
    layer.kernel.assign(rng.normal(size=layer.kernel.shape) if layer is pairs[0][0] else pairs[0][0].kernel)
    layer.bias.assign(rng.normal(size=layer.bias.shape) * 3 if layer is pairs[0][0] else pairs[0][0].bias)
  relu = keras.layers.ReLU()
  weights = None
  for call in range(3):
    x = tf.constant(rng.normal(loc=call, size=shape), tf.float32)
    results = []
    for (layer, norm), block in zip(pairs, (networks.norm_block, _plain_block)):
      with tf.GradientTape() as tape:
        tape.watch(x)
        y = block(layer, norm, relu, x, True)
        weights = tf.constant(rng.normal(size=y.shape), tf.float32) if weights is None else weights
        loss = tf.reduce_sum(weights * y)
      grads = tape.gradient(loss, [x, layer.kernel, norm.gamma, norm.beta, layer.bias])
      results.append((y, *grads))
    (*fast, fast_bias), (*plain, plain_bias) = results
    for got, want in zip(fast, plain):
      np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4 * np.abs(want.numpy()).max())
    assert np.all(fast_bias.numpy() == 0.0)
    assert np.abs(plain_bias.numpy()).max() <= 1e-4 * np.abs(plain[2].numpy()).max()
    for a, b in zip(pairs[0][1].non_trainable_variables, pairs[1][1].non_trainable_variables):
      np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5)
  x = tf.constant(rng.normal(size=shape), tf.float32)
  np.testing.assert_allclose(networks.norm_block(*pairs[0], relu, x, False).numpy(),
                             _plain_block(*pairs[1], relu, x, False).numpy(), rtol=1e-5, atol=1e-5)


def test_the_1x1_transposed_convolution_is_keras_s():
  """The decoder's 1x1 -> 4x4 transposed convolution runs as one matmul: output and gradients (input, kernel,
  bias) equal Keras's Conv2DTranspose with the same weights; other shapes run Keras's own code."""
  rng = np.random.default_rng(2)
  ours = networks.Conv2DTranspose(6, 4, strides=1, padding="valid")
  theirs = keras.layers.Conv2DTranspose(6, 4, strides=1, padding="valid")
  for shape in [(9, 1, 1, 5), (9, 2, 2, 5)]:
    for layer in (ours, theirs):
      if not layer.built:
        layer.build(shape)
    ours.kernel.assign(rng.normal(size=ours.kernel.shape))
    ours.bias.assign(rng.normal(size=ours.bias.shape))
    theirs.set_weights(ours.get_weights())
    x = tf.constant(rng.normal(size=shape), tf.float32)
    results = []
    for layer in (ours, theirs):
      with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(tf.sin(y))
      results.append((y, *tape.gradient(loss, [x, layer.kernel, layer.bias])))
    for got, want in zip(*results):
      np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
  again = keras.layers.deserialize(keras.layers.serialize(ours))
  assert type(again) is networks.Conv2DTranspose and again.get_config() == ours.get_config()


def test_norm_block_with_a_frozen_batch_norm_keeps_the_bias():
  """A frozen BatchNorm (trainable=False) normalises with its moving statistics even in training, where the bias does
  not cancel: the block must then add it, giving the plain block's output and gradients, with statistics untouched."""
  rng = np.random.default_rng(3)
  shape = (8, 6, 6, 3)
  pairs = []
  for _ in range(2):
    layer, norm = networks.Conv2D(4, 3, padding="same"), networks.FusedBatchNormalization(momentum=0.9)
    layer.build(shape)
    norm.build(layer.compute_output_shape(shape))
    pairs.append((layer, norm))
  first = pairs[0][0].weights + pairs[0][1].weights
  for weight in first:  # moving variances positive
    weight.assign(rng.normal(size=weight.shape) + (2.0 if "variance" in weight.path else 0.0))
  for target, source in zip(pairs[1][0].weights + pairs[1][1].weights, first):
    target.assign(source)
  for _, norm in pairs:
    norm.trainable = False
  x = tf.constant(rng.normal(size=shape), tf.float32)
  results = []
  for (layer, norm), block in zip(pairs, (networks.norm_block, _plain_block)):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = block(layer, norm, keras.layers.ReLU(), x, True)
      loss = tf.reduce_sum(tf.sin(y))
    results.append((y, *tape.gradient(loss, [x, layer.kernel, layer.bias])))
  for got, want in zip(*results):
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
  assert np.abs(results[0][3].numpy()).max() > 0.1  # the bias matters here
  for a, b in zip(pairs[0][1].non_trainable_variables, pairs[1][1].non_trainable_variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


@pytest.mark.parametrize("mode", ["eager", "graph", "xla"])
def test_blocked_kernel_gradient_equals_autodiff_s_single_product(mode):
  """matmul_blocked_kernel_gradient in float64: the product, the input gradient and the kernel gradient equal
  tf.matmul's autodiff (to 1e-12) for output widths that the blocks divide, that they do not (a last, narrower
  block), and that need no blocks; so do second-order gradients through the input gradient."""
  rng = np.random.default_rng(5)
  for n, columns in ((12, 4), (11, 4), (3, 4), (4096, 1024)):
    x = tf.constant(rng.normal(size=(7, 5)))
    kernel = tf.constant(rng.normal(size=(5, n)))
    weights = tf.constant(rng.normal(size=(7, n)))

    def run(product, x=x, kernel=kernel, weights=weights, columns=columns):
      with tf.GradientTape() as outer:
        outer.watch(kernel)
        with tf.GradientTape() as tape:
          tape.watch([x, kernel])
          y = product(x, kernel, columns)
          loss = tf.reduce_sum(tf.sin(y) * weights)
        dx, dkernel = tape.gradient(loss, [x, kernel])
        curvature = tf.reduce_sum(tf.square(dx))
      return y, dx, dkernel, outer.gradient(curvature, kernel)
    call = run if mode == "eager" else tf.function(run, jit_compile=mode == "xla", autograph=False)
    got, want = call(networks.matmul_blocked_kernel_gradient), call(lambda x, kernel, columns: tf.matmul(x, kernel))
    for a, b in zip(got, want):
      np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-12, atol=1e-12)


def test_wide_dense_is_keras_dense_with_its_kernel_gradient_in_blocks():
  """WideDense (the MLP decoder's head): Keras's Dense variables in the same order and shapes (so checkpoints of
  either load into the other), the same outputs and gradients (input, kernel, bias) as Keras's Dense with the same
  weights, and a config round trip; the decoder's head is one."""
  rng = np.random.default_rng(6)
  ours = networks.WideDense(2500, activation="tanh")
  theirs = keras.layers.Dense(2500, activation="tanh")
  for layer in (ours, theirs):
    layer.build((None, 6))
  assert [(v.name, tuple(v.shape)) for v in ours.weights] == [(v.name, tuple(v.shape)) for v in theirs.weights]
  ours.bias.assign(rng.normal(size=ours.bias.shape))
  theirs.set_weights(ours.get_weights())
  x = tf.constant(rng.normal(size=(9, 6)), tf.float32)
  results = []
  for layer in (ours, theirs):
    with tf.GradientTape() as tape:
      tape.watch(x)
      loss = tf.reduce_sum(tf.sin(layer(x)))
    results.append((layer(x), *tape.gradient(loss, [x, layer.kernel, layer.bias])))
  for got, want in zip(*results):
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-5, atol=1e-5)
  again = keras.layers.deserialize(keras.layers.serialize(ours))
  assert type(again) is networks.WideDense and again.get_config() == ours.get_config()
  decoder = networks.MLPDecoder(1, hidden=(8,))
  assert isinstance(decoder.head, networks.WideDense)
