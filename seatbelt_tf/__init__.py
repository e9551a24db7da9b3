"""seatbelt_tf: hierarchical disentangled VAEs (VAE, beta-TCVAE, beta-TC DLGM, Seatbelt-VAE) in TensorFlow/Keras,
their robustness to adversarial attack, and SavedModel export of their encoders.

Paper: "Disentangling Improves VAEs' Robustness to Adversarial Attacks" (Seatbelt-VAE).
"""

__version__ = "0.1.0"

from seatbelt_tf.objectives.estimators import log_qz_minibatch  # noqa: E402

__all__ = ["__version__", "log_qz_minibatch"]
