"""MIG of every stochastic layer of a trained run, at any of its kept checkpoints, written to one JSON file and
nothing written in the run's workdir (so it is safe beside a campaign that is still training that run).

Table J.2 of the paper scores z^L alone (`--mode=evaluate` does the same by default). Where the factors of
variation went when z^L does not hold them is the question this answers: the mutual information of each unit of
each layer with each factor (Chen et al.'s exact protocol by default, on the full factor grid), the MIG of each
layer, and the unit that holds each factor best. The encodings are the evaluation's: q(z^1|x), then each
q(z^{i+1}|z^i) at the mean of the layer below (`posterior_layers`), with the run's seed, so the top layer's MIG
equals the run's own evaluation at that checkpoint with the same settings.

  python launch/layer_mig.py WORKDIR OUT.json [--step K] [--method exact] [--points 0]
  python launch/layer_mig.py --markdown FOLDER        # one table over every OUT.json in FOLDER

--step: a checkpoint the workdir keeps (ckpt-K; default the latest). --points 0: the full factor grid (737,280
images for dSprites; ~13 minutes for an L = 2 MLP run on 2 cores with the exact protocol).
"""

import argparse
import glob
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FACTOR_COLUMNS = "mutual_info_nats: rows are the layer's units, columns the factors in `factor_names` order"


def checkpoint_prefix(workdir, step=None):
  """The prefix `<workdir>/checkpoints/ckpt-<step>` (the newest when `step` is None); ValueError naming the kept
  steps when that checkpoint is not there."""
  folder = os.path.join(workdir, "checkpoints")
  kept = sorted(int(os.path.basename(p)[len("ckpt-"):-len(".index")])
                for p in glob.glob(os.path.join(folder, "ckpt-*.index")))
  if not kept:
    raise ValueError(f"No checkpoint in {folder}: train the run first (--mode=train --workdir={workdir}).")
  step = kept[-1] if step is None else step
  if step not in kept:
    raise ValueError(f"{folder} keeps no checkpoint of step {step}; it keeps steps {', '.join(map(str, kept))}.")
  return os.path.join(folder, f"ckpt-{step}"), step


def layer_mig(workdir, step=None, method="exact", points=0, verbose=True):
  """MIG of every layer of the run in `workdir` at checkpoint `step` (None: the latest), as a JSON-ready dict.

  Args:
    workdir: a trained run's workdir (config.json, checkpoints/); only read.
    step: a kept checkpoint's step.
    method: "exact" (Chen et al. 2018) or "histogram" (disentanglement_lib).
    points: factor-grid points drawn with the run's seed; 0: the full grid.
  """
  from seatbelt_tf import attacks
  from seatbelt_tf import config as config_lib
  from seatbelt_tf import metrics
  from seatbelt_tf import runs
  prefix, step = checkpoint_prefix(workdir, step)
  with open(os.path.join(workdir, "config.json")) as f:
    config = config_lib.RunConfig.from_flat({**json.load(f), "workdir": workdir}).validate()
  config, source = runs.open_source(config)
  model = runs.build_model(config, source)
  # The run's own checkpoint layout (runs.checkpoint_manager); building the manager writes nothing.
  runs.checkpoint_manager(config, model).checkpoint.restore(prefix).assert_existing_objects_matched()
  start = time.time()
  ev = config.evaluation
  result = metrics.compute_mig(attacks.ModelFns(model).encode_fn, source, method=method, num_points=points or None,
                               num_bins=ev.mig_bins, num_samples=ev.mig_samples, layers="all",
                               seed=config.train.seed, batch_size=config.train.eval_batch_size, verbose=verbose)
  return {
      "run": os.path.basename(os.path.normpath(workdir)), "model": config.model.model, "beta": config.model.beta,
      "seed": config.train.seed, "step": step, "epochs": runs.epochs_seen(config, source, step),
      "method": method, "num_points": result["num_points"], "factor_names": list(source.factor_names),
      "factor_entropy": result["factor_entropy"], "columns": FACTOR_COLUMNS,
      "layers": {name: {"mig": r["mig"], "per_factor": r["per_factor"], "best_unit": r["best_unit"],
                        "mutual_info_nats": r["mutual_info"]} for name, r in result["layers"].items()},
      "wall_time_s": time.time() - start,
      "command": f"python launch/layer_mig.py <workdir> <out> --step {step} --method {method} --points {points}"}


def mig_ceiling(mutual_info, factor_entropy):
  """The MIG (eq. J.1) a layer would have if, for every factor, its second most informative unit held nothing
  about the factor: the mean over the factors of max_j I(z_j; v_k) / H(v_k). An upper bound of the layer's MIG
  (each factor's gap is its best unit's share less the second unit's): a layer whose ceiling is under a bar misses
  it for the information its units hold, not for how that information is shared among them.

  Args:
    mutual_info: `[D][K]` nats, I(z_j; v_k) of each unit with each factor (a layer-MIG file's `mutual_info_nats`).
    factor_entropy: the K factors' H(v_k) in nats, in the columns' order; factors that do not vary (H = 0) are left
      out, as MIG leaves them out.
  """
  best = np.max(np.asarray(mutual_info, np.float64), axis=0)
  entropy = np.asarray(factor_entropy, np.float64)
  if best.shape != entropy.shape:
    raise ValueError(f"{entropy.shape[0]} factor entropies for a mutual-information table of {best.shape[0]} factors.")
  varies = entropy > 1e-12
  if not varies.any():
    raise ValueError("No factor varies (every entropy is 0), so the MIG ceiling is undefined.")
  return float(np.mean(best[varies] / entropy[varies]))


def markdown(folder):
  """One table over every layer-MIG file in `folder`: per run and layer, MIG and its ceiling (`mig_ceiling`), each
  factor's gap (normalised, as MIG averages it) with the unit holding it, and that unit's information about it."""
  rows = []
  for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
    with open(path) as f:
      r = json.load(f)
    names = r["factor_names"]
    if not rows:
      rows += ["| run | epochs | layer | MIG | ceiling | " + " | ".join(f"{n}: gap (unit, MI nats)" for n in names)
               + " |", "|---" * (5 + len(names)) + "|"]
    for layer, v in sorted(r["layers"].items(), key=lambda kv: int(kv[0].split("_")[1])):
      mi = v["mutual_info_nats"]
      cells = [f"{v['per_factor'][n]:.3f} (u{v['best_unit'][n]}, {mi[v['best_unit'][n]][j]:.2f})"
               for j, n in enumerate(names)]
      ceiling = mig_ceiling(mi, [r["factor_entropy"][n] for n in names])
      rows.append(f"| {r['run']} | {r['epochs']:.1f} | z{layer.split('_')[1]} | {v['mig']:.3f} | {ceiling:.3f} | "
                  + " | ".join(cells) + " |")
  if not rows:
    raise ValueError(f"No layer-MIG files (*.json) in {folder}: write some with launch/layer_mig.py first.")
  return "\n".join(rows)


def main(argv):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("workdir", nargs="?")
  parser.add_argument("out", nargs="?")
  parser.add_argument("--step", type=int, default=None)
  parser.add_argument("--method", choices=("exact", "histogram"), default="exact")
  parser.add_argument("--points", type=int, default=0)
  parser.add_argument("--markdown", metavar="FOLDER")
  args = parser.parse_args(argv)
  if args.markdown:
    print(markdown(args.markdown))
    return
  if not (args.workdir and args.out):
    parser.error("give WORKDIR and OUT (or --markdown FOLDER)")
  if args.points < 0:
    parser.error(f"--points={args.points}: give a positive number of grid points, or 0 for the full grid")
  checkpoint_prefix(args.workdir, args.step)  # a missing step fails before TensorFlow loads
  from seatbelt_tf import io_utils
  out = layer_mig(args.workdir, args.step, args.method, args.points)
  io_utils.atomic_write_json(args.out, out)
  print(f"wrote {args.out}: " + ", ".join(f"{k} MIG {v['mig']:.3f}" for k, v in sorted(out["layers"].items())))


if __name__ == "__main__":
  main(sys.argv[1:])
