"""Cost of the training-health telemetry (seatbelt_tf.health) per training step: the compiled train step of the
beta-TCVAE and the L = 2 Seatbelt-VAE (conv, batch 64) with the per-group gradient norms and spike guard, and with
them replaced by constants, timed in alternating rounds in one process (median ms/step and the ratio).

  python benchmarks/health_overhead.py [--rounds=10] [--steps=15]
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from seatbelt_tf import data, models  # noqa: E402


def build(name, health):
  keras.utils.set_random_seed(0)
  kw = {"network": "conv", "beta": 1.0, "dataset_size": 727280}
  kw.update({"layers": 2} if models.is_hierarchical(name) else {"latent_dim": 10})
  model = models.build_model(name, **kw)
  model.build((None, 64, 64, 1))
  if not health:  # the same step without the norms and the guard
    model._health_step = lambda terms, gradients: {n: tf.constant(0.0) for n in model.grad_norm_names}  # pylint: disable=protected-access
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  model.optimizer.build(model.trainable_variables)
  return tf.function(model.train_step)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--rounds", type=int, default=10)
  parser.add_argument("--steps", type=int, default=15)
  args = parser.parse_args()
  x = tf.constant(data.ProceduralDSprites().images(np.arange(0, 64 * 997, 997)), tf.float32)
  print("| model | with telemetry (ms/step) | without (ms/step) | ratio |\n|---|---|---|---|")
  for name in ("beta_tcvae", "seatbelt"):
    steps = {health: build(name, health) for health in (True, False)}
    for step in steps.values():
      for _ in range(3):
        step(x)
    times = {True: [], False: []}
    for r in range(args.rounds):
      for health in ((True, False) if r % 2 else (False, True)):
        start = time.perf_counter()
        for _ in range(args.steps):
          out = steps[health](x)
        float(out["loss"])
        times[health].append((time.perf_counter() - start) / args.steps)
    on, off = np.median(times[True]), np.median(times[False])
    print(f"| {name} | {on * 1e3:.1f} | {off * 1e3:.1f} | {on / off:.3f} |", flush=True)


if __name__ == "__main__":
  main()
