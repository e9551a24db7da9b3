"""Records a recipe probe: a run trained with another recipe than the campaign's cell of the same model, β and seed
(e.g. `--beta_warmup_steps`), beside that cell's seeds, so the repository keeps what the probe showed.

    python launch/recipe_probe.py RUN_WORKDIR docs/reproduction/probes [--cell=beta_tcvae_L1_beta4]
        [--reference=vae_L1_beta1]

Writes, atomically, into the output folder:
  <run>.json   the probe's per-epoch training metrics (TensorBoard events, `evaluation.history`), its recipe
               (`RECIPE_KEYS` from its config.json) and the command that wrote this file;
  <run>.png    its training ELBO against epochs beside every seed of `--cell` and `--reference` from the
               campaign's committed per-epoch metrics (`--summary_dir`/training/, as collect_reproduction.py
               writes them), the probe's seed bold.

Reads only files; TensorFlow is imported to read the event files.
"""

import argparse
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import collect_reproduction  # noqa: E402  pylint: disable=g-import-not-at-top
from seatbelt_tf import io_utils, plotting  # noqa: E402  pylint: disable=g-import-not-at-top

RECIPE_KEYS = ("model", "layers", "beta", "seed", "network", "batch_size", "learning_rate", "free_bits",
               "beta_warmup_steps", "train_steps", "estimator")
CAMPAIGN_EPOCH_IMAGES = 200 * 2048  # the campaign's logged epoch (launch/reproduce_dsprites.sh): 200 steps of 2048


def campaign_training(summary_dir, cell):
  """{seed: per-epoch metrics} of the campaign's runs `<cell>_seed<k>` beside its summary: their latest training
  (`collect_reproduction.read_training`; an earlier training's `.earlier<i>` file is not one of them)."""
  folder = os.path.join(summary_dir, collect_reproduction.TRAINING_DIR)
  pattern = re.compile(re.escape(cell) + r"_seed(\d+)\.json$")
  names = os.listdir(folder) if os.path.isdir(folder) else []
  seeds = sorted(int(m.group(1)) for m in map(pattern.match, names) if m)
  return {seed: collect_reproduction.read_training(summary_dir, f"{cell}_seed{seed}") for seed in seeds}


def record(workdir, out_dir, cell=None, reference=None, summary_dir=None, command=None):
  """Writes <run>.json and <run>.png for the probe in `workdir`; returns the JSON object."""
  config = collect_reproduction.read_json(os.path.join(workdir, "config.json"))
  if not config:
    raise SystemExit(f"{workdir} has no config.json: pass the probe's workdir (the --workdir it trained in).")
  history = collect_reproduction.training_history(workdir, config)
  if not history:
    raise SystemExit(f"{workdir} has no training events yet (tensorboard/): train at least one epoch first.")
  run = os.path.basename(os.path.normpath(workdir))
  summary_dir = summary_dir or os.path.join(os.path.dirname(HERE), "docs", "reproduction")
  seeds = campaign_training(summary_dir, cell) if cell else {}
  references = campaign_training(summary_dir, reference) if reference else {}
  obj = {"run": run, "recipe": {k: config.get(k) for k in RECIPE_KEYS}, "cell": cell, "reference": reference,
         "epochs_trained": len(history["epoch"]), "history": history, "command": command}
  os.makedirs(out_dir, exist_ok=True)
  io_utils.atomic_write_json(os.path.join(out_dir, run + ".json"), obj)
  _plot(os.path.join(out_dir, run + ".png"), run, config, history, cell, seeds, reference, references)
  return obj


def _plot(path, run, config, history, cell, seeds, reference, references):
  plt = plotting.pyplot()
  fig, ax = plt.subplots(figsize=(7.5, 4.2))
  # Against images seen, so a probe with another batch or epoch length lines up with the campaign's curves. The
  # probe's history always has them (training_history); a campaign curve without them is in the campaign's epochs.
  steps, batch = int(config["steps_per_epoch"]), int(config["batch_size"])
  millions = lambda h: ([i / 1e6 for i in h["images"]] if "images" in h else
                        [(e + 1) * CAMPAIGN_EPOCH_IMAGES / 1e6 for e in h.get("epoch", range(len(h["elbo"])))])
  for seed, h in sorted(seeds.items()):
    ax.plot(millions(h), h["elbo"], lw=2.2 if seed == int(config["seed"]) else 1.0, color=f"C{seed}",
            label=f"{cell}, seed {seed} (campaign recipe)")
  for seed, h in sorted(references.items()):
    ax.plot(millions(h), h["elbo"], ls=":", color=f"C{seed}", label=f"{reference}, seed {seed}")
  ax.plot(millions(history), history["elbo"], "k-", lw=2.4, marker="o", ms=3, label=f"{run} (probe)")
  warmup = int(config.get("beta_warmup_steps") or 0)
  if warmup:
    ax.axvline(warmup * batch / 1e6, color="0.5", lw=0.8, ls="--")
    ax.text(warmup * batch / 1e6, 0.02, " β reaches its value",
            transform=ax.get_xaxis_transform(), fontsize=8, color="0.4")
  low = min(min(h["elbo"][2:] or h["elbo"]) for h in [history, *seeds.values(), *references.values()])
  ax.set_ylim(low - 5, -40)
  # the probe's images and what followed them in the campaign (at least 20 of its epochs)
  ax.set_xlim(0, max(20 * CAMPAIGN_EPOCH_IMAGES / 1e6, 3 * max(millions(history))))
  ax.set_xlabel(f"images seen (millions; the probe's epoch: {steps} steps of {batch})")
  ax.set_ylabel("training ELBO (nats, without β)")
  ax.grid(alpha=0.3)
  ax.legend(fontsize=7, loc="lower right")
  ax.set_title(f"recipe probe: {run}", fontsize=10)
  fig.tight_layout()
  plotting.save(fig, path)
  plt.close(fig)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("workdir")
  parser.add_argument("out_dir")
  parser.add_argument("--cell", help="the campaign cell's run name without _seed<k>, e.g. beta_tcvae_L1_beta4")
  parser.add_argument("--reference", help="another campaign cell to draw dotted, e.g. vae_L1_beta1")
  parser.add_argument("--summary_dir", help="the folder of the campaign's summary.json, whose training/ holds its "
                      "per-epoch metrics (default: docs/reproduction)")
  args = parser.parse_args(argv)
  command = "python launch/recipe_probe.py " + " ".join(argv if argv is not None else sys.argv[1:])
  obj = record(args.workdir, args.out_dir, args.cell, args.reference, args.summary_dir, command)
  print(f"{args.out_dir}/{obj['run']}.json: {obj['epochs_trained']} epochs; training ELBO by epoch "
        + ", ".join(f"{v:.1f}" for v in obj["history"]["elbo"]))


if __name__ == "__main__":
  main()
