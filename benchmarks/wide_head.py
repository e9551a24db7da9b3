"""The MLP decoder's head (1200 -> 4096) with its kernel gradient in column blocks (`nn.networks.WideDense`)
against Keras's Dense: the product alone, and the campaign's whole training step.

Table 1: the kernel gradient `[1200, B]^T-product [B, 4096]` as one product and in blocks of 512, 1024 and 2048
output columns, in graph mode and under XLA (ms, median of `--calls`).
Table 2: one training step of the campaign's models (MLP pair, batch `--batch_size`, compiled as
`--jit_compile=auto` compiles it: XLA) with the `WideDense` head and with Keras's Dense head; both models are built
in one process and their steps alternate, `--rounds` rounds of `--steps` steps (s per step, median).

Usage: python benchmarks/wide_head.py [--batch_size=2048] [--rounds=3] [--steps=4] [--calls=7]
       [--models=seatbelt:2,beta_tcvae:1]
"""

import argparse
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from seatbelt_tf import config as config_lib  # noqa: E402
from seatbelt_tf import launch, runs  # noqa: E402
from seatbelt_tf.nn import networks  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from side_by_side import alternate_times, swapped  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def product_table(batch, calls):
  rng = np.random.default_rng(0)
  h = tf.constant(rng.normal(size=(batch, 1200)), tf.float32)
  dy = tf.constant(rng.normal(size=(batch, 4096)), tf.float32)

  def blocked(columns):
    return lambda: tf.concat([tf.matmul(h, dy[:, s:s + columns], transpose_a=True) for s in range(0, 4096, columns)],
                             1)
  forms = {"one product": lambda: tf.matmul(h, dy, transpose_a=True)}
  forms.update({f"blocks of {c} columns": blocked(c) for c in (512, 1024, 2048)})
  print(f"Table 1: the head's kernel gradient, [1200, {batch}] x [{batch}, 4096], ms (median of {calls} calls)\n")
  print("| form | graph | xla |\n|---|---|---|")
  for name, form in forms.items():
    cells = []
    for jit in (False, True):
      fn = tf.function(form, jit_compile=jit, autograph=False)
      fn().numpy()
      times = []
      for _ in range(calls):
        start = time.perf_counter()
        fn().numpy()
        times.append(time.perf_counter() - start)
      cells.append(f"{statistics.median(times) * 1e3:.1f}")
    print(f"| {name} | {' | '.join(cells)} |")
  print()


def step_function(model_name, layers, batch):
  """A traced training step of the campaign's `model_name` and a batch of images for it."""
  args = launch.expand_flagfiles([f"--flagfile={os.path.join(REPO, 'configs', 'base.cfg')}"])
  config = config_lib.RunConfig.from_args(args, workdir="/tmp/wide_head_unused", model=model_name, layers=layers,
                                          network="mlp", batch_size=batch, beta=4.0, verbose=0)
  source = runs.build_source(config)
  model = runs.build_model(config, source)
  images = tf.constant(source.tf_images(np.arange(batch)).numpy())
  iterator = iter(tf.data.Dataset.from_tensors(images).repeat())
  model.make_train_function()
  train = model.train_function
  float(train(iterator)["loss"])  # traces and compiles
  return lambda: float(train(iterator)["loss"])


def step_table(models, batch, rounds, steps):
  steppers = {}
  for spec in models:
    name, layers = spec.split(":")
    steppers[(spec, "WideDense (blocks of 1024)")] = step_function(name, int(layers), batch)
    # Keras's Dense code in WideDense while this model's step is traced (the traced graph keeps it)
    with swapped(networks.WideDense, "call", keras.layers.Dense.call):
      steppers[(spec, "Keras Dense")] = step_function(name, int(layers), batch)
  times = alternate_times(steppers, rounds, steps)
  print(f"Table 2: training step at batch {batch}, MLP pair under XLA, s per step (median of {rounds} rounds of "
        f"{steps} steps; the forms alternate)\n")
  print("| model | head | s per step | min | max | step time vs Keras Dense |\n|---|---|---|---|---|---|")
  for spec in models:
    base = statistics.median(times[(spec, "Keras Dense")])
    for head in ("Keras Dense", "WideDense (blocks of 1024)"):
      t = times[(spec, head)]
      print(f"| {spec} | {head} | {statistics.median(t):.3f} | {min(t):.3f} | {max(t):.3f} | "
            f"{statistics.median(t) / base:.2f} |")


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch_size", type=int, default=2048)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--steps", type=int, default=4)
  parser.add_argument("--calls", type=int, default=7)
  parser.add_argument("--models", default="seatbelt:2,beta_tcvae:1", help="model:layers, comma-separated")
  args = parser.parse_args()
  product_table(args.batch_size, args.calls)
  step_table(args.models.split(","), args.batch_size, args.rounds, args.steps)


if __name__ == "__main__":
  main()
