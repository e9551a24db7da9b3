"""MIG (eq. J.1) on the full 737,280-image procedural dSprites grid for a 10-unit code: wall time per protocol.

Codes come from a trained encoder (`--workdir`; its encoding time is timed and printed separately) or, without
one, from a synthetic 10-unit code of known quality (the five factors standardised, rotated pairwise by a small
angle, plus noise and five noise units), so the metric itself is timed on its own.

With --compare=S, it times instead the exact protocol's mixture log-densities of S samples against the whole grid,
`metrics.log_mixture_density` (one XLA call per chunk, a streamed log-sum-exp) against the form it replaced (graph-
mode blocks of ~4M entries, each through `tf.reduce_logsumexp`, combined in numpy), alternating over --rounds.

With --subsets=96,1000,10000, it times instead the exact protocol on random subsets of that many grid points (the
synthetic code; `--mig_points`-sized evaluations and the tests' tiny ones) with the call shapes
`metrics.block_shapes` picks against the one full-size shape every call used before (small problems padded up to
it), alternating over --rounds, and checks that both give the same MIG.

Usage: python benchmarks/mig.py [--workdir=runs/quickstart] [--methods=histogram,exact] [--exact_samples=10000]
       [--compare=500 --rounds=3] [--subsets=96,1000,10000 --rounds=3]
"""

import argparse
import functools
import json
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from seatbelt_tf import data, metrics  # noqa: E402
from seatbelt_tf.metrics import mutual_info_gap  # noqa: E402
from side_by_side import alternate, swapped  # noqa: E402


@tf.function(autograph=False, reduce_retracing=True)
def _former_block(z, loc, scale):
  diff = (z[:, None, :] - loc[None, :, :]) / scale[None, :, :]
  log_prob = -0.5 * tf.square(diff) - tf.math.log(scale)[None, :, :] - 0.5 * math.log(2 * math.pi)
  return tf.reduce_logsumexp(log_prob, axis=1)


def former_log_mixture_density(z, loc, scale, block_elements=1 << 22):
  """The exact protocol's mixture log-densities as the library computed them before the streamed XLA form."""
  s_count, dim = z.shape
  n_count = loc.shape[0]
  n_block = max(1, min(n_count, block_elements // max(1, dim * min(s_count, 256))))
  s_block = max(1, min(s_count, block_elements // (dim * n_block)))
  out = np.full((s_count, dim), -np.inf)
  for s0 in range(0, s_count, s_block):
    zs = tf.constant(z[s0:s0 + s_block])
    acc = np.full((zs.shape[0], dim), -np.inf)
    for n0 in range(0, n_count, n_block):
      part = _former_block(zs, tf.constant(loc[n0:n0 + n_block]), tf.constant(scale[n0:n0 + n_block]))
      acc = np.logaddexp(acc, part.numpy().astype(np.float64))
    out[s0:s0 + s_block] = acc
  return out - math.log(n_count)


def compare(loc, scale, samples, rounds):
  rng = np.random.default_rng(0)
  chosen = rng.choice(loc.shape[0], size=samples, replace=False)
  z = (loc[chosen] + scale[chosen] * rng.standard_normal((samples, loc.shape[1]))).astype(np.float32)
  forms = {"former (graph blocks)": former_log_mixture_density, "streamed XLA": metrics.log_mixture_density}
  results = {name: fn(z[:2], loc, scale) for name, fn in forms.items()}  # compile / warm up
  times = {name: [] for name in forms}
  for _ in range(rounds):
    for name, fn in forms.items():
      start = time.perf_counter()
      results[name] = fn(z, loc, scale)
      times[name].append(time.perf_counter() - start)
  pairs = samples * loc.shape[0] * loc.shape[1]
  print(f"\nExact-protocol mixture log-densities: {samples} samples x {loc.shape[0]} components x {loc.shape[1]} "
        f"units, median of {rounds}")
  print("| form | s | ns per entry | max abs difference to the former |")
  print("|---|---|---|---|")
  former = results["former (graph blocks)"]
  for name in forms:
    t = statistics.median(times[name])
    print(f"| {name} | {t:.1f} | {1e9 * t / pairs:.2f} | {np.abs(results[name] - former).max():.1e} |")


ADAPTIVE_BLOCK_SHAPES = mutual_info_gap.block_shapes  # held here: compare_subsets swaps the module's one


def full_block_shapes(s_count, n_count, dim, block_elements=1 << 24):
  """The call shapes before `metrics.block_shapes`: the full-size ones (those of a problem too large to shrink)
  whatever S and N."""
  del s_count, n_count
  return ADAPTIVE_BLOCK_SHAPES(1 << 40, 1 << 40, dim, block_elements)


def compare_subsets(source, sizes, samples, rounds):
  forms = {"full-size calls (before)": full_block_shapes, "block_shapes (now)": ADAPTIVE_BLOCK_SHAPES}
  print(f"\nExact-protocol MIG on random subsets of the grid (synthetic 10-unit code, up to {samples} samples), "
        f"median of {rounds}")
  print("| points | calls | s | MIG |")
  print("|---|---|---|---|")
  for size in sizes:
    indices = metrics.choose_points(source, size, 0)
    factors = source.factors(indices)
    loc, scale = synthetic_codes(factors)
    values = {}

    def run(name, shapes, loc=loc, scale=scale, factors=factors):
      with swapped(mutual_info_gap, "block_shapes", shapes):
        values[name] = metrics.mig(loc, factors, method="exact", scales=scale, num_samples=samples)["mig"]
    times = alternate({name: functools.partial(run, name, shapes) for name, shapes in forms.items()}, rounds, 1)
    for name in forms:
      print(f"| {size} | {name} | {times[name]:.2f} | {values[name]:.4f} |")


def synthetic_codes(factors, seed=0):
  rng = np.random.default_rng(seed)
  z = (factors - factors.mean(0)) / factors.std(0)
  angle = 0.2
  rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
  z[:, :2] = z[:, :2] @ rot.T
  z[:, 2:4] = z[:, 2:4] @ rot.T
  loc = np.concatenate([z + 0.1 * rng.standard_normal(z.shape), rng.standard_normal(z.shape)], 1)
  return loc.astype(np.float32), np.full(loc.shape, 0.1, np.float32)


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", default="", help="a trained run whose encoder makes the codes")
  parser.add_argument("--methods", default="histogram,exact")
  parser.add_argument("--exact_samples", type=int, default=10000)
  parser.add_argument("--num_points", type=int, default=0, help="0: the full grid")
  parser.add_argument("--compare", type=int, default=0, help="samples for the old-against-new timing (0: off)")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--subsets", default="", help="grid-subset sizes for the call-shape timing (empty: off)")
  args = parser.parse_args()
  source = data.ProceduralDSprites()
  if args.subsets:
    compare_subsets(source, [int(v) for v in args.subsets.split(",")], args.exact_samples, args.rounds)
    return
  indices = metrics.choose_points(source, args.num_points or None, 0)
  factors = source.factors(indices)
  rows = []
  if args.workdir:
    from seatbelt_tf import attacks, config as config_lib, runs  # pylint: disable=g-import-not-at-top
    with open(os.path.join(args.workdir, "config.json")) as f:
      config = config_lib.RunConfig.from_flat({**json.load(f), "workdir": args.workdir, "mode": "evaluate"})
    _, _, model = runs.open_trained_run(config)
    start = time.perf_counter()
    loc, scale = metrics.encode_dataset(attacks.ModelFns(model).encode_fn, source, indices, 1000, verbose=True)[-1]
    rows.append(("encode (top layer)", time.perf_counter() - start, ""))
    what = f"{config.model.model} encoder, {loc.shape[1]} units"
  else:
    loc, scale = synthetic_codes(factors)
    what = f"synthetic code, {loc.shape[1]} units"
  if args.compare:
    compare(loc, scale, args.compare, args.rounds)
    return
  for method in args.methods.split(","):
    start = time.perf_counter()
    result = metrics.mig(loc, factors, method=method, scales=scale, num_samples=args.exact_samples,
                         factor_names=source.factor_names, verbose=method == "exact")
    rows.append((f"MIG {method}" + (f" ({args.exact_samples} samples)" if method == "exact" else " (20 bins)"),
                 time.perf_counter() - start, f"{result['mig']:.3f}"))
  print(f"\nMIG on {len(indices)} procedural dSprites points, {what}")
  print("| step | wall s | MIG |")
  print("|---|---|---|")
  for name, seconds, value in rows:
    print(f"| {name} | {seconds:.1f} | {value} |")


if __name__ == "__main__":
  main()
