"""beta-TCVAE (Chen et al., 2018): the total correlation of q(z) weighted by beta (paper eq. 4)."""

import keras

from seatbelt_tf import objectives
from seatbelt_tf.models.base import BaseVAE, batch_means


@keras.saving.register_keras_serializable(package="seatbelt_tf")
class BetaTCVAE(BaseVAE):
  """beta-TCVAE, paper eq. (4): ELBO terms 1 + 2 + 3 + B + beta * A.

  Since terms 2 + A + B add up to E[log q(z|x) - log p(z)] = KL(q(z|x) || p(z)), eq. (4) equals
  ELBO - (beta - 1) * TC. The loss uses exactly that form,

      loss = -E_q log p(x|z) + sum_j max(free_bits, E_batch KL_j) + (beta - 1) * E_batch TC,

  with the analytic KL (the same expectation as the sampled MI + TC + dim-KL, lower variance) and the total
  correlation TC = log q(z) - log prod_j q(z_j) estimated by MWS (eq. B.7) or MSS (`estimator`). With
  free_bits = 0 and beta = 1 the loss is the negative ELBO.
  """

  def loss_terms(self, x, training):
    terms = self.single_layer_terms(x, training)
    loss = objectives.beta_tc_loss(terms["reconstruction"], [terms["kl_units"]], terms["tc"], self.loss_beta(training),
                                   self.free_bits)
    return batch_means(terms, loss, self.estimator_offsets())
