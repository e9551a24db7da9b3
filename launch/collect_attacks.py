"""Prints a markdown table of the attack sweeps under a folder (one workdir per model, each with
attacks/attack_results.json): per model and attack, the median objective Delta and the median -log p(x^t|z~) over
all pairs x lambdas, and the same medians over the displayed lambda of each pair (paper Figures 5-7).

  python launch/collect_attacks.py runs/robustness
"""

import json
import os
import sys

import numpy as np


def main(root):
  rows = []
  for name in sorted(os.listdir(root)):
    path = os.path.join(root, name, "attacks", "attack_results.json")
    config_path = os.path.join(root, name, "config.json")
    if not (os.path.isfile(path) and os.path.isfile(config_path)):
      continue
    with open(path) as f, open(config_path) as g:
      records, config = json.load(f), json.load(g)
    layers = config["layers"] if config["model"] in ("seatbelt", "beta_tcdlgm") else 1
    for key in sorted({(r["mode"], r["layers"]) for r in records}):
      part = [r for r in records if (r["mode"], r["layers"]) == key]
      shown = [r for r in part if r.get("display")]
      rows.append((config["model"], layers, config["beta"], f"{key[0]} ({key[1]})", len(part),
                   np.median([r["objective"] for r in part]), np.median([r["target_nll"] for r in part]),
                   np.median([r["objective"] for r in shown]), np.median([r["target_nll"] for r in shown])))
  if not rows:
    sys.exit(f"No attack results (attacks/attack_results.json + config.json) under {root}.")
  print("| model | L | beta | attack | problems | median Delta | median -log p(x^t\\|z~) | "
        "displayed: median Delta | displayed: median -log p(x^t\\|z~) |")
  print("|---|---|---|---|---|---|---|---|---|")
  for model, layers, beta, attack, n, d, nll, d_shown, nll_shown in rows:
    print(f"| {model} | {layers} | {beta:g} | {attack} | {n} | {d:.4g} | {nll:.1f} | {d_shown:.4g} | {nll_shown:.1f} |")


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else "runs/robustness")
