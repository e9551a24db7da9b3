"""Encoder/decoder networks of Chen et al. (2018) for 64x64 images, as the paper uses them (Appendix C.1).

* Conv pair. Encoder: four 4x4 stride-2 convolutions with 32, 32, 64, 64 channels (64 -> 4 pixels), a 4x4
  valid convolution to 512 channels, and a 1x1 convolution to the posterior parameters; BatchNorm + ReLU after
  every layer but the last. Decoder: the mirror image with transposed convolutions (1x1 to 512, 4x4 valid to 64,
  then stride-2 to 64, 32, 32 and the output channels). A 4x4 valid convolution of a 4x4 map and a 1x1 convolution
  of a 1x1 map are dense layers; they are written as such (same arithmetic, fewer reshapes).
* MLP pair. Encoder 4096-1200-1200 with ReLU; decoder 1200-1200-1200 with tanh.
* `tiny_conv` / `tiny_mlp`: the same code with narrow layers, for tests.

Encoders map `[batch, 64, 64, C]` images to `[batch, output_dim]` raw Gaussian parameters (means, then
pre-softplus scales, from a plain Dense head: `seatbelt_tf.nn.heads.encoder_head`); decoders map
`[batch, latent_dim]` codes to `[batch, 64, 64, output_channels]` raw parameters (logits or means).
"""

import keras
import tensorflow as tf
from keras import layers

from seatbelt_tf import distribute
from seatbelt_tf.nn.heads import encoder_head


def batch_norm(name):
  """BatchNormalization (momentum 0.9) of every network here; synchronised across replicas (global batch moments)
  when built under a tf.distribute strategy, so a replicated step normalises like one device. Outside a strategy it
  is `FusedBatchNormalization`: the same layer (variables, config, numbers to float rounding) on TensorFlow's fused
  kernel."""
  if distribute.in_strategy():  # Keras's synchronised code (FusedBatchNormalization hands it on)
    return FusedBatchNormalization(momentum=0.9, synchronized=True, name=name)
  return FusedBatchNormalization(momentum=0.9, name=name)


@keras.saving.register_keras_serializable(package="seatbelt_tf")
class FusedBatchNormalization(layers.BatchNormalization):
  """Keras's BatchNormalization whose training-mode forward and backward pass run on TensorFlow's fused kernel
  (`FusedBatchNormV3` and its gradient: one pass for the moments and one for the normalisation, instead of
  Keras 3's separate moments, rsqrt and elementwise ops). The variables, the config and the arithmetic are
  Keras's: y = (x - mean) / sqrt(var + epsilon) * gamma + beta with the biased batch variance, and moving
  statistics updated as moving * momentum + batch * (1 - momentum) with the biased variance (the kernel returns
  the Bessel-corrected one, so it is scaled back by (n - 1) / n). Measured on the conv beta-TCVAE training step at
  batch 256: 1.27x the images/s of the Keras layer (docs/BENCHMARKS.md, issue 21); tests/test_networks.py checks
  outputs, gradients and moving statistics against `layers.BatchNormalization`.

  Inputs `[B, C]` or `[B, H, W, C]` float32 with the default last axis, trainable, no mask; anything else (and
  inference, which is one elementwise affine map) runs Keras's own code.

  `shift` (optional, `[C]`): a per-channel constant the caller left out of `inputs`; the layer normalises
  `inputs + shift`. With batch statistics (training, trainable, no renorm) the batch mean subtracts a per-channel
  constant exactly, so the output and every gradient are those of `inputs`, the shift's gradient is exactly zero
  (as the maths says) and only the moving mean records `batch mean + shift`. On the fused path that costs
  nothing; on Keras's (the synchronised layer under a strategy) the output is `y + 0 * shift`, which connects the
  shift's exact zero gradient. `norm_block` uses it to leave a layer's bias out of a training step (see there).
  """

  def call(self, inputs, training=None, mask=None, shift=None):
    rank = len(inputs.shape)
    if shift is not None and not (training and self.trainable and not self.renorm):
      inputs, shift = inputs + tf.cast(shift, inputs.dtype), None  # moving statistics: the shift does not cancel
    if (not training or not self.trainable or mask is not None or self.synchronized or self.renorm
        or inputs.dtype != tf.float32 or rank not in (2, 4) or self.axis not in (-1, rank - 1)
        or not (self.scale and self.center)):
      y = super().call(inputs, training=training, mask=mask)
      if shift is not None:
        self.moving_mean.assign_add(tf.cast(shift, self.moving_mean.dtype) * (1.0 - self.momentum))
        y = y + 0.0 * tf.cast(shift, y.dtype)
      return y
    x = inputs if rank == 4 else inputs[:, None, None, :]
    offset = tf.cast(self.beta, tf.float32)
    if shift is not None:  # connects the shift with its exact (zero) gradient; 32-element op
      offset = offset + 0.0 * tf.cast(shift, tf.float32)
    y, mean, unbiased, *_ = tf.raw_ops.FusedBatchNormV3(
        x=x, scale=tf.cast(self.gamma, tf.float32), offset=offset,
        mean=tf.zeros([0]), variance=tf.zeros([0]), epsilon=self.epsilon, data_format="NHWC", is_training=True)
    n = tf.cast(tf.reduce_prod(tf.shape(x)[:3]), tf.float32)
    variance = unbiased * tf.maximum(n - 1.0, 0.0) / n
    if shift is not None:
      mean = mean + tf.cast(shift, tf.float32)
    self.moving_mean.assign(self.moving_mean * self.momentum + tf.stop_gradient(mean) * (1.0 - self.momentum))
    self.moving_variance.assign(
        self.moving_variance * self.momentum + tf.stop_gradient(variance) * (1.0 - self.momentum))
    return y if rank == 4 else y[:, 0, 0, :]


def _linear(layer):
  if layer.activation not in (None, keras.activations.linear):
    raise ValueError(f"{layer.name}: add_bias=False is for layers without an activation (they feed a BatchNorm).")


@keras.saving.register_keras_serializable(package="seatbelt_tf")
class Conv2D(layers.Conv2D):
  """Keras's Conv2D with `call(x, add_bias=True)`; `add_bias=False` computes it without its bias (the variable
  stays, so configs and checkpoints are Keras's). Used by `norm_block`."""

  def call(self, inputs, add_bias=True):
    if add_bias or not self.use_bias:
      return super().call(inputs)
    _linear(self)
    return self.convolution_op(inputs, self.kernel)


@keras.saving.register_keras_serializable(package="seatbelt_tf")
class Dense(layers.Dense):
  """Keras's Dense with `call(x, add_bias=True)` (as `Conv2D`)."""

  def call(self, inputs, training=None, add_bias=True):
    if add_bias or not self.use_bias:
      return super().call(inputs, training=training)
    _linear(self)
    return tf.matmul(inputs, tf.cast(self.kernel, inputs.dtype))


KERNEL_GRADIENT_COLUMNS = 1024  # output columns per product of a `WideDense` kernel gradient


def matmul_blocked_kernel_gradient(x, kernel, columns=KERNEL_GRADIENT_COLUMNS):
  """x @ kernel, `[B, K] @ [K, N] -> [B, N]`, whose kernel gradient x^T @ dy (`[K, N]`) is computed `columns`
  output columns at a time and concatenated; the input gradient dy @ kernel^T is the usual one.

  The same sums as autodiff's single product (each entry of the gradient is one dot product over the batch; to
  float rounding: tests/test_networks.py). Why: on this project's CPUs, XLA's and oneDNN's kernels for a product
  with a wide output (the MLP decoder's 1200 -> 4096 head: `[1200, 2048] @ [2048, 4096]` at the campaign's batch)
  run at about half the rate of the same product taken 1024 columns at a time (about 275 ms against 134 ms under XLA
  and in graph mode; docs/BENCHMARKS.md, "The MLP decoder's head"). Products with N <= `columns` are plain.
  """
  n = kernel.shape[-1]
  if n is None or n <= columns or len(x.shape) != 2:
    return tf.matmul(x, kernel)

  @tf.custom_gradient
  def product(x, kernel):
    def gradient(dy):
      dx = tf.matmul(dy, kernel, transpose_b=True)
      dkernel = tf.concat([tf.matmul(x, dy[:, s:s + columns], transpose_a=True) for s in range(0, n, columns)], 1)
      return dx, dkernel
    return tf.matmul(x, kernel), gradient
  return product(x, kernel)


@keras.saving.register_keras_serializable(package="seatbelt_tf")
class WideDense(layers.Dense):
  """Keras's Dense (same variables, config and checkpoints) whose kernel gradient runs in column blocks
  (`matmul_blocked_kernel_gradient`): for layers with many outputs, as the MLP decoder's head. Inputs of rank
  other than 2, LoRA and quantised kernels run Keras's own code."""

  def call(self, inputs, training=None):
    if len(inputs.shape) != 2 or self.lora_enabled or self.quantization_mode:
      return super().call(inputs, training=training)
    y = matmul_blocked_kernel_gradient(inputs, tf.cast(self.kernel, inputs.dtype))
    if self.use_bias:
      y = y + tf.cast(self.bias, y.dtype)
    return self.activation(y) if self.activation is not None else y


@keras.saving.register_keras_serializable(package="seatbelt_tf")
class Conv2DTranspose(layers.Conv2DTranspose):
  """Keras's Conv2DTranspose with `call(x, add_bias=True)` (as `Conv2D`).

  On a 1x1 input with 'valid' padding, stride 1 and no dilation (the decoder's 1x1 -> 4x4 layer) every output
  pixel is one dot product with the input vector, so the layer runs as one matmul with the same kernel variable,
  `[B, C] @ [C, kh * kw * F]`, instead of oneDNN's transposed convolution (3.6x faster for that layer at batch
  256; docs/BENCHMARKS.md, issue 21); the same numbers to float rounding (tests/test_networks.py).
  `matmul_1x1 = False` (a subclass) keeps oneDNN's transposed convolution there (benchmarks/train_throughput.py's
  A/B)."""

  matmul_1x1 = True

  def call(self, inputs, add_bias=True):
    if not add_bias and self.use_bias:
      _linear(self)
    if (not self.matmul_1x1 or tuple(inputs.shape[1:3]) != (1, 1) or self.padding != "valid"
        or tuple(self.strides) != (1, 1) or tuple(self.dilation_rate) != (1, 1)
        or self.data_format != "channels_last"):
      if add_bias or not self.use_bias:
        return super().call(inputs)
      return keras.ops.conv_transpose(inputs, self.kernel, strides=list(self.strides), padding=self.padding,
                                      output_padding=self.output_padding, dilation_rate=self.dilation_rate,
                                      data_format=self.data_format)
    kh, kw, filters, channels = self.kernel.shape
    kernel = tf.reshape(tf.cast(self.kernel, inputs.dtype), [kh * kw * filters, channels])
    y = tf.reshape(tf.matmul(tf.reshape(inputs, [-1, channels]), kernel, transpose_b=True), [-1, kh, kw, filters])
    if add_bias and self.use_bias:
      y = y + tf.cast(self.bias, y.dtype)
    return self.activation(y) if self.activation is not None else y


def norm_block(layer, norm, activation, x, training):
  """One `linear layer -> BatchNorm -> activation` block: Chen et al.'s conv networks (conv + ReLU) and the
  hierarchies' conditional MLPs (Dense + Leaky-ReLU, eq. C.8). `layer`: one of the layers above.

  In a training step BatchNorm subtracts the batch mean, which cancels the layer's bias exactly (y does not depend
  on it; its gradient is zero). So the block leaves the bias out of the feature map (a pass over the map forward
  and a reduction backward: 5.8 of conv1's 13.2 ms at batch 256) and hands it to `FusedBatchNormalization` as
  `shift`: the moving mean records the mean of `layer(x) + bias` as before, so inference (`layer(x) + bias -
  moving mean`) is unchanged, for old checkpoints too. The output and the gradients equal the plain block's to
  float rounding (tests/test_networks.py), and the bias gets its exact gradient, 0, instead of round-off that Adam
  would turn into lr-sized steps. Under a strategy (Keras's synchronised code) the same holds. Inference and other
  normalisation layers run the plain block."""
  if training and layer.use_bias and isinstance(norm, FusedBatchNormalization):
    return activation(norm(layer(x, add_bias=False), training=True, shift=layer.bias))
  return activation(norm(layer(x), training=training))


IMAGE_SIZE = 64


def _check_image_shape(input_shape, name):
  if tuple(input_shape[1:3]) != (IMAGE_SIZE, IMAGE_SIZE):
    raise ValueError(f"The {name} networks take 64x64 images, got input shape {tuple(input_shape)}; resize the "
                     "data to 64x64.")


@keras.saving.register_keras_serializable(package="seatbelt_tf")
class ConvEncoder(layers.Layer):
  """Chen et al. (2018) convolutional encoder: `[B, 64, 64, C]` -> `[B, output_dim]`."""

  def __init__(self, output_dim, channels=(32, 32, 64, 64), hidden=512, **kwargs):
    super().__init__(**kwargs)
    self.output_dim = int(output_dim)
    self.channels = tuple(int(c) for c in channels)
    self.hidden = int(hidden)
    self.blocks = []
    for i, c in enumerate(self.channels):
      self.blocks += [Conv2D(c, 4, strides=2, padding="same", name=f"conv{i + 1}"),
                      batch_norm(f"bn{i + 1}"), layers.ReLU()]
    self.flatten = layers.Flatten()
    self.blocks_top = [Dense(self.hidden, name="conv5_4x4_valid"),
                       batch_norm("bn5"), layers.ReLU()]
    self.head = encoder_head(self.output_dim // 2, name="conv_z_1x1")

  def call(self, x, training=False):
    _check_image_shape(x.shape, "conv")
    for i in range(0, len(self.blocks), 3):
      x = norm_block(*self.blocks[i:i + 3], x, training)
    x = norm_block(*self.blocks_top, self.flatten(x), training)
    return self.head(x)

  def get_config(self):
    return {**super().get_config(), "output_dim": self.output_dim, "channels": list(self.channels),
            "hidden": self.hidden}


@keras.saving.register_keras_serializable(package="seatbelt_tf")
class ConvDecoder(layers.Layer):
  """Chen et al. (2018) transposed-convolution decoder: `[B, D]` -> `[B, 64, 64, output_channels]`."""

  def __init__(self, output_channels, channels=(64, 64, 32, 32), hidden=512, **kwargs):
    super().__init__(**kwargs)
    self.output_channels = int(output_channels)
    self.channels = tuple(int(c) for c in channels)
    self.hidden = int(hidden)
    self.stem = [Dense(self.hidden, name="deconv1_1x1"),
                 batch_norm("bn1"), layers.ReLU(),
                 layers.Reshape((1, 1, self.hidden)),
                 Conv2DTranspose(self.channels[0], 4, strides=1, padding="valid", name="deconv2"),
                 batch_norm("bn2"), layers.ReLU()]
    self.blocks = []
    for i, c in enumerate(self.channels[1:]):
      self.blocks += [Conv2DTranspose(c, 4, strides=2, padding="same", name=f"deconv{i + 3}"),
                      batch_norm(f"bn{i + 3}"), layers.ReLU()]
    self.head = layers.Conv2DTranspose(self.output_channels, 4, strides=2, padding="same", name="deconv_out")

  def call(self, z, training=False):
    x = norm_block(*self.stem[:3], z, training)
    x = norm_block(*self.stem[4:], self.stem[3](x), training)
    for i in range(0, len(self.blocks), 3):
      x = norm_block(*self.blocks[i:i + 3], x, training)
    return self.head(x)

  def get_config(self):
    return {**super().get_config(), "output_channels": self.output_channels, "channels": list(self.channels),
            "hidden": self.hidden}


@keras.saving.register_keras_serializable(package="seatbelt_tf")
class MLPEncoder(layers.Layer):
  """Chen et al. (2018) MLP encoder: flatten, `hidden` ReLU layers, linear head -> `[B, output_dim]`."""

  def __init__(self, output_dim, hidden=(1200, 1200), **kwargs):
    super().__init__(**kwargs)
    self.output_dim = int(output_dim)
    self.hidden = tuple(int(h) for h in hidden)
    self.flatten = layers.Flatten()
    self.dense = [layers.Dense(h, activation="relu", name=f"fc{i + 1}") for i, h in enumerate(self.hidden)]
    self.head = encoder_head(self.output_dim // 2, name="fc_z")

  def call(self, x, training=False):
    x = self.flatten(x)
    for layer in self.dense:
      x = layer(x)
    return self.head(x)

  def get_config(self):
    return {**super().get_config(), "output_dim": self.output_dim, "hidden": list(self.hidden)}


@keras.saving.register_keras_serializable(package="seatbelt_tf")
class MLPDecoder(layers.Layer):
  """Chen et al. (2018) MLP decoder: `hidden` tanh layers, linear head -> `[B, 64, 64, output_channels]`."""

  def __init__(self, output_channels, hidden=(1200, 1200, 1200), image_size=IMAGE_SIZE, **kwargs):
    super().__init__(**kwargs)
    self.output_channels = int(output_channels)
    self.hidden = tuple(int(h) for h in hidden)
    self.image_size = int(image_size)
    self.dense = [layers.Dense(h, activation="tanh", name=f"fc{i + 1}") for i, h in enumerate(self.hidden)]
    self.head = WideDense(self.image_size * self.image_size * self.output_channels, name="fc_out")
    self.reshape = layers.Reshape((self.image_size, self.image_size, self.output_channels))

  def call(self, z, training=False):
    x = z
    for layer in self.dense:
      x = layer(x)
    return self.reshape(self.head(x))

  def get_config(self):
    return {**super().get_config(), "output_channels": self.output_channels, "hidden": list(self.hidden),
            "image_size": self.image_size}


# name -> (encoder class, encoder kwargs, decoder class, decoder kwargs)
NETWORKS = {
    "conv": (ConvEncoder, {}, ConvDecoder, {}),
    "mlp": (MLPEncoder, {}, MLPDecoder, {}),
    "tiny_conv": (ConvEncoder, {"channels": (8, 8, 16, 16), "hidden": 32},
                  ConvDecoder, {"channels": (16, 16, 8, 8), "hidden": 32}),
    "tiny_mlp": (MLPEncoder, {"hidden": (64,)}, MLPDecoder, {"hidden": (64,)}),
}


# Networks whose training step ran faster with XLA than in plain graph mode on a 2-core CPU
# (benchmarks/train_throughput.py, docs/BENCHMARKS.md): `--jit_compile=auto` compiles these only.
XLA_BY_DEFAULT = frozenset({"mlp"})


def build_networks(name, encoder_output_dim, decoder_output_channels):
  """Builds the (encoder, decoder) pair registered under `name`."""
  if name not in NETWORKS:
    raise ValueError(f"Unknown network {name!r}: choose one of {', '.join(sorted(NETWORKS))}.")
  enc_cls, enc_kwargs, dec_cls, dec_kwargs = NETWORKS[name]
  return (enc_cls(encoder_output_dim, name="encoder", **enc_kwargs),
          dec_cls(decoder_output_channels, name="decoder", **dec_kwargs))
