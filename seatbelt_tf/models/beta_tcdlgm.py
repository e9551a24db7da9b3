"""beta-TC DLGM: the beta-TC penalty on the top layer of a deep latent Gaussian model (paper Section 3, eq. 11)."""

import keras

from seatbelt_tf.models.hierarchical import HierarchicalVAE


@keras.saving.register_keras_serializable(package="seatbelt_tf")
class BetaTCDLGM(HierarchicalVAE):
  """beta-TC DLGM (paper eq. 11): the DLGM of Rezende et al. (2014), p(x, z) = p(x|z^1) prod p(z^i|z^{i+1}) p(z^L)
  (eq. 6), trained with the total correlation of the top layer weighted by beta (eqs. 9, A.16 with p(x|z^1)).

  The decoder sees z^1 only, so the upper layers reach x only through the generative chain; the paper finds
  these models prone to layer collapse (Section 2.2) and brittle to latent attacks on z^1 (eq. 14).
  """

  def decoder_input(self, z):
    return z[0]
