"""Prints a markdown table of the attack sweeps under a folder (one workdir per model and seed, each with
attacks/attack_results.json): per cell (model, depth, beta) and attack, the median objective Delta and the median
-log p(x^t|z~) over all pairs x lambdas of all seeds, with a 95% bootstrap interval that resamples seeds and, within
them, pairs; the same over the displayed lambda of each pair (paper Figures 5-7); and the seeds' own medians.

  python launch/collect_attacks.py runs/robustness
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from seatbelt_tf.evaluation.seeds import median_interval  # noqa: E402


def load(root):
  """[(config, records)] of every attacked workdir under `root`."""
  out = []
  for name in sorted(os.listdir(root)):
    path = os.path.join(root, name, "attacks", "attack_results.json")
    config_path = os.path.join(root, name, "config.json")
    if os.path.isfile(path) and os.path.isfile(config_path):
      with open(path) as f, open(config_path) as g:
        out.append((json.load(g), json.load(f)))
  return out


def main(root):
  runs = load(root)
  if not runs:
    sys.exit(f"No attack results (attacks/attack_results.json + config.json) under {root}.")
  cells = {}
  for config, records in runs:
    layers = config["layers"] if config["model"] in ("seatbelt", "beta_tcdlgm") else 1
    for key in {(r["mode"], r["layers"]) for r in records}:
      part = [r for r in records if (r["mode"], r["layers"]) == key]
      cells.setdefault((config["model"], layers, config["beta"], f"{key[0]} ({key[1]})"), []).append(
          (config["seed"], part))
  rng = np.random.default_rng(0)
  print("| model | L | beta | attack | seeds | problems | median Delta [95%] | median -log p(x^t\\|z~) [95%] | "
        "displayed: median Delta | displayed: median -log p(x^t\\|z~) | per seed: median -log p(x^t\\|z~) |")
  print("|---|---|---|---|---|---|---|---|---|---|---|")
  for (model, layers, beta, attack), seeds in sorted(cells.items()):
    seeds.sort(key=lambda item: item[0])
    by_pair = [[[r for r in part if r["pair"] == p] for p in sorted({r["pair"] for r in part})] for _, part in seeds]
    shown = [[[r for r in pair if r.get("display")] for pair in seed] for seed in by_pair]
    cols = []
    for groups in (by_pair, shown):
      for key in ("objective", "target_nll"):
        m, lo, hi = median_interval(groups, key, rng)
        cols.append(f"{m:.4g} [{lo:.4g}, {hi:.4g}]" if groups is by_pair else f"{m:.4g}")
    per_seed = ", ".join(f"{np.median([r['target_nll'] for r in part]):.1f}" for _, part in seeds)
    n = sum(len(part) for _, part in seeds)
    print(f"| {model} | {layers} | {beta:g} | {attack} | {','.join(str(s) for s, _ in seeds)} | {n} | "
          f"{cols[0]} | {cols[1]} | {cols[2]} | {cols[3]} | {per_seed} |")


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else "runs/robustness")
