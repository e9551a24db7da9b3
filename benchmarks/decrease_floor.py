"""The batched L-BFGS driver's decrease floor (attacks/lbfgs.py, `DECREASE_ULPS`) against no floor, on one sweep.

Trains a tiny Seatbelt-VAE (configs/tiny.cfg, L = 2, `--train_steps` steps) in `--workdir` unless it is trained
already, then runs the same attack sweep (`--pairs` pairs x `--lambdas` lambdas, latent on all layers and output,
both starts, neighbour restarts) with `DECREASE_ULPS` = 0 (any float32 decrease is a step, the old rule) and with
the shipped value, and prints total evaluations and iterations and how the final objectives compare per record
(identical, better with the floor, better without, median and largest relative difference). Single problems that
have not converged are chaotic under float32-sized perturbations (the module docstring: 8-10% at 100 iterations),
so the yardstick is the median, not single records.

Usage: python benchmarks/decrease_floor.py [--workdir=/tmp/decrease_floor] [--pairs=4] [--lambdas=12]
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from conftest import tiny_config  # noqa: E402
from seatbelt_tf import config as config_lib  # noqa: E402
from seatbelt_tf.attacks import lbfgs  # noqa: E402
from seatbelt_tf.modes import attack as attack_mode, train as train_mode  # noqa: E402



def main(FLAGS):  # pylint: disable=invalid-name
  config = tiny_config(FLAGS.workdir, model="seatbelt", layers=2, train_steps=FLAGS.train_steps)
  if not os.path.exists(os.path.join(FLAGS.workdir, "results.json")):
    train_mode.train(config)
  shipped, records = lbfgs.DECREASE_ULPS, {}
  for ulps in (0, shipped):
    lbfgs.DECREASE_ULPS = ulps
    run = config_lib.RunConfig.from_flat({**config.flat(), "mode": "attack", "attack_pairs": FLAGS.pairs,
                                          "attack_lambdas": FLAGS.lambdas, "attack_modes": "latent,output"})
    attack_mode.attack(run.validate())
    with open(os.path.join(FLAGS.workdir, "attacks", "attack_results.json")) as f:
      records[ulps] = json.load(f)
  lbfgs.DECREASE_ULPS = shipped
  old, new = (np.array([r["objective"] for r in records[k]]) for k in (0, shipped))
  relative = (new - old) / np.maximum(np.abs(old), 1e-12)
  print("| floor (ulps) | evaluations | iterations | median objective |")
  print("|---|---|---|---|")
  for k, values in ((0, old), (shipped, new)):
    print(f"| {k} | {sum(r['evaluations'] for r in records[k])} | {sum(r['iterations'] for r in records[k])} | "
          f"{np.median(values):.6g} |")
  print(f"\n{len(old)} records: {int((old == new).sum())} identical, {int((new < old).sum())} better with the floor, "
        f"{int((old < new).sum())} better without; relative difference median {np.median(relative):.2e}, "
        f"largest {np.abs(relative).max():.2e}")


if __name__ == "__main__":
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--workdir", default="/tmp/decrease_floor", help="where the tiny model is trained and attacked")
  parser.add_argument("--train_steps", type=int, default=300, help="training steps of the tiny model")
  parser.add_argument("--pairs", type=int, default=4, help="input/target pairs")
  parser.add_argument("--lambdas", type=int, default=12, help="lambda values")
  main(parser.parse_args())
