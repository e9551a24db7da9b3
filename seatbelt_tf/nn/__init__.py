"""Encoder and decoder networks (Chen et al., 2018) and the MLPs between latent layers (paper Appendix C.1)."""

from seatbelt_tf.nn.networks import (NETWORKS, XLA_BY_DEFAULT, ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder,
                                     build_networks)
from seatbelt_tf.nn.heads import GaussianHeadBias, GaussianHeadKernel, encoder_head, gaussian_head
from seatbelt_tf.nn.stochastic import GaussianMLP

__all__ = ["NETWORKS", "XLA_BY_DEFAULT", "ConvDecoder", "ConvEncoder", "GaussianHeadBias", "GaussianHeadKernel",
           "GaussianMLP", "MLPDecoder", "MLPEncoder", "build_networks", "encoder_head", "gaussian_head"]
