"""Subprocess helper of test_distribute.py: a few training steps of a tiny model on one device and under
MirroredStrategy over 2 logical CPUs, from the same initial weights and global batches; prints JSON with the largest
weight and metric differences.

  python tests/distribute_probe.py MODEL [--no_gather]
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


def main(argv):
  name = argv[1]
  if "--no_gather" in argv:  # what the test shows would happen without the all-gather
    distribute.gather_components = lambda loc, scale: None
  images = data.ProceduralDSprites().images(np.arange(0, 737280, 737280 // 48)[:48]).astype("float32")
  dataset = tf.data.Dataset.from_tensor_slices(images).batch(16, drop_remainder=True)
  single = _build(name, tf.distribute.get_strategy())
  mirrored = _build(name, tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
  initial = max(float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(), mirrored.get_weights()))
  logs = {}
  for key, model in (("single", single), ("mirrored", mirrored)):
    history = model.fit(dataset, epochs=1, steps_per_epoch=3, shuffle=False, verbose=0)
    logs[key] = {k: float(v[-1]) for k, v in history.history.items()}
  weights = max(float(np.max(np.abs(a - b))) for a, b in zip(single.get_weights(), mirrored.get_weights()))
  metrics = max(abs(logs["single"][k] - logs["mirrored"][k]) / max(1.0, abs(logs["single"][k]))
                for k in logs["single"])
  print(json.dumps({"replicas": mirrored.distribute_strategy.num_replicas_in_sync, "initial_weight_diff": initial,
                    "weight_diff": weights, "metric_rel_diff": metrics, "logs": logs}))


if __name__ == "__main__":
  main(sys.argv)
