"""Evaluation beyond the losses: ELBO without beta, noise robustness, weight norms, samples, traversals, the
per-model suite (`run_suite`) and multi-run reports (`write_report`)."""

from seatbelt_tf.evaluation.measures import fixed_noise_elbo
from seatbelt_tf.evaluation.measures import noise_robustness
from seatbelt_tf.evaluation.measures import samples
from seatbelt_tf.evaluation.measures import traversals
from seatbelt_tf.evaluation.measures import weight_norms
from seatbelt_tf.evaluation.suite import run_suite
from seatbelt_tf.evaluation.report import find_runs
from seatbelt_tf.evaluation.report import write_report
