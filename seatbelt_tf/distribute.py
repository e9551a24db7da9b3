"""tf.distribute: strategy selection and the cross-replica helpers that keep the estimators exact.

Under a strategy with R replicas each replica sees B = G / R rows of the global batch of G. Two things would make
a replicated step differ from one device on the same global batch, and both are handled here:

* The minibatch estimators of q(z) (MWS, MSS; paper eqs. B.7, B.15) score every sample against the posterior
  components of the whole batch. `gather_components` all-gathers (loc, scale) across replicas (in replica order,
  which is the order of the global batch) and returns this replica's row offset, so each replica evaluates its own
  samples against all G components with the dataset size N unchanged: `objectives.decompose_kl(...,
  global_params=...)`. The all-gather is differentiable (its gradient all-reduces and slices).
* The sampling noise: `global_standard_normal` draws noise for the global batch from the (replica-identical) seed
  and keeps this replica's rows, so replica r samples exactly the noise one device would give rows offset..offset+B.

The model's `train_step` divides its loss by R (the optimizer sums gradients over replicas), BatchNormalization is
synchronised across replicas when the networks are built under a strategy, and Keras' metric variables sum their
totals and counts across replicas, so the logged values are global batch means.
"""

import tensorflow as tf

STRATEGIES = ("default", "mirrored", "multi_worker")


def build_strategy(name="default", devices=()):
  """The tf.distribute strategy of `--strategy` (and `--devices` for mirrored; default: every local GPU, else
  the CPU)."""
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    _ensure_cpu_devices(devices)
    return tf.distribute.MirroredStrategy(list(devices) or None)
  if name == "multi_worker":
    import json  # pylint: disable=g-import-not-at-top
    import os  # pylint: disable=g-import-not-at-top
    if not json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster"):
      raise ValueError("--strategy=multi_worker needs TF_CONFIG with a cluster and this worker's task; see "
                       "launch/multi_worker.sh.")
    return tf.distribute.MultiWorkerMirroredStrategy()
  raise ValueError(f"Unknown strategy {name!r}: choose one of {', '.join(STRATEGIES)}.")


def _ensure_cpu_devices(devices):
  """Splits the CPU into logical devices when `devices` names more CPUs than exist (e.g. /cpu:0,/cpu:1 to
  replicate on one CPU machine); TensorFlow allows this only before it initialises."""
  wanted = sum(1 for d in devices if "cpu" in d.lower())
  cpu = tf.config.list_physical_devices("CPU")[0]  # (listing logical devices would initialise the runtime)
  if wanted <= max(1, len(tf.config.get_logical_device_configuration(cpu) or ())):
    return
  try:
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * wanted)
  except RuntimeError as e:
    raise ValueError(f"--devices={','.join(devices)} needs {wanted} logical CPUs, but TensorFlow was initialised "
                     "before they could be created; pass --strategy first thing in a fresh process.") from e


def worker_role(strategy):
  """(is_chief, name) of this process: (True, "chief") except for the non-chief workers of a multi-worker
  strategy, named "<task type>_<index>" (they write their collective checkpoint saves to their own folder)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or resolver is None:
    return True, "chief"
  task_type, task_id = resolver.task_type, resolver.task_id
  has_chief = "chief" in resolver.cluster_spec().as_dict()
  chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and not has_chief) or task_type is None
  return chief, f"{task_type}_{task_id}"


def replica_context():
  """The replica context when running replicated (more than one replica), else None."""
  ctx = tf.distribute.get_replica_context()
  if ctx is None or ctx.num_replicas_in_sync == 1:
    return None
  return ctx


def num_replicas():
  """Replicas of the current strategy (1 outside any)."""
  return tf.distribute.get_strategy().num_replicas_in_sync


def in_strategy():
  """Whether code runs under a non-default strategy (e.g. networks built inside `strategy.scope()`)."""
  return tf.distribute.has_strategy()


def rank1_logs():
  """Whether step logs must be rank 1: Keras 3 reduces MultiWorkerMirroredStrategy logs with
  `strategy.reduce("MEAN", v, axis=0)`, which fails on scalars ("Invalid reduction dimension 0 for input with 0
  dimensions", tensorflow/tensorflow#72388). Logs of shape [1] reduce to the same value (every replica holds the
  global metric result)."""
  strategy = tf.distribute.get_strategy()
  in_multi_worker = getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)
  return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) and in_multi_worker()


def _offset_and_total(ctx, local_rows):
  sizes = ctx.all_gather(tf.reshape(local_rows, [1]), axis=0)
  replica = ctx.replica_id_in_sync_group
  replica = tf.cast(replica, sizes.dtype) if isinstance(replica, tf.Tensor) else replica
  offset = tf.reduce_sum(sizes[:replica])
  return offset, tf.reduce_sum(sizes)


def gather_components(loc, scale):
  """(global loc `[G, D]`, global scale `[G, D]`, this replica's row offset) when replicated, else None."""
  ctx = replica_context()
  if ctx is None:
    return None
  offset, _ = _offset_and_total(ctx, tf.shape(loc)[0])
  return ctx.all_gather(loc, axis=0), ctx.all_gather(scale, axis=0), offset


def global_standard_normal(shape, seed, dtype):
  """Standard-normal noise of `shape` `[B, D]` for this replica's rows of the global batch (see module docstring);
  outside a replicated context, `tf.random.stateless_normal(shape, seed)`."""
  ctx = replica_context()
  if ctx is None:
    return tf.random.stateless_normal(shape, seed, dtype=dtype)
  offset, total = _offset_and_total(ctx, shape[0])
  noise = tf.random.stateless_normal(tf.stack([total, shape[1]]), seed, dtype=dtype)
  return noise[offset:offset + shape[0]]
