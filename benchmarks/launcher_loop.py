"""Training speed in the launcher's own loop, against the raw step and the matmul peak, in one process (issue 21).

For each network (`--networks`, default conv and mlp) of a beta-TCVAE (beta 6, MWS, `--batch_size`), alternating in
rounds so that machine noise hits every row alike:

* the float32 matmul peak (a 2048x2048 `tf.matmul` loop, `train_throughput.matmul_peak_gflops`);
* the raw step: the launcher-built model's `train_step`, compiled as `--jit_compile=auto` compiles it, on one fixed
  batch (no input pipeline, no callbacks);
* the launcher's loop: `modes.train.train` itself (the procedural dSprites pipeline, every callback, a checkpoint
  per epoch), resumed in its workdir for `--epochs` more epochs of `--steps_per_epoch` steps each round; its speed
  is the run's own `train_images_per_s` (results.json; first epoch of each round left out).

Prints a table per network: images/s (median over rounds, min-max), training GFLOP/s (the analytic FLOPs of
`train_throughput.forward_flops` x 3) and the fraction of the peak measured in the same round, and the loop/raw
ratio (what the pipeline, the callbacks and the checkpoints cost).

Usage: python benchmarks/launcher_loop.py [--networks=conv,mlp] [--batch_size=256] [--rounds=3] [--epochs=2]
       [--steps_per_epoch=200] [--workdir=/tmp/launcher_loop]
"""

import argparse
import os
import shutil
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_throughput import forward_flops, matmul_peak_gflops  # noqa: E402

from seatbelt_tf import config as config_lib, data as data_lib, nn, runs  # noqa: E402
from seatbelt_tf.modes import train as train_mode  # noqa: E402


def run_config(workdir, network, batch_size, steps_per_epoch, train_steps):
  return config_lib.RunConfig.from_flat({
      "workdir": workdir, "model": "beta_tcvae", "network": network, "beta": 6.0, "latent_dim": 10,
      "batch_size": batch_size, "steps_per_epoch": steps_per_epoch, "train_steps": train_steps,
      "eval_examples": 1000, "verbose": 0})


def raw_step_rate(config, steps=10):
  """Images/s of the launcher-built model's compiled train_step on one fixed batch (after a warm-up call)."""
  _, source = runs.open_source(config)
  model = runs.build_model(config, source)
  batch = next(iter(data_lib.train_dataset(source, config.train.batch_size, config.data.eval_examples, 0)))
  step = tf.function(model.train_step, jit_compile=config.model.network in nn.XLA_BY_DEFAULT)
  step(batch)["loss"].numpy()
  start = time.perf_counter()
  for _ in range(steps):
    out = step(batch)
  out["loss"].numpy()
  return steps * config.train.batch_size / (time.perf_counter() - start)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--networks", default="conv,mlp")
  parser.add_argument("--batch_size", type=int, default=256)
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--epochs", type=int, default=2, help="epochs of the launcher's loop per round (>= 2)")
  parser.add_argument("--steps_per_epoch", type=int, default=200, help="the launcher's default")
  parser.add_argument("--workdir", default="/tmp/launcher_loop")
  args = parser.parse_args()
  if args.epochs < 2:
    parser.error("--epochs must be >= 2: the first epoch of each round (tracing) is not timed")
  networks = args.networks.split(",")
  shutil.rmtree(args.workdir, ignore_errors=True)
  rows = {(n, kind): [] for n in networks for kind in ("raw", "loop")}
  peaks = []
  for round_index in range(args.rounds):
    peaks.append(matmul_peak_gflops())
    for network in networks:
      steps = (round_index + 1) * args.epochs * args.steps_per_epoch
      config = run_config(os.path.join(args.workdir, network), network, args.batch_size, args.steps_per_epoch,
                          steps)
      rows[(network, "raw")].append((raw_step_rate(config), peaks[-1]))
      results = train_mode.train(config)
      rows[(network, "loop")].append((results["train_images_per_s"], peaks[-1]))
      print(f"round {round_index + 1}: {network} raw {rows[(network, 'raw')][-1][0]:.0f}, loop "
            f"{results['train_images_per_s']:.0f} images/s; peak {peaks[-1]:.0f} GFLOP/s", flush=True)
  print(f"\nbeta-TCVAE (beta 6, MWS), batch {args.batch_size}, {args.rounds} rounds; matmul peak "
        f"{statistics.median(peaks):.0f} GFLOP/s (median; {min(peaks):.0f}-{max(peaks):.0f})")
  print("| network | what | images/s (median) | min | max | train GFLOP/s | % of the same round's peak |")
  print("|---|---|---|---|---|---|---|")
  for network in networks:
    flops = 3 * forward_flops(network)
    for kind, label in (("raw", "raw step, fixed batch"), ("loop", "launcher loop (pipeline, callbacks, saves)")):
      rates = [r for r, _ in rows[(network, kind)]]
      share = statistics.median(r * flops / 1e9 / p for r, p in rows[(network, kind)])
      print(f"| {network} | {label} | {statistics.median(rates):.0f} | {min(rates):.0f} | {max(rates):.0f} | "
            f"{statistics.median(rates) * flops / 1e9:.0f} | {100 * share:.1f}% |")
    ratio = statistics.median(l / r for (l, _), (r, _) in zip(rows[(network, "loop")], rows[(network, "raw")]))
    print(f"| {network} | loop / raw (median of rounds) | {ratio:.2f}x | | | | |")


if __name__ == "__main__":
  main()
