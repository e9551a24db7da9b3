"""Subprocess helper of test_distribute.py: a few training steps of a tiny model on one device and under
MirroredStrategy over 2 logical CPUs (with the all-gather, and without it), from the same initial weights and global
batches; prints JSON with the largest weight and metric differences of each replicated run from the one-device run.

  python tests/distribute_probe.py MODEL
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from seatbelt_tf import data, distribute, models  # noqa: E402


def _build(name, strategy):
  with strategy.scope():
    keras.utils.set_random_seed(0)
    kw = {"network": "tiny_mlp", "dataset_size": 1000, "beta": 4.0}
    if models.is_hierarchical(name):
      kw.update(layers=2, z_sizes=(8, 6), h_sizes=(16,))
    else:
      kw["latent_dim"] = 4
    model = models.build_model(name, **kw)
    model.build((None, 64, 64, 1))
    # Plain SGD: Adam divides by sqrt(v), so parameters whose true gradient is 0 (the biases of Dense layers
    # followed by BatchNorm) would take lr-sized steps driven by float round-off and hide the comparison.
    model.compile(optimizer=keras.optimizers.SGD(1e-4))
    model.optimizer.build(model.trainable_variables)
  return model


def _train(model, dataset, gather=True):
  original = distribute.gather_components
  if not gather:  # what would happen without the all-gather: each replica's estimators see only its own rows
    distribute.gather_components = lambda loc, scale: None
  try:
    history = model.fit(dataset, epochs=1, steps_per_epoch=3, shuffle=False, verbose=0)
  finally:
    distribute.gather_components = original
  return {k: float(v[-1]) for k, v in history.history.items()}


def _state(model):
  """Every variable but the training-health monitor's (a replica watches its own gradients: seatbelt_tf.health)."""
  monitor = {id(v) for v in model.health.variables}
  return [v.numpy() for v in model.variables if id(v) not in monitor]


def _compare(a, b, logs_a, logs_b):
  # grad_norm*: each replica's own gradients (seatbelt_tf.health), not the all-reduced one's.
  return {"weight_diff": max(float(np.max(np.abs(x - y))) for x, y in zip(_state(a), _state(b))),
          "metric_rel_diff": max(abs(logs_a[k] - logs_b[k]) / max(1.0, abs(logs_a[k])) for k in logs_a
                                 if not k.startswith("grad_norm"))}


def main(argv):
  name = argv[1]
  images = data.ProceduralDSprites().images(np.arange(0, 737280, 737280 // 48)[:48]).astype("float32")
  dataset = tf.data.Dataset.from_tensor_slices(images).batch(16, drop_remainder=True)
  mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  single, exact, local = (_build(name, tf.distribute.get_strategy()), _build(name, mirrored), _build(name, mirrored))
  initial = _compare(single, exact, {"x": 0.0}, {"x": 0.0})["weight_diff"]
  logs = {"single": _train(single, dataset), "gather": _train(exact, dataset),
          "no_gather": _train(local, dataset, gather=False)}
  print(json.dumps({"replicas": mirrored.num_replicas_in_sync, "initial_weight_diff": initial,
                    "gather": _compare(single, exact, logs["single"], logs["gather"]),
                    "no_gather": _compare(single, local, logs["single"], logs["no_gather"]), "logs": logs}))


if __name__ == "__main__":
  main(sys.argv)
