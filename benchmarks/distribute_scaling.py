"""How the cost of a training step grows: with the batch B (the O(B^2 D) minibatch estimators), with the depth L,
and with the number of replicas (and what the cross-replica all-gather costs).

Table 1 (estimator): time of the MWS decomposition (`objectives.decompose_kl`, forward and backward) alone, and the
size of the `[B, B, D]` log-density tensor the dense form built (the row blocks do not), for B in --batch_sizes
and D in --dims.
Table 2 (model): images/s of a full Seatbelt-VAE training step (MLP pair, XLA off) for each B and L, and the share of
the step the estimator takes (its Table 1 time at D = top-layer width over the step time).
Table 3 (replicas): the same step on 1 device and under MirroredStrategy on 2 logical CPU devices (sharing this
machine's cores, so the replicated step cannot be faster here: the point is the overhead), with and without the
all-gather of the posterior parameters.

Usage: python benchmarks/distribute_scaling.py [--batch_sizes=64,256,1024] [--dims=6,10,50] [--layers=1,2,4]
       [--rounds=5] [--steps=5]
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_CPU = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_CPU, [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
import numpy as np  # noqa: E402

from seatbelt_tf import data, distribute, models, objectives  # noqa: E402

DATASET_SIZE = 727280


def _median_time(fn, rounds, steps):
  fn()  # trace / warm up
  times = []
  for _ in range(rounds):
    start = time.perf_counter()
    for _ in range(steps):
      fn()
    times.append((time.perf_counter() - start) / steps)
  return statistics.median(times)


def estimator_time(batch, dim, rounds, steps):
  z, loc = tf.random.normal([2, batch, dim])
  scale = tf.exp(0.1 * tf.random.normal([batch, dim]))

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      tape.watch(loc)
      tc = tf.reduce_mean(objectives.decompose_kl(z, loc, scale, DATASET_SIZE, "mws")["tc"])
    return tape.gradient(tc, loc)

  return _median_time(lambda: step().numpy(), rounds, steps)


def _model(layers, strategy):
  with strategy.scope():
    keras.utils.set_random_seed(0)
    model = models.build_model("seatbelt", network="mlp", layers=layers, z_sizes=(96, 48, 24, 12, 6),
                               dataset_size=DATASET_SIZE, beta=6.0)
    model.build((None, 64, 64, 1))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), jit_compile=False)
    model.optimizer.build(model.trainable_variables)
  return model


def step_time(layers, batch, rounds, steps, strategy=None, gather=True):
  strategy = strategy or tf.distribute.get_strategy()
  model = _model(layers, strategy)
  images = data.ProceduralDSprites().images(np.arange(batch) * 97).astype("float32")
  dataset = tf.data.Dataset.from_tensors(images).repeat()
  original = distribute.gather_components
  if not gather:
    distribute.gather_components = lambda loc, scale: None
  try:
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    model.make_train_function()
    return _median_time(lambda: model.train_function(iterator), rounds, steps)
  finally:
    distribute.gather_components = original


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch_sizes", default="64,256,1024")
  parser.add_argument("--dims", default="6,10,50")
  parser.add_argument("--layers", default="1,2,4")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--steps", type=int, default=5)
  args = parser.parse_args()
  batches = [int(b) for b in args.batch_sizes.split(",")]
  dims = [int(d) for d in args.dims.split(",")]
  depths = [int(v) for v in args.layers.split(",")]

  print("\nTable 1: MWS decomposition (decompose_kl, forward + backward), one device")
  print("| B | D | ms | [B, B, D] tensor MiB |")
  print("|---|---|---|---|")
  est = {}
  for b in batches:
    for d in dims:
      est[b, d] = estimator_time(b, d, args.rounds, args.steps)
      print(f"| {b} | {d} | {1000 * est[b, d]:.2f} | {b * b * d * 4 / 2**20:.1f} |", flush=True)

  print("\nTable 2: Seatbelt-VAE training step (MLP, graph mode), one device")
  print("| B | L | ms/step | images/s | estimator share |")
  print("|---|---|---|---|---|")
  top = {1: 6, 2: 6, 3: 6, 4: 6, 5: 6}
  for b in batches:
    for layers in depths:
      t = step_time(layers, b, args.rounds, args.steps)
      share = estimator_time(b, top[layers], args.rounds, args.steps) / t
      print(f"| {b} | {layers} | {1000 * t:.1f} | {b / t:.0f} | {100 * share:.1f}% |", flush=True)

  print("\nTable 3: replicas (2 logical CPU devices on this 2-core machine), Seatbelt-VAE L = 2, MLP")
  print("| global B | setting | ms/step | vs 1 device |")
  print("|---|---|---|---|")
  mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
  for b in batches:
    one = step_time(2, b, args.rounds, args.steps)
    two = step_time(2, b, args.rounds, args.steps, mirrored)
    local = step_time(2, b, args.rounds, args.steps, mirrored, gather=False)
    print(f"| {b} | 1 device | {1000 * one:.1f} | 1.00x |")
    print(f"| {b} | 2 replicas, all-gather (exact) | {1000 * two:.1f} | {two / one:.2f}x |")
    print(f"| {b} | 2 replicas, local estimator (inexact) | {1000 * local:.1f} | {local / one:.2f}x |", flush=True)


if __name__ == "__main__":
  main()
