"""The output attack (eq. 12) with its objective averaged over K fixed noise draws (K = 1: the shipped protocol).

A probe, not yet a protocol option (docs/REPRODUCTION.md, "A flaw in the output attack's score"): it swaps
`attacks.protocol.effect_fn` for one whose output objective is the mean of -ELBO(x^t; q(z|x*)) over K draws (the
sweep's own draw first), then attacks a workdir's model on its sweep's own pairs at three lambdas of the sweep's
grid (the smallest, the 21st and the 31st), both starts, no neighbour restarts (for speed), and prints medians over
pairs of the objective, -log p(x^t|z~) as recorded, on 8 fresh draws and at the posterior means, and ||d||_2, for
each K.

Usage: python benchmarks/output_attack_draws.py [--workdir=runs/reproduce/vae_L1_beta1_seed0] [--draws=1,4,16]
"""

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attack_noise_overfit import load_sweep, target_nll  # noqa: E402

from seatbelt_tf.attacks import protocol  # noqa: E402

SHIPPED_EFFECT_FN = protocol.effect_fn
EXTRA_DRAWS_SEED = 12345  # the draws after the sweep's own; disjoint from the score's (attack_seed + 1)


def effect_fn_with_draws(draws):
  """A `protocol.effect_fn` whose output objective averages -ELBO over `draws` fixed draws."""
  def effect_fn(fns, mode, layers, x_t, noise):
    if mode != "output" or draws == 1:
      return SHIPPED_EFFECT_FN(fns, mode, layers, x_t, noise)
    n = int(x_t.shape[0])
    noises = [noise] + [protocol.fixed_noise(fns.layer_sizes, n, EXTRA_DRAWS_SEED, k) for k in range(1, draws)]

    def effect(x_adv, idx):
      return tf.add_n([-fns.elbo_fn(x_adv, tf.gather(x_t, idx), [tf.gather(e, idx) for e in each])
                       for each in noises]) / draws
    return effect
  return effect_fn


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
    protocol.effect_fn = effect_fn_with_draws(draws)
    start = time.time()
    try:
      out, adv = protocol.run_attack(fns, inputs, targets, lambdas, "output", seed=config.attack.attack_seed,
                                     neighbour_rounds=0, max_iterations=200)
    finally:
      protocol.effect_fn = SHIPPED_EFFECT_FN
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
