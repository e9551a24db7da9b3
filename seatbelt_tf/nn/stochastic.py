"""The MLPs that amortise the conditionals between latent layers (paper Appendix C.1).

q(z^{i+1}|z^i) and p(z^i|z^{i+1}) are diagonal Gaussians whose parameters come from an MLP with two hidden layers,
each Dense -> BatchNorm -> Leaky-ReLU, and a linear head (eqs. C.6-C.8). The Leaky-ReLU slope is 0.01 and the
BatchNorm momentum 0.9, the PyTorch defaults of the paper's code base. Every head starts near a unit-scale
Gaussian (`seatbelt_tf.nn.heads`). The hidden blocks run through `networks.norm_block` (the Dense bias, which
BatchNorm cancels in training, stays out of the training step).
"""

import keras
from keras import layers

from seatbelt_tf.nn.heads import DEFAULT_LOC_GAIN, gaussian_head
from seatbelt_tf.nn.networks import Dense, batch_norm, norm_block


@keras.saving.register_keras_serializable(package="seatbelt_tf")
class GaussianMLP(layers.Layer):
  """`[B, d_in]` -> `[B, 2 * output_dim]` raw Gaussian parameters (means, then pre-softplus scales).

  Args:
    output_dim: width of the latent layer the conditional is over.
    hidden: width of both hidden layers (an entry of h_sizes, eq. C.8).
    num_hidden: hidden layers (2 in the paper).
    negative_slope: Leaky-ReLU slope.
    loc_gain: initial size of the means (`seatbelt_tf.nn.heads`): 1 for the inference conditionals
      q(z^{i+1}|z^i), 0 for the generative ones p(z^i|z^{i+1}), which then start at the prior N(0, I).
  """

  def __init__(self, output_dim, hidden, num_hidden=2, negative_slope=0.01, loc_gain=DEFAULT_LOC_GAIN, **kwargs):
    super().__init__(**kwargs)
    self.output_dim = int(output_dim)
    self.hidden = int(hidden)
    self.num_hidden = int(num_hidden)
    self.negative_slope = float(negative_slope)
    self.loc_gain = float(loc_gain)
    self.blocks = []
    for i in range(self.num_hidden):
      self.blocks += [Dense(self.hidden, name=f"fc{i + 1}"),
                      batch_norm(f"bn{i + 1}"),
                      layers.LeakyReLU(negative_slope=self.negative_slope)]
    self.head = gaussian_head(self.output_dim, "gaussian_params", self.loc_gain)

  def call(self, x, training=False):
    for i in range(0, len(self.blocks), 3):
      x = norm_block(*self.blocks[i:i + 3], x, training)
    return self.head(x)

  def get_config(self):
    return {**super().get_config(), "output_dim": self.output_dim, "hidden": self.hidden,
            "num_hidden": self.num_hidden, "negative_slope": self.negative_slope, "loc_gain": self.loc_gain}
