"""The output attack (eq. 12) with its objective averaged over K fixed noise draws (`--attack_objective_draws`).

How the protocol's default (4) was chosen (docs/REPRODUCTION.md, "A flaw in the output attack's score"): attacks a
workdir's model on its sweep's own pairs at three lambdas of the sweep's grid (the smallest, the 21st and the 31st),
both starts, no neighbour restarts (for speed), with the objective over K draws (`protocol.run_attack`'s
`objective_draws`; K = 1 is the single draw of earlier sweeps), and prints medians over pairs of the objective,
-log p(x^t|z~) as recorded, on 8 fresh draws and at the posterior means, and ||d||_2, for each K.

(The first run of this probe, before the option existed, patched `protocol.effect_fn` and drew the extra draws with
another seed; its table in docs/REPRODUCTION.md is that run's.)

Usage: python benchmarks/output_attack_draws.py [--workdir=runs/reproduce/vae_L1_beta1_seed0] [--draws=1,4,16]
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attack_noise_overfit import load_sweep, target_nll  # noqa: E402

from seatbelt_tf.attacks import protocol  # noqa: E402


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", default="runs/reproduce/vae_L1_beta1_seed0")
  parser.add_argument("--draws", default="1,4,16")
  args = parser.parse_args()
  config, fns, records, arrays, grid = load_sweep(args.workdir)
  rows = [i for i, r in enumerate(records) if r["mode"] == "output" and r["lambda"] == grid[0]]
  inputs, targets = arrays["inputs"][rows], arrays["targets"][rows]
  lambdas = [grid[0], grid[20], grid[30]]
  for draws in (int(k) for k in args.draws.split(",")):
    start = time.time()
    out, adv = protocol.run_attack(fns, inputs, targets, lambdas, "output", seed=config.attack.attack_seed,
                                   neighbour_rounds=0, max_iterations=200, objective_draws=draws)
    for lam in lambdas:
      sel = [i for i, r in enumerate(out) if r["lambda"] == np.float32(lam)]
      x_adv, x_t = adv["adversarial"][sel], adv["targets"][sel]
      med = lambda key: np.median([out[i][key] for i in sel])  # noqa: E731
      rng = np.random.default_rng(7)
      print(f"K={draws:2d} lambda {lam:9.3g}: objective {med('objective'):7.1f}; -log p(x^t|z~) recorded "
            f"{med('target_nll'):6.0f}, 8 fresh draws {np.median(target_nll(fns, x_adv, x_t, 8, rng)):6.0f}, "
            f"posterior mean {np.median(target_nll(fns, x_adv, x_t, 0, rng)):6.0f}; ||d|| "
            f"{med('distortion_l2'):5.1f}", flush=True)
    print(f"K={draws}: {time.time() - start:.0f} s", flush=True)


if __name__ == "__main__":
  main()
