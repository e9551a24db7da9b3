"""Prints a markdown table of the attack sweeps under a folder (one workdir per model and seed, each with
attacks/attack_results.json): per cell (model, depth, beta) and attack, the median objective Delta and the median
-log p(x^t|z~) over all pairs x lambdas of all seeds, with a 95% bootstrap interval that resamples seeds and, within
them, pairs; the same over the displayed lambda of each pair (paper Figures 5-7); the seeds' own medians; and the
median excess of -log p(x^t|z~) over its floor, the target's own -log p(x^t|z~) (`seatbelt_tf.scores`), pooled
with its interval and per seed: "≈" where the sweeps predate the own score and the floor is each pair's median at
the latent attack's smallest lambdas (an output attack reads its floors from the same sweep's latent attack), "—"
where there is none.

ROOT is a campaign folder (one workdir per model and seed, each with config.json and attacks/attack_results.json)
or a folder of saved results (launch/save_remeasure.sh: `<run>.config.json` beside `<run>.attack_results.json`),
so a committed table can be made again from the repository alone.

With FIGURE, it also draws each cell's excess over the floor against lambda (median over seeds x pairs at each
lambda, quartile band) into that PNG.

  python launch/collect_attacks.py runs/robustness
  python launch/collect_attacks.py docs/remeasure [docs/remeasure/attack_curves.png]
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from seatbelt_tf import plotting  # noqa: E402
from seatbelt_tf.evaluation.seeds import keyed_rng, median_interval  # noqa: E402
from seatbelt_tf.scores import excess_over_floor, excess_quartiles, latent_reference  # noqa: E402

SAVED_SUFFIX = ".attack_results.json"  # launch/save_remeasure.sh's name for a run's records


def load(root):
  """[(config, records)] of every attacked workdir under `root`, and of every saved `<run>.attack_results.json`
  with its `<run>.config.json` directly in it."""
  out = []
  for name in sorted(os.listdir(root)):
    if name.endswith(SAVED_SUFFIX):
      path = os.path.join(root, name)
      config_path = os.path.join(root, name[:-len(SAVED_SUFFIX)] + ".config.json")
    else:
      path = os.path.join(root, name, "attacks", "attack_results.json")
      config_path = os.path.join(root, name, "config.json")
    if os.path.isfile(path) and os.path.isfile(config_path):
      with open(path) as f, open(config_path) as g:
        out.append((json.load(g), json.load(f)))
  return out


def with_excess(part, latent):
  """(copies of one seed's records of one attack with `excess` set, or None where it has none; the floor's source);
  `latent`: the same sweep's latent attack, where an output attack without the target's own score reads its
  floors."""
  excess, source = excess_over_floor(part, latent)
  if not excess:
    return None, None
  return [{**r, "excess": e} for r, e in zip(part, excess)], source


def excess_columns(seeds, rng):
  """The pooled median excess over the floor with its interval, and each seed's median: '≈' marks an approximate
  floor (any seed's), '—' a cell where some seed has no excess; and every seed's records with their `excess` (None
  for '—')."""
  parts = [with_excess(part, latent) for _, part, latent in seeds]
  if any(records is None for records, _ in parts):
    return "—", "—", None
  mark = "≈ " if any(source != "own" for _, source in parts) else ""
  by_pair = [[[r for r in records if r["pair"] == p] for p in sorted({r["pair"] for r in records})]
             for records, _ in parts]
  m, lo, hi = median_interval(by_pair, "excess", rng)
  per_seed = ", ".join(f"{np.median([r['excess'] for r in records]):.1f}" for records, _ in parts)
  return f"{mark}{m:.4g} [{lo:.4g}, {hi:.4g}]", f"{mark}{per_seed}", [r for records, _ in parts for r in records]


def main(root, figure=None):
  runs = load(root)
  if not runs:
    sys.exit(f"No attack results under {root}: neither workdirs (attacks/attack_results.json + config.json) nor "
             f"saved runs (<run>{SAVED_SUFFIX} + <run>.config.json).")
  cells = {}
  for config, records in runs:
    layers = config["layers"] if config["model"] in ("seatbelt", "beta_tcdlgm") else 1
    for key in {(r["mode"], r["layers"]) for r in records}:
      part = [r for r in records if (r["mode"], r["layers"]) == key]
      cells.setdefault((config["model"], layers, config["beta"], f"{key[0]} ({key[1]})"), []).append(
          (config["seed"], part, latent_reference(records)))
  rng = np.random.default_rng(0)
  print("| model | L | beta | attack | seeds | problems | median Delta [95%] | median -log p(x^t\\|z~) [95%] | "
        "displayed: median Delta | displayed: median -log p(x^t\\|z~) | per seed: median -log p(x^t\\|z~) | "
        "median excess over the floor [95%] | per seed: median excess |")
  print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
  curves = []
  for (model, layers, beta, attack), seeds in sorted(cells.items()):
    seeds.sort(key=lambda item: item[0])
    by_pair = [[[r for r in part if r["pair"] == p] for p in sorted({r["pair"] for r in part})]
               for _, part, _ in seeds]
    shown = [[[r for r in pair if r.get("display")] for pair in seed] for seed in by_pair]
    cols = []
    for groups in (by_pair, shown):
      for key in ("objective", "target_nll"):
        m, lo, hi = median_interval(groups, key, rng)
        cols.append(f"{m:.4g} [{lo:.4g}, {hi:.4g}]" if groups is by_pair else f"{m:.4g}")
    per_seed = ", ".join(f"{np.median([r['target_nll'] for r in part]):.1f}" for _, part, _ in seeds)
    n = sum(len(part) for _, part, _ in seeds)
    excess, excess_per_seed, records = excess_columns(seeds, keyed_rng("excess", model, layers, beta, attack))
    if records and all("lambda" in r for r in records):
      name = f"{model}, L = {layers}, β = {beta:g}, {attack}" + (" (≈ floor)" if excess.startswith("≈") else "")
      curves.append((attack.split()[0], name, True, *excess_quartiles(records)))
    print(f"| {model} | {layers} | {beta:g} | {attack} | {','.join(str(s) for s, _, _ in seeds)} | {n} | "
          f"{cols[0]} | {cols[1]} | {cols[2]} | {cols[3]} | {per_seed} | {excess} | {excess_per_seed} |")


  if figure and curves:
    plotting.excess_curves_figure(curves, figure)


if __name__ == "__main__":
  main(sys.argv[1] if len(sys.argv) > 1 else "runs/robustness", sys.argv[2] if len(sys.argv) > 2 else None)
