"""Representation metrics: numpy cores that take codes and factors, and front ends that take an encoder callable."""

from seatbelt_tf.metrics.mutual_info_gap import block_shapes
from seatbelt_tf.metrics.mutual_info_gap import discrete_entropy
from seatbelt_tf.metrics.mutual_info_gap import discrete_mutual_info
from seatbelt_tf.metrics.mutual_info_gap import discretize
from seatbelt_tf.metrics.mutual_info_gap import gaussian_mutual_info
from seatbelt_tf.metrics.mutual_info_gap import log_mixture_density
from seatbelt_tf.metrics.mutual_info_gap import METHODS as MIG_METHODS
from seatbelt_tf.metrics.mutual_info_gap import mig
from seatbelt_tf.metrics.representation import choose_points
from seatbelt_tf.metrics.representation import compute_mig
from seatbelt_tf.metrics.representation import compute_migs
from seatbelt_tf.metrics.representation import encode_dataset
