"""Models: one base class owns the loop; each family only combines objective terms."""

from seatbelt_tf.models.base import BaseVAE
from seatbelt_tf.models.beta_tcvae import BetaTCVAE
from seatbelt_tf.models.vae import VAE

# name -> model class
MODELS = {
    "vae": VAE,
    "beta_tcvae": BetaTCVAE,
}


def build_model(name, **kwargs):
  """Builds the model registered under `name` with the given constructor arguments."""
  if name not in MODELS:
    raise ValueError(f"Unknown model {name!r}: choose one of {', '.join(sorted(MODELS))}.")
  return MODELS[name](**kwargs)


__all__ = ["MODELS", "BaseVAE", "BetaTCVAE", "VAE", "build_model"]
