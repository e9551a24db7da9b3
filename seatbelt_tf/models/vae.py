"""The (beta-)VAE: the paper's vanilla VAE baseline (Section 2) and, with beta != 1, Higgins et al. (2017)."""

import keras
import tensorflow as tf

from seatbelt_tf import objectives
from seatbelt_tf.models.base import BaseVAE, batch_means


@keras.saving.register_keras_serializable(package="seatbelt_tf")
class VAE(BaseVAE):
  """beta-VAE; beta = 1 is the vanilla VAE whose loss is the negative ELBO.

  loss = -E_q log p(x|z) + beta * sum_j max(free_bits, E_batch KL(q(z_j|x) || p(z_j)))

  The KL is analytic; the reconstruction uses one reparameterised sample. The MI/TC/dim-KL trackers are
  minibatch estimates (`objectives.decompose_kl`) reported for comparison with the beta-TCVAE.
  """

  def loss_terms(self, x, training):
    terms = self.single_layer_terms(x, training)
    kl = objectives.free_bits_kl(terms["kl_units"], self.free_bits)
    loss = -tf.reduce_mean(terms["reconstruction"]) + objectives.as_dtype(self.loss_beta(training), kl.dtype) * kl
    return batch_means(terms, loss, self.estimator_offsets())
