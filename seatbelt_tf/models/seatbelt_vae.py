"""Seatbelt-VAE: a hierarchical beta-TCVAE whose likelihood is conditioned on every layer (paper Section 3)."""

import keras
import tensorflow as tf

from seatbelt_tf.models.hierarchical import HierarchicalVAE


@keras.saving.register_keras_serializable(package="seatbelt_tf")
class SeatbeltVAE(HierarchicalVAE):
  """Seatbelt-VAE, paper eqs. (8)-(10): p(x, z) = p(x|z^1, ..., z^L) prod p(z^i|z^{i+1}) p(z^L), with the
  beta-TC decomposition T_a + beta T_b + T_c (eq. A.16) applied to the top layer only.

  How each layer enters the decoder (the skip connections of eq. 8, Figure 2): the samples of all L layers are
  concatenated, `[B, sum_i d_i]`, and fed to the decoder's first (dense) layer. That layer computes
  sum_i W_i z^i + b, so every z^i reaches x through its own learned projection into the decoder's first hidden
  layer, the rest of the Chen et al. decoder being unchanged. With L = 1 this is exactly the beta-TCVAE.
  """

  def decoder_input(self, z):
    return z[0] if len(z) == 1 else tf.concat(z, axis=-1)
