"""Encoder and decoder networks (Chen et al., 2018)."""

from seatbelt_tf.nn.networks import NETWORKS, XLA_BY_DEFAULT, ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, build_networks

__all__ = ["NETWORKS", "XLA_BY_DEFAULT", "ConvDecoder", "ConvEncoder", "MLPDecoder", "MLPEncoder", "build_networks"]
