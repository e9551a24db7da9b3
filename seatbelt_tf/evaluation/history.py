"""A run's training history, read back from the TensorBoard event files `--mode=train` writes.

The launcher's Keras loop logs one value per epoch (`steps_per_epoch` steps) of every metric the model tracks,
under `<workdir>/tensorboard/train/` with tags `epoch_<metric>`: the ELBO, the reconstruction term, the KL of each
layer (`kl_1` ... `kl_L`, paper Eq (9)'s terms before beta), the beta-TC decomposition's terms and the gradient
norms per group. A resumed run writes a new event file that repeats the epoch it resumed in; the newest file's
value of an epoch wins.

`read_epoch_history(workdir)` -> {"epoch": [e0, e1, ...], "<metric>": [value per epoch or None], ...}, the
epochs sorted; the campaign's summaries (launch/collect_reproduction.py) keep it per run so the tables can show
how the information in z^L moves during training.
"""

import glob
import os

import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import event_pb2
from tensorboard.util import tensor_util

PREFIX = "epoch_"


def _event_files(workdir):
  """The run's training event files, oldest first (their names carry the creation time)."""
  files = glob.glob(os.path.join(workdir, "tensorboard", "train", "events.out.tfevents.*"))
  return sorted(files, key=lambda path: (int(os.path.basename(path).split(".")[3]), path))


def _scalar(value):
  """The float of a summary value written by tf.summary.scalar (a tensor) or by the TF1 API (simple_value)."""
  if value.HasField("tensor"):
    array = tensor_util.make_ndarray(value.tensor)
    return float(array) if array.size == 1 else None
  return float(value.simple_value)


def read_epoch_history(workdir, skip=("learning_rate",)):
  """Per-epoch training metrics of the run in `workdir` ({} when it has no event files).

  Args:
    workdir: a `--mode=train` workdir.
    skip: metric names to leave out.

  Returns:
    {"epoch": sorted epoch indices (0-based), metric: [value per epoch, None where that epoch lacks it]}.
  """
  values = {}
  for path in _event_files(workdir):
    try:
      for record in tf.data.TFRecordDataset(path):
        event = event_pb2.Event.FromString(record.numpy())
        for value in event.summary.value:
          if not value.tag.startswith(PREFIX) or value.tag[len(PREFIX):] in skip:
            continue
          scalar = _scalar(value)
          if scalar is not None and np.isfinite(scalar):
            values.setdefault(value.tag[len(PREFIX):], {})[int(event.step)] = scalar
    except tf.errors.DataLossError:
      continue  # a file cut short by a kill: its complete records were read
  if not values:
    return {}
  epochs = sorted({e for per_epoch in values.values() for e in per_epoch})
  out = {"epoch": epochs}
  for name, per_epoch in sorted(values.items()):
    out[name] = [per_epoch.get(e) for e in epochs]
  return out
