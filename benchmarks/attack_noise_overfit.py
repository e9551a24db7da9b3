"""Does the output attack (eq. 12) overfit its fixed noise draws? A diagnostic over a workdir's attack sweep.

The output attack minimises -ELBO(x^t; q(z|x*)) + lambda ||d||_2 with the ELBO estimated on fixed standard-normal
draws per problem (`attacks.protocol.effect_fn`: L-BFGS needs a deterministic objective; one draw in sweeps before
2026-12-04, `objective_draws` of them since, 4 by default), and the sweep then scores -log p(x^t|z~) on 8 other
draws (`attack_metrics`). Where the attacker can move q(z|x*) so that
the one draw lands on the target's code while the posterior itself does not, the objective falls below the
target's own -ELBO and the scored -log p(x^t|z~) stays high: the attack has fitted the noise, and the score says
little about the model.

For each mode and a few lambdas of the sweep in `--workdir` (its `attacks/attack_results.json` and
`attacks/adversarial_inputs.npz`), prints medians over the pairs of: the attack's objective; -log p(x^t|z~) as
recorded, on 8 fresh draws, and at the posterior means (zero noise); the same for x* = x^t (what a perfect attack
at lambda -> 0 reaches); and ||d||_2.

Usage: python benchmarks/attack_noise_overfit.py --workdir=runs/reproduce/vae_L1_beta1_seed0 [--lambdas=0,20,30,35,40]
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from seatbelt_tf import config as config_lib, runs  # noqa: E402
from seatbelt_tf.attacks import objectives  # noqa: E402


def target_nll(fns, x_in, x_t, draws, rng):
  """-log p(x^t|z), z from q(z|x_in): averaged over `draws` fresh standard-normal draws, or at the posterior
  means when `draws` is 0. `[n]`."""
  n = len(x_in)
  noises = ([[np.zeros((n, d), "float32") for d in fns.layer_sizes]] if draws == 0 else
            [[rng.standard_normal((n, d)).astype("float32") for d in fns.layer_sizes] for _ in range(draws)])
  return np.mean([-fns.terms_fn(tf.constant(x_in), tf.constant(x_t), [tf.constant(e) for e in noise])
                  ["reconstruction"].numpy() for noise in noises], axis=0)


def load_sweep(workdir):
  """(config, `ModelFns` of the trained model, the sweep's records, its arrays, its sorted lambdas) of an attacked
  workdir."""
  with open(os.path.join(workdir, "config.json")) as f:
    flat = json.load(f)
  config, _, model = runs.open_trained_run(config_lib.RunConfig.from_flat({**flat, "mode": "attack"}))
  with open(os.path.join(workdir, "attacks", "attack_results.json")) as f:
    records = json.load(f)
  arrays = np.load(os.path.join(workdir, "attacks", "adversarial_inputs.npz"))
  return config, objectives.ModelFns(model), records, arrays, sorted({r["lambda"] for r in records})


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--lambdas", default="0,20,30,35,40", help="indices into the sweep's sorted lambda grid")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()
  _, fns, records, arrays, lambdas = load_sweep(args.workdir)
  rng = np.random.default_rng(args.seed)
  print(f"{os.path.basename(os.path.normpath(args.workdir))}: medians over pairs")
  print("| mode | layers | lambda | objective | -log p(x^t\\|z~) recorded | 8 fresh draws | posterior mean | "
        "x* = x^t: draws | x* = x^t: mean | \\|\\|d\\|\\| |")
  print("|---|---|---|---|---|---|---|---|---|---|")
  # x* = x^t: the same pairs' targets at every lambda and mode (records go pair by pair), so scored once.
  targets = arrays["targets"][[i for i, r in enumerate(records) if r["mode"] == records[0]["mode"]
                               and r["lambda"] == lambdas[0]]]
  perfect = (np.median(target_nll(fns, targets, targets, 8, rng)), np.median(target_nll(fns, targets, targets, 0, rng)))
  for mode in sorted({r["mode"] for r in records}):
    for li in (int(i) for i in args.lambdas.split(",")):
      rows = [i for i, r in enumerate(records) if r["mode"] == mode and r["lambda"] == lambdas[li]]
      x_adv, x_t = arrays["adversarial"][rows], arrays["targets"][rows]
      med = lambda key: np.median([records[i][key] for i in rows])  # noqa: E731
      print(f"| {mode} | {records[rows[0]]['layers']} | {lambdas[li]:.3g} | {med('objective'):.1f} | "
            f"{med('target_nll'):.0f} | {np.median(target_nll(fns, x_adv, x_t, 8, rng)):.0f} | "
            f"{np.median(target_nll(fns, x_adv, x_t, 0, rng)):.0f} | "
            f"{perfect[0]:.0f} | {perfect[1]:.0f} | "
            f"{med('distortion_l2'):.1f} |")


if __name__ == "__main__":
  main()
