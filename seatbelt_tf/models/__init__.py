"""Models: one base class owns the loop; each family only combines objective terms."""

from seatbelt_tf.models.base import BaseVAE
from seatbelt_tf.models.beta_tcdlgm import BetaTCDLGM
from seatbelt_tf.models.beta_tcvae import BetaTCVAE
from seatbelt_tf.models.hierarchical import DEFAULT_Z_SIZES, HierarchicalVAE
from seatbelt_tf.models.seatbelt_vae import SeatbeltVAE
from seatbelt_tf.models.vae import VAE

# name -> model class
MODELS = {
    "vae": VAE,
    "beta_tcvae": BetaTCVAE,
    "beta_tcdlgm": BetaTCDLGM,
    "seatbelt": SeatbeltVAE,
}


def is_hierarchical(name):
  """Whether the model registered under `name` has a hierarchy of layers (takes layers/z_sizes/h_sizes)."""
  return issubclass(MODELS[name], HierarchicalVAE)


def build_model(name, **kwargs):
  """Builds the model registered under `name` with the given constructor arguments."""
  if name not in MODELS:
    raise ValueError(f"Unknown model {name!r}: choose one of {', '.join(sorted(MODELS))}.")
  return MODELS[name](**kwargs)


__all__ = ["DEFAULT_Z_SIZES", "MODELS", "BaseVAE", "BetaTCDLGM", "BetaTCVAE", "HierarchicalVAE", "SeatbeltVAE",
           "VAE", "build_model", "is_hierarchical"]
