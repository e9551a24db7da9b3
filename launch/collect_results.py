"""Prints a markdown table of the runs under a folder (one workdir per run): settings and held-out results, and
for each model and depth the change of the ELBO without beta relative to its beta = 1 run (paper Figure 3).

  python launch/collect_results.py runs/elbo_vs_beta
"""

import json
import os
import sys


def load_runs(root):
  runs = []
  for name in sorted(os.listdir(root)):
    results_path = os.path.join(root, name, "results.json")
    config_path = os.path.join(root, name, "config.json")
    if os.path.isfile(results_path) and os.path.isfile(config_path):
      with open(results_path) as f, open(config_path) as g:
        runs.append({"name": name, **json.load(g), **{k: v for k, v in json.load(f).items() if k != "kl_units"}})
  return runs


def main(root):
  runs = load_runs(root)
  if not runs:
    sys.exit(f"No finished runs (results.json + config.json) under {root}.")
  depth = lambda r: r["layers"] if r["model"] in ("seatbelt", "beta_tcdlgm") else 1
  reference = {(r["model"], depth(r)): r["elbo"] for r in runs if r["beta"] == 1.0}
  print("| model | L | beta | steps | held-out ELBO | change vs beta = 1 | reconstruction | KL | TC (top) |")
  print("|---|---|---|---|---|---|---|---|---|")
  for r in sorted(runs, key=lambda r: (r["model"], depth(r), r["beta"])):
    ref = reference.get((r["model"], depth(r)))
    change = f"{100 * (r['elbo'] - ref) / abs(ref):+.1f}%" if ref is not None else "n/a"
    print(f"| {r['model']} | {depth(r)} | {r['beta']:g} | {r['step']} | {r['elbo']:.2f} | {change} | "
          f"{r['reconstruction']:.2f} | {r['kl']:.2f} | {r['tc']:.2f} |")


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else "runs/elbo_vs_beta")
