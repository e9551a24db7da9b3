"""The cost of the attacks beyond the paper, per problem, batched against one problem at a time.

On a trained workdir (`--workdir`), for each new path, times the same problems run as one batch (as `--mode=attack`
runs them) and one at a time (the same call with `chunk=1`: every problem and start evaluated on its own, with the
functions already traced, so the difference is batching alone), side by side in one process, and prints seconds per
problem and the batching speed-up:

* eps_ball: `--pairs` x `--epsilons` fixed-budget PGD problems (latent attack on all layers and output attack), each
  from the input, the projected target and `--random_starts` random starts, `--steps` steps;
* margin: `--pairs` inputs, `--bisections` bisection steps of PGD (`--steps` steps, 1 + `--random_starts` starts);
* defence: the HMC defence re-scoring `--defence_inputs` adversarial inputs (10 transitions x 5 leapfrog steps,
  2 chains each);
* AUDDC: the numpy area of a 50-lambda sweep, per pair.

Usage: python benchmarks/attacks_beyond.py --workdir=runs/remeasure/seatbelt_L2_beta6_seed0 [--pairs=4]
       [--epsilons=4] [--steps=50]
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from seatbelt_tf import attacks, config as config_lib, runs  # noqa: E402
from seatbelt_tf.attacks import budget, defence, measures  # noqa: E402


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--pairs", type=int, default=4)
  parser.add_argument("--epsilons", type=int, default=4)
  parser.add_argument("--steps", type=int, default=50)
  parser.add_argument("--random_starts", type=int, default=1)
  parser.add_argument("--bisections", type=int, default=4)
  parser.add_argument("--defence_inputs", type=int, default=32)
  args = parser.parse_args()
  with open(os.path.join(args.workdir, "config.json")) as f:
    config = config_lib.RunConfig.from_flat({**json.load(f), "workdir": args.workdir}).validate()
  config, source, model = runs.open_trained_run(config)
  fns = attacks.ModelFns(model)
  pairs = attacks.choose_pairs(runs.heldout_indices(config, source, {}), max(args.pairs, args.defence_inputs), 0)
  inputs, targets = source.tf_images(pairs[:, 0]).numpy(), source.tf_images(pairs[:, 1]).numpy()
  epsilons = budget.epsilon_grid(source.data_range, fns.image_shape, args.epsilons)
  p = args.pairs
  print(f"{args.workdir}: {model.name}, step {int(model.optimizer.iterations.numpy())}")
  rows = []

  def timed(fn):
    fn()  # traces the functions once, outside the timing
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start

  for mode in ("latent", "output"):
    kw = {"steps": args.steps, "random_starts": args.random_starts}
    batched = timed(lambda: budget.run_budget_attack(fns, inputs[:p], targets[:p], epsilons, mode, **kw))
    single = timed(lambda: budget.run_budget_attack(fns, inputs[:p], targets[:p], epsilons, mode, chunk=1, **kw))
    rows.append((f"eps_ball {mode} (PGD {args.steps} steps, {2 + args.random_starts} starts)", p * len(epsilons),
                 batched, single))
  kw = {"bisection_steps": args.bisections, "steps": args.steps, "random_starts": args.random_starts}
  r, top = 6.4, 16.0
  batched = timed(lambda: measures.robustness_margins(fns.recon_fn, inputs[:p], r, top, **kw))
  single = timed(lambda: measures.robustness_margins(fns.recon_fn, inputs[:p], r, top, chunk=1, **kw))
  rows.append((f"margin ({args.bisections} bisections + 1, PGD {args.steps} steps)", p, batched, single))
  n = args.defence_inputs
  adversarial = np.clip(inputs[:n] + 0.1 * (targets[:n] - inputs[:n]), 0, 1).astype(np.float32)
  batched = timed(lambda: defence.defended_target_nll(fns, adversarial, targets[:n], num_samples=2))
  single = timed(lambda: defence.defended_target_nll(fns, adversarial, targets[:n], num_samples=2, chunk=1))
  rows.append(("HMC defence (10 x 5 leapfrog, 2 chains)", n, batched, single))
  rng = np.random.default_rng(0)
  curve = (rng.uniform(0, 20, 50), rng.uniform(0, 15, 50))
  start = time.perf_counter()
  for _ in range(1000):
    measures.auddc(*curve, 17.0, 15.0)
  rows.append(("AUDDC (50-lambda sweep, numpy)", 1, (time.perf_counter() - start) / 1000, float("nan")))
  print(f"\n| attack | problems | batched s/problem | one at a time s/problem | speed-up |\n|---|---|---|---|---|")
  for name, count, batched, single in rows:
    speedup = single / batched if np.isfinite(single) else float("nan")
    print(f"| {name} | {count} | {batched / count:.4g} | {single / count:.4g} | {speedup:.1f}x |")


if __name__ == "__main__":
  main()
