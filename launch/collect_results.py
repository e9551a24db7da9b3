"""Prints a markdown table of the runs under a folder (one workdir per run): held-out results per cell (model,
depth, beta), as the mean and sample standard deviation over the cell's seeds with the range, and each cell's
change of the ELBO without beta relative to the beta = 1 runs of the same seeds (paper Figure 3).

  python launch/collect_results.py runs/elbo_vs_beta
"""

import json
import os
import sys

import numpy as np


def load_runs(root):
  runs = []
  for name in sorted(os.listdir(root)):
    results_path = os.path.join(root, name, "results.json")
    config_path = os.path.join(root, name, "config.json")
    if os.path.isfile(results_path) and os.path.isfile(config_path):
      with open(results_path) as f, open(config_path) as g:
        runs.append({"name": name, **json.load(g), **{k: v for k, v in json.load(f).items() if k != "kl_units"}})
  return runs


def depth(run):
  return run["layers"] if run["model"] in ("seatbelt", "beta_tcdlgm") else 1


def spread(values):
  """'mean ± sd (min..max)' over seeds; the mean alone for one seed."""
  values = np.asarray(values, np.float64)
  if len(values) == 1:
    return f"{values[0]:.2f}"
  return f"{values.mean():.2f} ± {values.std(ddof=1):.2f} ({values.min():.1f}..{values.max():.1f})"


def cells(runs):
  """{(model, L, beta): [runs]}, sorted."""
  out = {}
  for r in runs:
    out.setdefault((r["model"], depth(r), r["beta"]), []).append(r)
  return dict(sorted(out.items()))


def main(root):
  runs = load_runs(root)
  if not runs:
    sys.exit(f"No finished runs (results.json + config.json) under {root}.")
  grouped = cells(runs)
  # The beta = 1 ELBO of each (model, L) by seed: a cell's change is against the same seeds' beta = 1 runs.
  reference = {}
  for (m, d, b), rs in grouped.items():
    if b == 1.0:
      reference[(m, d)] = {r["seed"]: r["elbo"] for r in rs}
  print("| model | L | beta | free bits | seeds | steps | held-out ELBO | change vs beta = 1 | reconstruction | KL | "
        "KL per layer, bottom to top |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  for (model, layers, beta), rs in grouped.items():
    by_seed = reference.get((model, layers), {})
    paired = [r for r in rs if r["seed"] in by_seed]
    if paired:
      elbo, ref = np.mean([r["elbo"] for r in paired]), np.mean([by_seed[r["seed"]] for r in paired])
      change = f"{100 * (elbo - ref) / abs(ref):+.1f}%"
    else:
      change = "n/a"
    per_layer = [np.mean([r.get(f"kl_{i + 1}", r["kl"]) for r in rs]) for i in range(layers)]
    steps = sorted({r["step"] for r in rs})
    print(f"| {model} | {layers} | {beta:g} | {sorted({r['free_bits'] for r in rs})} | "
          f"{','.join(str(r['seed']) for r in sorted(rs, key=lambda r: r['seed']))} | "
          f"{'/'.join(str(s) for s in steps)} | {spread([r['elbo'] for r in rs])} | {change} | "
          f"{spread([r['reconstruction'] for r in rs])} | {spread([r['kl'] for r in rs])} | "
          f"{', '.join(f'{k:.2f}' for k in per_layer)} |")


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else "runs/elbo_vs_beta")
