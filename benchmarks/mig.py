"""MIG (eq. J.1) on the full 737,280-image procedural dSprites grid for a 10-unit code: wall time per protocol.

Codes come from a trained encoder (`--workdir`; its encoding time is timed and printed separately) or, without
one, from a synthetic 10-unit code of known quality (the five factors standardised, rotated pairwise by a small
angle, plus noise and five noise units), so the metric itself is timed on its own.

Usage: python benchmarks/mig.py [--workdir=runs/quickstart] [--methods=histogram,exact] [--exact_samples=10000]
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from seatbelt_tf import data, metrics  # noqa: E402


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
  args = parser.parse_args()
  source = data.ProceduralDSprites()
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
