"""scipy's L-BFGS-B (the attack's reference optimizer, `attacks.minimize_scipy`) with numpy's BLAS on its default
threads against one thread (`threadpoolctl.threadpool_limits(1, user_api="blas")`, which `minimize_scipy` now sets).

The problem is an attack's shape: one image's worth of pixels (--dims; 4096 is a 64x64 dSprites image) in the box
[0, 1], a separable quadratic plus a sine (so the bounds bind on some coordinates and the curvature varies), run
to --max_iterations or convergence. The objective is numpy's, about a tenth of a millisecond, so the table is
scipy's own cost per evaluation. The variants alternate within each of --rounds rounds; the last column is the
largest difference between the two solutions over the rounds (0: the same bit for bit; OpenBLAS splits a dot
product over threads only above some length, and that changes its rounding).

Usage: python benchmarks/scipy_blas_threads.py [--dims=1024,4096,16384] [--rounds=5] [--max_iterations=1000]
"""

import argparse
import time

import numpy as np
import scipy
import scipy.optimize
import threadpoolctl


def problem(dim, seed=0):
  """(value_and_gradient, x0, bounds) of a box-constrained problem of `dim` coordinates."""
  rng = np.random.default_rng(seed)
  centre, weight = rng.uniform(-0.5, 1.5, dim), rng.uniform(0.1, 10.0, dim)

  def value_and_gradient(x):
    d = x - centre
    return float((weight * d * d).sum() + np.sin(x).sum()), 2.0 * weight * d + np.cos(x)
  return value_and_gradient, np.full(dim, 0.5), scipy.optimize.Bounds(np.zeros(dim), np.ones(dim))


def solve(dim, max_iterations, one_thread):
  """(seconds, evaluations, solution) of one L-BFGS-B run."""
  fun, x0, bounds = problem(dim)
  limit = threadpoolctl.threadpool_limits(1, user_api="blas") if one_thread else None
  try:
    start = time.perf_counter()
    res = scipy.optimize.minimize(fun, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                                  options={"maxiter": max_iterations, "gtol": 1e-9, "ftol": 1e-15})
    seconds = time.perf_counter() - start
  finally:
    if limit is not None:
      limit.restore_original_limits()
  return seconds, res.nfev, res.x


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--dims", default="1024,4096,16384")
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument("--max_iterations", type=int, default=1000)
  args = parser.parse_args()
  blas = [(i["internal_api"], i["num_threads"]) for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
  print(f"scipy {scipy.__version__}, numpy {np.__version__}, BLAS (library, default threads): {blas}\n")
  print("| dim | evaluations | default threads: ms per evaluation (median [min, max]) | one thread | "
        "default / one thread | largest difference of the solutions |")
  print("|---|---|---|---|---|---|")
  for dim in (int(d) for d in args.dims.split(",")):
    times, differences = {False: [], True: []}, []
    for _ in range(args.rounds):
      points = {}
      for one_thread in (False, True):
        seconds, evaluations, points[one_thread] = solve(dim, args.max_iterations, one_thread)
        times[one_thread].append(1e3 * seconds / evaluations)
      differences.append(float(np.abs(points[False] - points[True]).max()))
    default, single = np.array(times[False]), np.array(times[True])
    print(f"| {dim} | {evaluations} | {np.median(default):.2f} [{default.min():.2f}, {default.max():.2f}] | "
          f"{np.median(single):.2f} [{single.min():.2f}, {single.max():.2f}] | "
          f"{np.median(default) / np.median(single):.1f} | {max(differences):.1e} |")


if __name__ == "__main__":
  main()
