"""The full attack sweep with both optimisers: batched box-constrained L-BFGS against scipy's L-BFGS-B.

Runs the paper's protocol (`--pairs` input/target pairs x `--lambdas` lambda values from 2^-20 to 2^20, latent
attack on all layers) on a trained workdir (`--workdir`, e.g. one from `launch/elbo_vs_beta.sh`), once with each
optimiser and the same starting points, and prints wall time, total objective/gradient evaluations and attack
strength: the median and worst ratio of the batched driver's final objective to scipy's on the same problem
(ratios over problems whose scipy objective is at least `--ratio_floor`; near-zero objectives make ratios
meaningless), and how many problems each optimiser solved better by more than 1%.

Both optimisers get the same iteration budget (`--max_iterations` per problem and start) and the same protocol
(both starts, then `--neighbour_rounds` rounds of restarts from the neighbouring lambdas' end points, whose cost is
in the wall times): that is the speed-up the table reports first. The batched driver also traces every problem's
best objective after each of its steps and after each neighbour round; the second number is *time to matched
strength*: the wall time at which the batched driver's problems first reach the strength scipy has at the end of
its whole run, restarts included (median per-problem ratio <= 1.01 and median objective <= 1.01x scipy's), against
scipy's full wall time.

With `--gradient_noise=1e-7` scipy runs once more with its gradient multiplied by 1 + noise * N(0, 1) (float32
rounding size), and the same per-problem ratios are printed for that run against the plain one: how far scipy moves
from itself on problems that have not converged, the yardstick for "none worse by more than 5%".

`--optimizers=lbfgs,scipy,tfp` adds TFP's L-BFGS (`attacks/tfp_lbfgs.py`) with its own speed-up and ratios to scipy;
`lbfgs_tf` adds the batched driver with its per-step algebra as TensorFlow ops (`--attack_backend=tf`,
attacks/lbfgs_tf.py); `lbfgs` is always the numpy backend here.

Usage: python benchmarks/attack_sweep.py --workdir=runs/elbo_vs_beta/seatbelt_L2_beta6 [--pairs=10] [--lambdas=50]
       [--evaluation_cost] (also: ms per problem of one objective+gradient call at batch 1, 64 and 512)
       [--gradient_noise=1e-7] [--profile] (also: where the batched driver's time goes)
"""

import argparse
import cProfile
import os
import pstats
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from seatbelt_tf import attacks, config as config_lib, data, runs  # noqa: E402


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--pairs", type=int, default=10)
  parser.add_argument("--lambdas", type=int, default=50)
  parser.add_argument("--max_iterations", type=int, default=200)
  parser.add_argument("--starts", default="input,target")
  parser.add_argument("--layers", default="all")
  parser.add_argument("--ratio_floor", type=float, default=1e-2)
  parser.add_argument("--neighbour_rounds", type=int, default=attacks.protocol.NEIGHBOUR_ROUNDS,
                      help="rounds of restarts from the neighbouring lambdas' end points, for both optimisers")
  parser.add_argument("--optimizers", default="lbfgs,scipy", help="comma-separated; both for the comparison")
  parser.add_argument("--evaluation_cost", action="store_true",
                      help="also time one objective+gradient evaluation per problem at batch 1, 64 and 512: the "
                           "floor of what batching can save on this machine")
  parser.add_argument("--gradient_noise", type=float, default=0.0,
                      help="if > 0, also run scipy with its gradient perturbed by this relative noise and compare "
                           "it with the plain scipy run")
  parser.add_argument("--profile", action="store_true",
                      help="also print where the batched driver's time goes (cProfile, cumulative seconds of the "
                           "driver's functions and of the objective calls)")
  args = parser.parse_args()
  import json  # pylint: disable=g-import-not-at-top
  with open(os.path.join(args.workdir, "config.json")) as f:
    config = config_lib.RunConfig.from_flat({**json.load(f), "workdir": args.workdir, "mode": "attack"})
  _, source, model = runs.open_trained_run(config)
  candidates = data.pipeline.eval_indices(source.num_examples, config.data.eval_examples, config.train.seed).numpy()
  pairs = attacks.choose_pairs(candidates, args.pairs, 0)
  inputs, targets = source.tf_images(pairs[:, 0]).numpy(), source.tf_images(pairs[:, 1]).numpy()
  fns = attacks.ModelFns(model)
  lambdas = attacks.lambda_grid(args.lambdas)
  if args.evaluation_cost:
    _evaluation_cost(fns, inputs, targets)
  results, trace = {}, []
  starts = tuple(args.starts.split(","))
  for name in args.optimizers.split(","):
    optimizer = "lbfgs" if name.startswith("lbfgs") else name
    backend = {"lbfgs": "numpy", "lbfgs_tf": "tf"}.get(name, "auto")
    start = time.perf_counter()

    def record(step, objective, start=start):  # the batched driver's strength against wall time
      label = f"step {step}" if step >= 0 else f"neighbour round {sum(s.startswith('n') for _, _, s in trace) + 1}"
      trace.append((time.perf_counter() - start, objective.reshape(len(starts), -1).min(axis=0), label))
    profiler = cProfile.Profile() if args.profile and name == "lbfgs" else None
    if profiler:
      profiler.enable()
    records, _ = attacks.run_attack(fns, inputs, targets, lambdas, "latent", args.layers,
                                    data_range=source.data_range, optimizer=optimizer, backend=backend,
                                    starts=starts, max_iterations=args.max_iterations,
                                    neighbour_rounds=args.neighbour_rounds,
                                    callback=record if name == "lbfgs" else None)
    results[name] = (time.perf_counter() - start, records)
    if profiler:
      profiler.disable()
      _print_profile(profiler, results[name][0])
  print(f"\nLatent attack ({args.layers} layers) on {config.model.model} L={config.model.layers} "
        f"({config.model.network}), {args.pairs} pairs x {args.lambdas} lambdas, starts {args.starts}, "
        f"{args.neighbour_rounds} neighbour rounds")
  print("| optimizer | restarted problems | restarts |")
  print("|---|---|---|")
  for name, (_, recs) in results.items():
    print(f"| {name} | {sum(r['restarts'] > 0 for r in recs)} | {sum(r['restarts'] for r in recs)} |")
  print("| optimizer | wall s | evaluations | median objective |")
  print("|---|---|---|---|")
  for name, (t, recs) in results.items():
    print(f"| {name} | {t:.1f} | {sum(r['evaluations'] for r in recs)} | "
          f"{np.median([r['objective'] for r in recs]):.4g} |")
  if args.gradient_noise > 0 and "scipy" in results:
    noisy = _perturbed_scipy(args.gradient_noise, lambda: attacks.run_attack(
        fns, inputs, targets, lambdas, "latent", args.layers, data_range=source.data_range, optimizer="scipy",
        starts=starts, max_iterations=args.max_iterations, neighbour_rounds=args.neighbour_rounds)[0])
    print(f"\nscipy with gradient noise {args.gradient_noise:g} against plain scipy: "
          + _ratios(noisy, results["scipy"][1], args.ratio_floor, "noisy"))
  for name in ("tfp", "lbfgs_tf"):
    if name in results and "scipy" in results:
      (tt, rt), ts = results[name], results["scipy"][0]
      print(f"\nspeed-up {name}/scipy: **{ts / tt:.1f}x**; " + _ratios(rt, results["scipy"][1], args.ratio_floor,
                                                                       name))
  if "lbfgs_tf" in results and "lbfgs" in results:
    print("lbfgs_tf against lbfgs (numpy backend): wall "
          f"{results['lbfgs_tf'][0] / results['lbfgs'][0]:.2f}x; "
          + _ratios(results["lbfgs_tf"][1], results["lbfgs"][1], args.ratio_floor, "lbfgs_tf", "lbfgs"))
  if "lbfgs" not in results or "scipy" not in results:
    return
  (tb, rb), (ts, rs) = results["lbfgs"], results["scipy"]
  os_ = np.array([r["objective"] for r in rs])
  keep = os_ >= args.ratio_floor
  print(f"\nspeed-up batched/scipy: **{ts / tb:.1f}x**; " + _ratios(rb, rs, args.ratio_floor, "batched"))
  matched = next(((t, label) for t, best, label in trace
                  if np.median(best[keep] / os_[keep]) <= 1.01 and np.median(best) <= 1.01 * np.median(os_)), None)
  if matched is None:
    print("time to matched strength: the batched driver never reached scipy's final strength")
  else:
    print(f"time to matched strength: batched reaches scipy's final strength after {matched[1]} at "
          f"{matched[0]:.1f} s: **{ts / matched[0]:.1f}x** scipy's {ts:.1f} s")


def _print_profile(profiler, wall):
  """Cumulative seconds of the batched driver's own functions (attacks/lbfgs.py) and of its objective calls."""
  stats = pstats.Stats(profiler).stats
  rows = [(name, entry[3]) for (path, _, name), entry in stats.items()
          if path.endswith(os.path.join("attacks", "lbfgs.py")) and not name.startswith("<")]
  names = {"call": "objective and gradient (TensorFlow)", "_minimize_batched": "the whole driver"}
  print(f"\nWhere the batched driver's {wall:.1f} s go (cProfile, cumulative s; nested rows overlap):")
  print("| function | s |")
  print("|---|---|")
  for name, seconds in sorted(rows, key=lambda r: -r[1]):
    if seconds >= 0.05 and name not in ("minimize_batched", "block", "compare", "value_and_gradient"):
      print(f"| {names.get(name, name)} | {seconds:.1f} |")


def _ratios(records, reference, floor, name, reference_name="scipy"):
  """Per-problem objective ratios of `records` to `reference` over problems whose reference objective >= floor."""
  a = np.array([r["objective"] for r in records])
  b = np.array([r["objective"] for r in reference])
  keep = b >= floor
  ratio = a[keep] / b[keep]
  ref = reference_name
  return (f"objective ratio {name}/{ref} over {keep.sum()} problems with {ref} objective >= {floor}: median "
          f"{np.median(ratio):.4f}, worst {ratio.max():.3f}; {name} better by >1%: {(a < 0.99 * b).sum()}, {ref} "
          f"better by >1%: {(b < 0.99 * a).sum()} of {len(a)}")


def _perturbed_scipy(noise, run, seed=0):
  """Runs `run()` with scipy.optimize.minimize seeing gradients multiplied by 1 + noise * N(0, 1)."""
  import scipy.optimize  # pylint: disable=g-import-not-at-top
  minimize, rng = scipy.optimize.minimize, np.random.default_rng(seed)

  def perturbed(fun, x0, **kwargs):
    def noisy(v):
      value, grad = fun(v)
      return value, grad * (1.0 + noise * rng.standard_normal(grad.shape))
    return minimize(noisy, x0, **kwargs)
  scipy.optimize.minimize = perturbed
  try:
    return run()
  finally:
    scipy.optimize.minimize = minimize


def _evaluation_cost(fns, inputs, targets, rounds=5):
  """Prints ms per problem of one latent-objective value-and-gradient call at batch 1, 64 and 512 (median of
  `rounds`, after a warm-up call), the way the optimisers call it."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  x = np.concatenate([inputs] * (512 // len(inputs) + 1))[:512]
  x_t = np.concatenate([targets] * (512 // len(targets) + 1))[:512]
  target = fns.encode_fn(tf.constant(x_t))
  dim = int(np.prod(x.shape[1:]))

  @tf.function(autograph=False, input_signature=[tf.TensorSpec([None, dim], tf.float32)])
  def value_and_gradient(flat):
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(flat)
      n = tf.shape(flat)[0]
      value = attacks.latent_objective(fns.encode_fn, tf.reshape(flat, (-1,) + x.shape[1:]), tf.constant(x)[:n],
                                       [(l[:n], s[:n]) for l, s in target], tf.ones([n]))
    return value, tape.gradient(value, flat)
  print("| batch | ms per call | ms per problem |")
  print("|---|---|---|")
  for batch in (1, 64, 512):
    flat = tf.constant(x[:batch].reshape(batch, -1))
    value_and_gradient(flat)[1].numpy()
    times = []
    for _ in range(rounds):
      calls = max(1, 64 // batch)
      start = time.perf_counter()
      for _ in range(calls):
        value_and_gradient(flat)[1].numpy()
      times.append((time.perf_counter() - start) / calls)
    t = float(np.median(times))
    print(f"| {batch} | {1e3 * t:.2f} | {1e3 * t / batch:.3f} |")


if __name__ == "__main__":
  main()
