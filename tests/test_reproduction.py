"""The reproduction campaign's summaries (issue 26): statistics over seeds (`evaluation.seeds`) against brute
force, and launch/collect_reproduction.py + launch/reproduction_tables.py on a fabricated campaign folder whose
verdicts are known."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from seatbelt_tf import config
from seatbelt_tf.evaluation import seeds

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mean_sd_and_its_format():
  assert seeds.mean_sd([1.0, 2.0, 6.0]) == (3.0, pytest.approx(np.std([1, 2, 6], ddof=1)), 1.0, 6.0, 3)
  assert seeds.mean_sd([None, 0.5])[4] == 1 and np.isnan(seeds.mean_sd([0.5])[1])
  assert seeds.mean_sd([])[4] == 0
  assert seeds.format_mean_sd([0.1, 0.3]) == "0.200 ± 0.141 (n = 2)"
  assert seeds.format_mean_sd([0.25]) == "0.250 (n = 1)" and seeds.format_mean_sd([]) == "—"


def _brute_force_interval(groups, key, seed, bootstrap):
  """The hierarchical bootstrap written out record by record, with the same draws."""
  rng = np.random.default_rng(seed)
  stats = []
  for _ in range(bootstrap):
    values = []
    for s in rng.integers(len(groups), size=len(groups)):
      for p in rng.integers(len(groups[s]), size=len(groups[s])):
        values.extend(r[key] for r in groups[s][p])
    stats.append(np.median(values))
  return np.percentile(stats, [2.5, 97.5])


def test_median_interval_equals_the_brute_force_bootstrap_and_collapses_on_constant_data():
  rng = np.random.default_rng(3)
  groups = [[[{"v": float(x)} for x in rng.normal(s, 1.0, size=5)] for _ in range(4 + s)] for s in range(3)]
  median, low, high = seeds.median_interval(groups, "v", np.random.default_rng(7), bootstrap=300)
  assert median == np.median([r["v"] for seed in groups for pair in seed for r in pair])
  np.testing.assert_allclose([low, high], _brute_force_interval(groups, "v", 7, 300))
  assert low < median < high
  constant = [[[{"v": 2.0}] * 3] * 2] * 3
  assert seeds.median_interval(constant, "v", np.random.default_rng(0), bootstrap=50) == (2.0, 2.0, 2.0)
  with pytest.raises(ValueError, match="at least one seed"):
    seeds.median_interval([[[{"v": 1.0}], []]], "v", np.random.default_rng(0))


def _run(root, model, layers, beta, seed, mig_exact, elbo, target_nll=None, steps=3600, draws=4,
         driver=config.ATTACK_DRIVER_VERSION, own_nll=None, kl_units=None):
  """One fabricated campaign workdir trained for `steps`: config, results, evaluation and (with target_nll) attack
  records, 3 pairs x 4 lambdas per attack with -log p(x^t|z~) = target_nll + small pair noise (and, with own_nll,
  the target's own -log p(x^t|z~) = own_nll + small noise; without, records from before it was kept), the output
  objective over `draws` noise draws (None: records written before the count was kept), made by attack driver
  `driver` (None: records written before the version was kept); with kl_units, the per-unit KLs of results.json
  (without, a run trained before they were kept)."""
  name = f"{model}_L{layers}_beta{beta}_seed{seed}"
  workdir = os.path.join(root, name)
  os.makedirs(os.path.join(workdir, "evaluation"))
  config = {"model": model, "layers": layers, "beta": beta, "seed": seed, "network": "mlp", "batch_size": 2048,
            "learning_rate": 1e-3, "free_bits": 0.05 if layers > 1 else 0.0, "steps_per_epoch": 200}
  results = {"step": steps, "num_examples_seen": steps * 2048, "epochs": steps / 360.0, "elbo": elbo}
  if layers > 1:
    results.update(kl_1=10.0, kl_2=2.0 + beta / 10)
  if kl_units is not None:
    results["kl_units"] = kl_units
  evaluation = {"mig_methods": {"exact": {"mig": mig_exact}, "histogram": {"mig": mig_exact + 0.01}}}
  for path, obj in (("config.json", config), ("results.json", results),
                    ("evaluation/evaluation.json", evaluation)):
    with open(os.path.join(workdir, path), "w") as f:
      json.dump(obj, f)
  if target_nll is not None:
    os.makedirs(os.path.join(workdir, "attacks"))
    rng = np.random.default_rng(seed)
    records = [{"mode": mode, "layers": "all", "pair": p, "lambda": 2.0 ** k, "display": k == 0,
                "objective": 1.0 + p, "target_nll": target_nll + rng.normal(0, 0.5),
                **({"target_own_nll": own_nll + rng.normal(0, 0.5)} if own_nll is not None else {}),
                **({"objective_draws": draws} if mode == "output" and draws else {}),
                **({"driver_version": driver} if driver else {})}
               for mode in ("latent", "output") for p in range(3) for k in range(4)]
    with open(os.path.join(workdir, "attacks", "attack_results.json"), "w") as f:
      json.dump(records, f)


def _milestone(workdir, step, mig_exact, elbo, kl_top, health_spikes=None):
  folder = os.path.join(workdir, "milestones", f"step{step}")
  os.makedirs(folder)
  counted = {} if health_spikes is None else {"health_spikes": health_spikes}
  for name, obj in (("results.json", {"step": step, "num_examples_seen": step * 2048, "epochs": step / 360.0,
                                      "elbo": elbo, "kl_1": 9.0, "kl_2": kl_top, **counted}),
                    ("evaluation.json", {"mig_methods": {"exact": {"mig": mig_exact}}})):
    with open(os.path.join(folder, name), "w") as f:
      json.dump(obj, f)


def _event_file(workdir, metrics, first_epoch=0):
  """A TensorBoard training log as Keras's callback writes it: one `epoch_<metric>` scalar per epoch."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard", "train"))
  with writer.as_default():
    for name, values in metrics.items():
      for epoch, value in enumerate(values):
        tf.summary.scalar(f"epoch_{name}", value, step=first_epoch + epoch)
  writer.close()


def test_summary_and_tables_of_a_fabricated_campaign(tmp_path):
  root, out = str(tmp_path / "runs"), str(tmp_path / "docs")
  for seed in range(3):
    _run(root, "seatbelt", 2, 1.0, seed, [0.05, 0.06, 0.07][seed], -80.0 - seed)
    # (mean MIG 0.20; the Seatbelt-VAE's -log p(x^t|z~) is far above the VAE's, but 20 nats above its own floor
    # against the VAE's 80: the raw score says harder to attack, the excess over the floor easier)
    _run(root, "seatbelt", 2, 4.0, seed, [0.20, 0.30, 0.10][seed], -85.0 - seed, target_nll=500.0, own_nll=480.0)
    _run(root, "beta_tcdlgm", 2, 8.0, seed, [0.30, 0.40, 0.35][seed], -90.0)  # mean 0.35
    _run(root, "vae", 1, 1.0, seed, 0.02, -75.0, target_nll=100.0, own_nll=20.0)
  # One seed only; its results keep the per-unit KLs (units above 0.1 nats active: 2 of 3 in z^1, 1 of 2 in z^2).
  _run(root, "beta_tcdlgm", 2, 4.0, 0, 0.3, -88.0, kl_units={"1": [0.5, 0.001, 0.25], "2": [0.099999, 1.23456]})
  spiky = os.path.join(root, "beta_tcdlgm_L2_beta4.0_seed0", "results.json")  # trained since the count is kept
  with open(spiky) as f:
    results = json.load(f)
  with open(spiky, "w") as f:
    json.dump({**results, "health_spikes": 2}, f)
  _milestone(os.path.dirname(spiky), 1800, mig_exact=0.2, elbo=-99.0, kl_top=1.5, health_spikes=1)
  # One run trained on from 1800 steps: its earlier evaluation kept (launch/milestone.py), its training curves in
  # TensorBoard.
  workdir = os.path.join(root, "seatbelt_L2_beta1.0_seed0")
  _milestone(workdir, 1800, mig_exact=0.01, elbo=-95.0, kl_top=0.5)
  # One run being trained on: its results are still those of its kept budget, listed once.
  _milestone(os.path.join(root, "beta_tcdlgm_L2_beta8.0_seed1"), 3600, mig_exact=0.4, elbo=-90.0, kl_top=2.9)
  _event_file(workdir, {"kl_2": [0.9, 0.6, 1.4], "elbo": [-400.0, -120.0, -100.0]})
  for seed in (0, 1):  # the cell's lowest seed's grid is the one shown
    with open(os.path.join(root, f"seatbelt_L2_beta4.0_seed{seed}", "attacks", "grid_latent_all.png"), "wb") as f:
      f.write(b"grid of seed %d" % seed)
  os.makedirs(os.path.join(root, "logs"))  # not a run: skipped
  summary = os.path.join(out, "summary.json")
  for args in (["launch/collect_reproduction.py", root, summary], ["launch/reproduction_tables.py", out, root]):
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
  rows = json.load(open(summary))
  assert len(rows) == 13
  keys = {"model", "layers", "beta", "seed", "train_steps", "images_seen", "elbo", "mig_exact", "mig_histogram",
          "latent_target_nll_median", "output_target_nll_median", "latent_delta_median", "output_delta_median"}
  assert all(keys <= set(r) for r in rows)
  assert {r["run"]: r["health_spikes"] for r in rows if r["health_spikes"] is not None} == {
      "beta_tcdlgm_L2_beta4.0_seed0": 2}  # the rest were trained before results.json counted spikes
  attacked = [r for r in rows if r["model"] == "seatbelt" and r["beta"] == 4.0]
  assert all(abs(r["latent_target_nll_median"] - 500.0) < 2.0 and r["latent_delta_median"] == 2.0
             for r in attacked)
  assert all(abs(r["latent_excess_nll_median"] - 20.0) < 2.0 and r["latent_floor"] == "own" for r in attacked)
  assert all(r["latent_target_nll_median"] is None for r in rows if r["beta"] == 1.0 and r["model"] != "vae")
  tables = open(os.path.join(out, "tables.md")).read()
  extended = [r for r in rows if r["run"] == "seatbelt_L2_beta1.0_seed0"][0]
  assert extended["kl_layers"] == [10.0, 2.1] and extended["milestones"] == [
      {"train_steps": 1800, "images_seen": 1800 * 2048, "epochs": 5.0, "elbo": -95.0, "mig_exact": 0.01,
       "mig_histogram": None, "kl_layers": [9.0, 0.5], "kl_units": None, "active_units": None,
       "mig_factors_exact": None, "health_spikes": None}]
  assert "| seatbelt_L2_beta1.0_seed0 | 5.0 | -95.00 | 0.010 | — | 0.50 | — |" in tables
  assert "| seatbelt_L2_beta1.0_seed0 | 10.0 | -80.00 | 0.050 | 0.060 | 2.10 | — |" in tables
  # The guard's count at each budget of a run trained since it is counted: from step 0 to that budget.
  assert "| beta_tcdlgm_L2_beta4.0_seed0 | 5.0 | -99.00 | 0.200 | — | 1.50 | 1 |" in tables
  assert "| beta_tcdlgm_L2_beta4.0_seed0 | 10.0 | -88.00 | 0.300 | 0.310 | 2.40 | 2 |" in tables
  dlgm = [r for r in rows if r["run"] == "beta_tcdlgm_L2_beta4.0_seed0"][0]
  assert dlgm["kl_units"] == [[0.5, 0.001, 0.25], [0.1, 1.2346]] and dlgm["active_units"] == [2, 1]
  assert all(r["active_units"] is None and r["kl_units"] is None for r in rows if r is not dlgm)
  assert "| beta_tcdlgm_L2_beta4.0_seed0 | 10.0 | -88.00 | 10.00 / 2.40 | 2 of 3 / 1 of 2 |" in tables
  assert "| vae_L1_beta1.0_seed0 | 10.0 | -75.00 | — | — |" in tables  # (no KL in its fabricated results)
  assert [r for r in rows if r["run"] == "beta_tcdlgm_L2_beta8.0_seed1"][0]["milestones"] == []
  budget_table, units_table = tables.split("## What each run holds")
  assert budget_table.count("| beta_tcdlgm_L2_beta8.0_seed1 |") == 1  # listed once, at its kept budget
  assert units_table.count("| beta_tcdlgm_L2_beta8.0_seed1 |") == 1
  training = json.load(open(os.path.join(out, "training", "seatbelt_L2_beta1.0_seed0.json")))
  assert training["epoch"] == [0, 1, 2] and training["images"] == [409600, 819200, 1228800]
  np.testing.assert_allclose(training["kl_2"], [0.9, 0.6, 1.4], rtol=1e-6)
  assert os.listdir(os.path.join(out, "training")) == ["seatbelt_L2_beta1.0_seed0.json"]
  assert "| Seatbelt-VAE, L = 2 | 1 | MIG <= 0.10 | 0.060 ± 0.010 (n = 3) | met |" in tables
  assert "| Seatbelt-VAE, L = 2 | 4 | MIG >= 0.25 | 0.200 ± 0.100 (n = 3) | not met |" in tables
  assert "| β-TC DLGM, L = 2 | 8 | MIG >= 0.25 | 0.350 ± 0.050 (n = 3) | met |" in tables
  assert "| β-TC DLGM, L = 2 | 4 | MIG >= 0.25 | 0.300 (n = 1) | pending (1 of 3 seeds) |" in tables
  assert "| β-TC DLGM, L = 2 | 1 | MIG <= 0.10 | — | pending (0 of 3 seeds) |" in tables
  assert "| Seatbelt-VAE, L = 2 | 4 | -86.00 ± 1.00 (n = 3) | -5.00 ± 0.00 (n = 3) |" in tables  # paired by seed
  latent = [line for line in tables.splitlines() if line.startswith("| Seatbelt-VAE, L = 2 | 4 | latent | 3 |")]
  assert len(latent) == 1 and latent[0].endswith("| harder; easier |") and "≈" not in latent[0]
  # The approximate floor checked where the own score is recorded: -log p at the latent attack's 4 lambdas (all of
  # them, fewer than FLOOR_LAMBDAS) is 500 + noise, so the approximate excess is ~0 against the exact ~20, for the
  # latent attack and for the output attack, which reads its floors from the latent attack's.
  for mode in ("latent", "output"):
    check = [line for line in tables.splitlines() if line.startswith(f"| Seatbelt-VAE, L = 2 | 4 | {mode} | ")
             and line.count("|") == 8 and "%" not in line]  # (not the paired comparison's rows)
    assert len(check) == 1, mode
    assert check[0].split(" | ")[3] == "0, 1, 2"  # the seeds checked
    exact, approximate, difference = (float(c) for c in check[0].strip("| ").split(" | ")[4:])
    assert abs(exact - 20.0) < 2.0 and abs(approximate) < 1.0
    assert difference == pytest.approx(approximate - exact, abs=0.1)
  grid = os.path.join(out, "grids", "seatbelt_L2_beta4.0_seed0_latent.png")
  assert open(grid, "rb").read() == b"grid of seed 0" and os.listdir(os.path.join(out, "grids")) == [
      os.path.basename(grid)]
  assert "](grids/seatbelt_L2_beta4.0_seed0_latent.png)" in tables
  for name in ("mig_vs_beta.png", "elbo_vs_beta.png", "attack_medians.png", "training_top_layer.png",
               "attack_curves.png"):
    assert os.path.getsize(os.path.join(out, name)) > 1000
  assert "](attack_curves.png)" in tables
  # Only one run has training curves: no cell has two seeds to draw side by side, so no figure and no link.
  assert not os.path.exists(os.path.join(out, "training_by_seed.png")) and "training_by_seed.png" not in tables
  # The excess against lambda: quartiles over seeds x pairs at each lambda, against numpy on the same records.
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import reproduction_tables  # pylint: disable=import-outside-toplevel
  cells = reproduction_tables.attack_cells(reproduction_tables.load(out))
  curves = {(mode, name): (lams, q) for mode, name, _, lams, q in reproduction_tables.excess_curves(cells)}
  assert sorted(curves) == [("latent", "Seatbelt-VAE, L = 2, β = 4, 3 seeds"), ("latent", "VAE, β = 1, 3 seeds"),
                            ("output", "Seatbelt-VAE, L = 2, β = 4, 3 seeds"), ("output", "VAE, β = 1, 3 seeds")]
  groups = cells[("seatbelt", 2, 4.0)]["latent"]  # per seed, per pair
  lams, quartiles = curves[("latent", "Seatbelt-VAE, L = 2, β = 4, 3 seeds")]
  assert lams == [1.0, 2.0, 4.0, 8.0] and sum(len(pair) for seed in groups for pair in seed) == 3 * 3 * 4
  for lam, q in zip(lams, quartiles):
    excess = [r["target_nll"] - np.median([o["target_own_nll"] for o in pair])
              for seed in groups for pair in seed for r in pair if r["lambda"] == lam]
    assert len(excess) == 9
    np.testing.assert_allclose(q, np.percentile(excess, [25, 50, 75]), rtol=1e-9)
  # Seed by seed: each seed's medians over its own pairs x lambdas, as numpy gives on its records (the same excess
  # as the curves above: -log p less the pair's median own score).
  for seed, pairs in enumerate(groups):
    line = [line for line in tables.splitlines() if line.startswith(f"| Seatbelt-VAE, L = 2 | 4 | latent | {seed} | ")]
    assert len(line) == 1, seed
    nll = np.median([r["target_nll"] for pair in pairs for r in pair])
    excess = np.median([r["target_nll"] - np.median([o["target_own_nll"] for o in pair]) for pair in pairs
                        for r in pair])
    assert line[0].split(" | ")[4].startswith(f"{nll:.4g} [") and line[0].split(" | ")[5].startswith(f"{excess:.4g} [")
    assert abs(excess - 20.0) < 2.0
  # The committed files alone rewrite the same tables: the runs' workdirs are not needed.
  assert sorted(os.listdir(os.path.join(out, "attack_records"))) == sorted(
      f"{m}_L{l}_beta{b}_seed{s}.json" for m, l, b in (("seatbelt", 2, 4.0), ("vae", 1, 1.0)) for s in range(3))
  os.rename(root, root + ".gone")
  os.remove(os.path.join(out, "tables.md"))
  proc = subprocess.run([sys.executable, "launch/reproduction_tables.py", out], cwd=REPO, capture_output=True,
                        text=True)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert open(os.path.join(out, "tables.md")).read() == tables
  proc = subprocess.run([sys.executable, "launch/reproduction_tables.py", root + ".gone", out], cwd=REPO,
                        capture_output=True, text=True)
  assert proc.returncode != 0 and "No summary.json in" in proc.stderr and "collect_reproduction.py" in proc.stderr


def test_the_summary_outlives_the_workdirs_and_the_campaign_skips_the_cells_it_records(tmp_path):
  """A session may start on a new machine with ROOT empty (checkpoints are never committed). The summary is the
  record: collect_reproduction.py keeps a run whose workdir is gone or behind it (restarted from scratch), files
  and all, and lets a workdir past it replace it (the old budget becoming a milestone where the workdir was trained
  on from it, an earlier run where it was trained again from step 0); reproduce_dsprites.sh skips
  the cells the summary holds at the phase's budget (attacked, in phase 2) instead of training them again."""
  root, out = str(tmp_path / "runs"), str(tmp_path / "docs")
  summary = os.path.join(out, "summary.json")

  def collect():
    proc = subprocess.run([sys.executable, "launch/collect_reproduction.py", root, summary], cwd=REPO,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return {r["run"]: r for r in json.load(open(summary))}, proc.stdout

  def files(run):
    return {d: open(os.path.join(out, d, f"{run}.json"), "rb").read()
            for d in ("attack_records", "training") if os.path.isfile(os.path.join(out, d, f"{run}.json"))}

  _run(root, "seatbelt", 2, 4, 0, 0.05, -49.8, target_nll=135.0, steps=11000)
  _run(root, "vae", 1, 1, 0, 0.02, -40.0, target_nll=100.0, steps=11000)
  _run(root, "beta_tcdlgm", 2, 1, 0, 0.03, -45.0, steps=3600)
  _event_file(os.path.join(root, "vae_L1_beta1_seed0"), {"elbo": [-300.0, -120.0]})
  first, _ = collect()
  kept = {run: files(run) for run in first}
  assert len(kept["vae_L1_beta1_seed0"]) == 2 and len(kept["seatbelt_L2_beta4_seed0"]) == 1
  # A new machine: the seatbelt workdir is gone, the VAE restarted from scratch (behind its record), one new run.
  shutil.rmtree(os.path.join(root, "seatbelt_L2_beta4_seed0"))
  shutil.rmtree(os.path.join(root, "vae_L1_beta1_seed0"))
  _run(root, "vae", 1, 1, 0, 0.5, -300.0, steps=200)
  _run(root, "beta_tcvae", 1, 4, 0, 0.04, -42.0, target_nll=120.0, steps=11000)
  second, printed = collect()
  assert set(second) == set(first) | {"beta_tcvae_L1_beta4_seed0"}
  for run in ("seatbelt_L2_beta4_seed0", "vae_L1_beta1_seed0", "beta_tcdlgm_L2_beta1_seed0"):
    assert second[run] == first[run] and files(run) == kept[run]
  assert "2 kept from the summary as they were" in printed and "seatbelt_L2_beta4_seed0" in printed
  recorded = subprocess.run([sys.executable, "launch/collect_reproduction.py", "--recorded", summary, "11000", "1"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
  assert recorded == ["beta_tcvae_L1_beta4_seed0", "seatbelt_L2_beta4_seed0", "vae_L1_beta1_seed0"]
  recorded = subprocess.run([sys.executable, "launch/collect_reproduction.py", "--recorded", summary, "3600", "0"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
  assert recorded == sorted(second)
  # The campaign skips what the summary records, and trains what it lacks (the launcher logs its arguments; the
  # summary's own script runs for real).
  calls = tmp_path / "calls.log"
  fake = tmp_path / "python"
  fake.write_text(f'#!/usr/bin/env bash\ncase "$1" in *collect_reproduction.py) exec {sys.executable} "$@";; '
                  f'*reproduction_tables.py) exit 0;; esac\necho "$*" >> {calls}\n')
  fake.chmod(0o755)
  proc = subprocess.run(["bash", os.path.join(REPO, "launch", "reproduce_dsprites.sh")], capture_output=True,
                        text=True, env=dict(os.environ, ROOT=str(tmp_path / "campaign"), PHASES="2", SEEDS="0",
                                            STEPS="11000", PYTHON=str(fake), SUMMARY=summary,
                                            ROBUST_RUNS="seatbelt:2:4 vae:1:1 beta_tcdlgm:2:4", LAYER_MIG=""))
  assert proc.returncode == 0, proc.stderr[-2000:]
  trained = [c.split("--workdir=")[1].split()[0].rsplit("/", 1)[1] for c in calls.read_text().splitlines()
             if "--train_steps=" in c]
  assert trained == ["beta_tcdlgm_L2_beta4_seed0"]
  assert "== seatbelt_L2_beta4_seed0: already in the campaign's summary at this budget" in proc.stdout
  assert "== vae_L1_beta1_seed0: already in the campaign's summary" in proc.stdout
  # A workdir past its record that kept the record's budget as a milestone (launch/paper.sh keeps a run's
  # evaluation before training it on) is the same training, trained on: it replaces the record, whose earlier
  # milestones join its own.
  shutil.rmtree(os.path.join(root, "vae_L1_beta1_seed0"))
  _run(root, "vae", 1, 1, 0, 0.03, -38.0, target_nll=90.0, steps=18000)
  _milestone(os.path.join(root, "vae_L1_beta1_seed0"), 11000, mig_exact=0.02, elbo=-40.0, kl_top=None)
  vae_record = json.load(open(summary))
  for row in vae_record:
    if row["run"] == "vae_L1_beta1_seed0":
      row["milestones"] = [{"train_steps": 3600, "images_seen": 3600 * 2048, "epochs": 10.0, "elbo": -60.0,
                            "mig_exact": 0.01, "mig_histogram": None, "kl_layers": [None], "mig_factors_exact": None}]
  json.dump(vae_record, open(summary, "w"))
  third, _ = collect()
  vae = third["vae_L1_beta1_seed0"]
  assert vae["train_steps"] == 18000 and vae["elbo"] == -38.0
  assert [(m["train_steps"], m["elbo"]) for m in vae["milestones"]] == [(3600, -60.0), (11000, -40.0)]
  assert "training" not in files("vae_L1_beta1_seed0")  # the record's curves were not this workdir's
  assert files("vae_L1_beta1_seed0")["attack_records"] != kept["vae_L1_beta1_seed0"]["attack_records"]
  assert "earlier_runs" not in vae  # trained on, not trained again
  # A workdir past its record without a milestone at the record's budget was trained from step 0 past it (its
  # checkpoint went with an earlier machine): another training, so the record moves to earlier_runs and is not
  # taken for one of its milestones.
  dlgm_record = third["beta_tcdlgm_L2_beta1_seed0"]
  shutil.rmtree(os.path.join(root, "beta_tcdlgm_L2_beta1_seed0"))
  _run(root, "beta_tcdlgm", 2, 1, 0, 0.04, -41.0, steps=7200)
  dlgm = collect()[0]["beta_tcdlgm_L2_beta1_seed0"]
  assert dlgm["train_steps"] == 7200 and dlgm["elbo"] == -41.0 and dlgm["milestones"] == []
  assert dlgm["earlier_runs"] == [{**{k: dlgm_record[k] for k in ("train_steps", "images_seen", "epochs", "elbo",
                                                                  "mig_exact", "mig_histogram", "kl_layers")},
                                   "kl_units": None, "active_units": None, "mig_factors_exact": None,
                                   "milestones": []}]  # (a record from before them)
  # A cell trained again from step 0 (its checkpoint gone with a machine) reaches its record's budget: the new run
  # replaces the record, and the record, milestones and all, becomes an earlier run, once however often the
  # campaign collects; the tables' budget section shows both runs' rows, the earlier one marked.
  milestone = dict(vae["milestones"][1], train_steps=3600, images_seen=3600 * 2048, epochs=10.0)  # (ELBO -40)
  earlier = dict(third["seatbelt_L2_beta4_seed0"], milestones=[milestone])
  json.dump([earlier if r["run"] == earlier["run"] else r for r in third.values()], open(summary, "w"))
  _run(root, "seatbelt", 2, 4, 0, 0.06, -51.2, target_nll=130.0, steps=11000)
  fourth, _ = collect()
  assert collect()[0] == fourth
  seatbelt = fourth["seatbelt_L2_beta4_seed0"]
  assert seatbelt["elbo"] == -51.2 and seatbelt["mig_exact"] == 0.06 and seatbelt["milestones"] == []
  assert seatbelt["earlier_runs"] == [{**{k: earlier[k] for k in ("train_steps", "images_seen", "epochs", "elbo",
                                                                  "mig_exact", "mig_histogram", "kl_layers",
                                                                  "kl_units", "active_units", "mig_factors_exact")},
                                       "milestones": earlier["milestones"]}]
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import reproduction_tables  # pylint: disable=import-outside-toplevel
  budget = [line for line in reproduction_tables.budget_section(reproduction_tables.load(out)) if "seatbelt" in line]
  assert [line.split(" | ")[:3] for line in budget] == [
      ["| seatbelt_L2_beta4_seed0 (earlier run 1, trained again since)", "10.0", "-40.00"],
      ["| seatbelt_L2_beta4_seed0 (earlier run 1, trained again since)", "30.6", "-49.80"],
      ["| seatbelt_L2_beta4_seed0", "30.6", "-51.20"]], budget


def _out_of_date_vae_and_current_seatbelt(tmp_path, **vae_attack):
  """A VAE whose sweep is out of date in the way `vae_attack` (`_run`'s draws or driver) says and a current
  Seatbelt-VAE, both at 11,000 steps, collected into a summary: (root, out, summary path, rows by run)."""
  root, out = str(tmp_path / "runs"), str(tmp_path / "docs")
  _run(root, "vae", 1, 1, 0, 0.1, -54.0, target_nll=750.0, steps=11000, **vae_attack)
  _run(root, "seatbelt", 2, 4, 0, 0.05, -49.8, target_nll=135.0, steps=11000)
  summary = os.path.join(out, "summary.json")
  subprocess.run([sys.executable, "launch/collect_reproduction.py", root, summary], cwd=REPO, check=True,
                 capture_output=True)
  return root, out, summary, {r["run"]: r for r in json.load(open(summary))}


def test_a_sweep_whose_output_objective_used_one_draw_is_attacked_again_not_retrained(tmp_path):
  """Output-attack sweeps from before the objective averaged over noise draws (one draw, which the attack overfits:
  docs/REPRODUCTION.md) are out of date: the summary keeps their draws, the campaign does not count them as attacked
  (`--recorded`), and launch/paper.sh attacks such a run again, however new its sweep, and leaves a current one be."""
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import collect_reproduction  # pylint: disable=import-outside-toplevel
  root, out, summary, rows = _out_of_date_vae_and_current_seatbelt(tmp_path, draws=None)
  assert rows["vae_L1_beta1_seed0"]["output_objective_draws"] == 1
  assert rows["seatbelt_L2_beta4_seed0"]["output_objective_draws"] == collect_reproduction.OBJECTIVE_DRAWS == 4
  assert json.load(open(os.path.join(out, "attack_records", "vae_L1_beta1_seed0.json")))["output_objective_draws"] == 1
  assert collect_reproduction.recorded_runs(summary, 11000, attacked=True) == ["seatbelt_L2_beta4_seed0"]
  # The tables name the one-draw sweep as out of date and compare it with nothing.
  subprocess.run([sys.executable, "launch/reproduction_tables.py", out], cwd=REPO, check=True, capture_output=True)
  tables = open(os.path.join(out, "tables.md")).read().split("The approximate floor")[0]  # Section 5's main table
  assert ("| VAE | 1 | output, objective on 1 noise draw; out of date (the protocol's: 4) | 1 |" in tables
          and "| — (out of date) |" in tables)
  assert [line.rsplit("|", 2)[1].strip() for line in tables.splitlines()
          if line.startswith("| Seatbelt-VAE, L = 2 | 4 | output |")] == ["—"]  # no current VAE output to compare
  assert sorted(collect_reproduction.recorded_runs(summary, 11000, attacked=False)) == sorted(rows)
  current = [subprocess.run([sys.executable, "launch/collect_reproduction.py", "--current-attack",
                             os.path.join(root, run)], cwd=REPO).returncode for run in sorted(rows)]
  assert current == [0, 1]  # seatbelt (current), vae (one draw)
  calls = tmp_path / "calls.log"
  fake = tmp_path / "python"
  fake.write_text(f'#!/usr/bin/env bash\ncase "$1" in *collect_reproduction.py) exec {sys.executable} "$@";; esac\n'
                  f'echo "$*" >> {calls}\n')
  fake.chmod(0o755)
  proc = subprocess.run(["bash", os.path.join(REPO, "launch", "paper.sh")], capture_output=True, text=True,
                        env=dict(os.environ, ROOT=root, RUNS="vae:1:1 seatbelt:2:4", SEEDS="0", STEPS="11000",
                                 PYTHON=str(fake)))
  assert proc.returncode == 0, proc.stderr[-2000:]
  made = calls.read_text().splitlines()
  attacked = [c.split("--flagfile=")[1].split()[0].split("/")[-2] for c in made if "--mode=attack" in c]
  assert attacked == ["vae_L1_beta1_seed0"]
  assert not [c for c in made if "--mode=evaluate" in c]  # evaluations newer than the (absent) checkpoints stay


def test_a_sweep_by_an_older_attack_driver_is_attacked_again_not_retrained(tmp_path):
  """Attack records carry the batched driver's version (`config.ATTACK_DRIVER_VERSION`; records from before it was
  kept: version 1). A sweep by an older driver is out of date: the campaign does not count its run as attacked
  (`--recorded`), `--current-attack` says so (launch/paper.sh then attacks it again) and the status names it."""
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import collect_reproduction  # pylint: disable=import-outside-toplevel
  import campaign_status  # pylint: disable=import-outside-toplevel
  from seatbelt_tf.attacks import lbfgs  # pylint: disable=import-outside-toplevel
  assert config.ATTACK_DRIVER_VERSION >= 2 and lbfgs.DRIVER_VERSION == config.ATTACK_DRIVER_VERSION
  root, out, summary, rows = _out_of_date_vae_and_current_seatbelt(tmp_path, driver=None)
  assert rows["vae_L1_beta1_seed0"]["attack_driver"] == 1
  assert rows["seatbelt_L2_beta4_seed0"]["attack_driver"] == config.ATTACK_DRIVER_VERSION
  assert json.load(open(os.path.join(out, "attack_records", "vae_L1_beta1_seed0.json")))["attack_driver"] == 1
  assert collect_reproduction.recorded_runs(summary, 11000, attacked=True) == ["seatbelt_L2_beta4_seed0"]
  # The tables name both of the VAE's sweeps as out of date and compare the Seatbelt-VAE with neither.
  subprocess.run([sys.executable, "launch/reproduction_tables.py", out], cwd=REPO, check=True, capture_output=True)
  tables = open(os.path.join(out, "tables.md")).read().split("The approximate floor")[0]  # Section 5's main table
  old = f"by attack driver 1, out of date (current: {config.ATTACK_DRIVER_VERSION})"
  assert [line.split(" | ")[2:4] + [line.rsplit("|", 2)[1].strip()] for line in tables.splitlines()
          if line.startswith("| VAE | 1 |")] == [["latent; " + old, "1", "— (out of date)"],
                                                 ["output; " + old, "1", "— (out of date)"]]
  assert [line.rsplit("|", 2)[1].strip() for line in tables.splitlines()
          if line.startswith("| Seatbelt-VAE, L = 2 | 4 |") and "latent" in line] == ["—"]
  current = [subprocess.run([sys.executable, "launch/collect_reproduction.py", "--current-attack",
                             os.path.join(root, run)], cwd=REPO).returncode for run in sorted(rows)]
  assert current == [0, 1]  # seatbelt (current driver), vae (driver 1)
  for name in rows:  # (the status compares the sweep with the checkpoint's age: make the sweep the newer)
    os.makedirs(os.path.join(root, name, "checkpoints"), exist_ok=True)
    with open(os.path.join(root, name, "checkpoints", "checkpoint"), "w") as f:
      f.write('model_checkpoint_path: "ckpt-11000"\n')
    os.utime(os.path.join(root, name, "checkpoints", "checkpoint"), (1000.0, 1000.0))
  status = {s["run"]: s for s in campaign_status.status(root, summary)}
  assert status["vae_L1_beta1_seed0"]["attacked"] == (
      f"out of date: attack driver 1, the current {config.ATTACK_DRIVER_VERSION}")
  assert status["seatbelt_L2_beta4_seed0"]["attacked"] == "done"
  assert status["vae_L1_beta1_seed0"]["recorded"].endswith(
      f"by attack driver 1 (current: {config.ATTACK_DRIVER_VERSION}; attacked again)")


def test_attack_labels_and_their_figure_ticks_name_the_layer_set_and_what_is_out_of_date():
  """`reproduction_tables.attack_label` and the tick under each cell of the attack figure: the paper's attack bare,
  another layer set as not the paper's, an old output objective or an older driver as out of date."""
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import reproduction_tables as tables  # pylint: disable=import-outside-toplevel
  current, draws = config.ATTACK_DRIVER_VERSION, 4
  cases = {("seatbelt", "latent", "all", draws, current): ("latent", ""),
           ("seatbelt", "output", None, draws, current): ("output", ""),
           ("beta_tcdlgm", "latent", "first", draws, current): ("latent, z¹ (eq. 14)", "\nz¹ (eq. 14)"),
           ("beta_tcdlgm", "latent", "all", draws, current): (
               "latent, all layers (eq. 15); the paper's for this family: z¹ (eq. 14)",
               "\nall layers (eq. 15)\nnot the paper's"),
           ("vae", "output", None, 1, current): (
               "output, objective on 1 noise draw; out of date (the protocol's: 4)",
               "\nobjective on 1 noise draw\nout of date"),
           ("vae", "latent", "all", draws, current - 1): (
               f"latent; by attack driver {current - 1}, out of date (current: {current})", "\nout of date"),
           ("beta_tcdlgm", "latent", "all", draws, current - 1): (
               "latent, all layers (eq. 15); the paper's for this family: z¹ (eq. 14); by attack driver "
               f"{current - 1}, out of date (current: {current})", "\nall layers (eq. 15)\nout of date")}
  for args, (label, tick) in cases.items():
    assert tables.attack_label(*args) == label, args
    assert tables._tick_suffix(label) == tick, args  # pylint: disable=protected-access
    assert tables.is_current(label) == ("out of date" not in label)
    assert tables.attack_mode(label) == args[1], args  # the figure's panel and the VAE row it is set against
  # the tick also says how many seeds the cell's intervals pool, and whether its floor is approximate
  assert tables.attack_tick(("beta_tcdlgm", 2, 4.0, "latent, z¹ (eq. 14)"),
                            {"seeds": 1, "approximate_floor": False}) == (
                                "β-TC DLGM, L = 2\nβ = 4\nz¹ (eq. 14)\n1 seed")
  assert tables.attack_tick(("vae", 1, 1.0, "output"), {"seeds": 2, "approximate_floor": True}) == (
      "VAE\nβ = 1\n2 seeds\n(≈ floor)")


def test_the_summary_reports_each_family_s_latent_attack_as_the_paper_defines_it(tmp_path):
  """Paper Section 4: a beta-TC DLGM's latent attack matches z^1 alone (eq. 14: its decoder sees only z^1), the
  Seatbelt-VAE's every layer (eq. 15). The summary, the compact records and the tables report the paper's set for
  each family; a beta-TC DLGM attacked on every layer only (an earlier protocol) is reported as such, kept apart
  from seeds attacked the paper's way, and its cell is not finished for the campaign (`--recorded`)."""
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import collect_reproduction  # pylint: disable=import-outside-toplevel
  root, out = str(tmp_path / "runs"), str(tmp_path / "docs")
  for seed in range(3):
    _run(root, "beta_tcdlgm", 2, 4.0, seed, 0.1, -50.0, target_nll=300.0, steps=11000)
    _run(root, "seatbelt", 2, 4.0, seed, 0.1, -50.0, target_nll=300.0, steps=11000)
  for seed in (1, 2):  # attacked on z^1 too, where the attack is much easier (a lower -log p(x^t|z~))
    path = os.path.join(root, f"beta_tcdlgm_L2_beta4.0_seed{seed}", "attacks", "attack_results.json")
    records = json.load(open(path))
    records += [dict(r, layers="first", target_nll=r["target_nll"] - 200.0, objective=0.5)
                for r in records if r["mode"] == "latent"]
    json.dump(records, open(path, "w"))
  summary = os.path.join(out, "summary.json")
  for args in (["launch/collect_reproduction.py", root, summary], ["launch/reproduction_tables.py", out]):
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
  rows = {r["run"]: r for r in json.load(open(summary))}
  for seed in (1, 2):
    row = rows[f"beta_tcdlgm_L2_beta4.0_seed{seed}"]
    assert row["latent_layers"] == "first" and row["latent_delta_median"] == 0.5
    assert abs(row["latent_target_nll_median"] - 100.0) < 2.0 and abs(row["output_target_nll_median"] - 300.0) < 2.0
    compact = json.load(open(os.path.join(out, "attack_records", f"beta_tcdlgm_L2_beta4.0_seed{seed}.json")))
    assert compact["latent_layers"] == "first"
    back = collect_reproduction.read_compact_records(out, f"beta_tcdlgm_L2_beta4.0_seed{seed}")
    assert {r["layers"] for r in back if r["mode"] == "latent"} == {"first"}
  old = rows["beta_tcdlgm_L2_beta4.0_seed0"]
  assert old["latent_layers"] == "all" and abs(old["latent_target_nll_median"] - 300.0) < 2.0
  assert all(r["latent_layers"] == "all" for name, r in rows.items() if name.startswith("seatbelt"))
  recorded = collect_reproduction.recorded_runs(summary, 11000, attacked=True)
  assert "beta_tcdlgm_L2_beta4.0_seed0" not in recorded and "beta_tcdlgm_L2_beta4.0_seed1" in recorded
  assert "seatbelt_L2_beta4.0_seed0" in recorded
  assert "beta_tcdlgm_L2_beta4.0_seed0" in collect_reproduction.recorded_runs(summary, 11000, attacked=False)
  tables = open(os.path.join(out, "tables.md")).read()
  assert "| β-TC DLGM, L = 2 | 4 | latent, z¹ (eq. 14) | 2 |" in tables
  assert ("| β-TC DLGM, L = 2 | 4 | latent, all layers (eq. 15); the paper's for this family: z¹ (eq. 14) | 1 |"
          in tables)
  assert "| Seatbelt-VAE, L = 2 | 4 | latent | 3 |" in tables


def test_compact_attack_records_round_trip_at_float32_precision():
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import collect_reproduction  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  records = [{"mode": mode, "layers": layers, "pair": p, "lambda": float(2.0 ** -k), "display": k == 1,
              "objective": float(rng.normal()), "target_nll": float(rng.gamma(5.0) * 100), "distortion_l2": 3.5,
              "evaluations": 7, "restarts": 1}
             for mode in ("latent", "output") for layers in ("all", 1) for p in range(2) for k in range(3)]
  back = collect_reproduction.expand_records(json.loads(json.dumps(collect_reproduction.compact_records(records))))
  kept = [r for r in records if r["layers"] == "all"]
  assert len(back) == len(kept) == 12
  for original, copy in zip(kept, back):
    assert set(copy) == set(collect_reproduction.RECORD_FIELDS) | {"mode", "layers"}
    for field in ("objective", "target_nll"):
      assert np.float32(copy[field]) == np.float32(original[field])
      assert copy[field] == pytest.approx(original[field], rel=1e-8)
    assert (copy["mode"], copy["pair"], copy["lambda"], copy["display"]) == (
        original["mode"], original["pair"], original["lambda"], original["display"])
  broken = collect_reproduction.compact_records(records)
  broken["latent"]["target_nll"].pop()
  with pytest.raises(ValueError, match="target_nll"):
    collect_reproduction.expand_records(broken)


def test_the_excess_over_the_floor_is_the_target_s_own_nll_else_each_pair_s_smallest_lambdas(tmp_path):
  """seatbelt_tf.scores.excess_over_floor against numpy: -log p(x^t|z~) less each pair's median own score where
  every record has it; else, for a latent attack, less each pair's median at its FLOOR_LAMBDAS smallest lambdas
  (records in any order); an output attack without the own score has none. The compact files keep the own score
  only where every record has it; a summary record from before the excess was kept gets it from its compact
  records, and the tables mark that floor approximate."""
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import collect_reproduction  # pylint: disable=import-outside-toplevel
  from seatbelt_tf import scores  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(4)
  lambdas = 2.0 ** np.linspace(-20, 20, 14)
  records = [{"mode": "latent", "layers": "all", "pair": p, "lambda": float(lam), "display": False,
              "objective": 1.0, "target_nll": float(40 * p + 30 + rng.gamma(2.0) * 10 * (k + 1)),
              "target_own_nll": float(40 * p + 25 + rng.normal()), "distortion_l2": 1.0}
             for p in range(3) for k, lam in enumerate(lambdas)]
  rng.shuffle(records)
  excess, source = scores.excess_over_floor(records)
  assert source == "own"
  own = {p: np.median([r["target_own_nll"] for r in records if r["pair"] == p]) for p in range(3)}
  np.testing.assert_allclose(excess, [r["target_nll"] - own[r["pair"]] for r in records], rtol=1e-12)
  older = [{k: v for k, v in r.items() if k != "target_own_nll"} for r in records]
  for part in (older, older[:5] + records[5:]):  # none, or not every record, has its own score
    excess, source = scores.excess_over_floor(part)
    assert source == "smallest_lambda"
    for r, e in zip(part, excess):
      same = sorted((q["lambda"], q["target_nll"]) for q in part if q["pair"] == r["pair"])
      assert e == pytest.approx(r["target_nll"] - np.median([v for _, v in same[:10]]), rel=1e-12)
  assert scores.excess_over_floor([]) == ([], None)
  assert scores.excess_over_floor([dict(r, mode="output") for r in older]) == ([], None)  # ends below the floor
  # An output attack without the own score reads each pair's floor from the same sweep's latent attack (its own
  # smallest lambdas, or its own scores), and gets none where that attack lacks one of its pairs.
  output = [dict(r, mode="output", target_nll=r["target_nll"] - 5.0) for r in older]
  excess, source = scores.excess_over_floor(output, older)
  assert source == "smallest_lambda"
  floors = {p: np.median([v for _, v in sorted((q["lambda"], q["target_nll"]) for q in older
                                               if q["pair"] == p)[:10]]) for p in range(3)}
  np.testing.assert_allclose(excess, [r["target_nll"] - floors[r["pair"]] for r in output], rtol=1e-12)
  assert scores.excess_over_floor(output, records) == scores.excess_over_floor(
      [dict(r, target_own_nll=own[r["pair"]]) for r in output])  # the latent attack's own scores
  assert scores.excess_over_floor(output, [r for r in older if r["pair"] != 2]) == ([], None)
  assert scores.excess_over_floor(output, []) == ([], None)
  budget = [{k: v for k, v in r.items() if k != "lambda"} for r in older]  # a fixed-budget attack: no lambdas
  assert scores.excess_over_floor(budget) == ([], None) and scores.excess_over_floor(output, budget) == ([], None)
  mixed = [dict(r, layers="first") for r in records] + older  # a sweep's latent attack on two layer sets
  assert scores.latent_reference(mixed + output) == older and scores.latent_reference(output) == []
  # Where each approximate floor was read, the latent objective bounds KL(q(z|x*) || q(z|x^t)): its largest value
  # at each pair's 10 smallest lambdas (records in any order).
  bounded = [dict(r, objective=float(rng.gamma(1.0) * r["lambda"])) for r in older]
  brute = max(max(o for _, o in sorted((q["lambda"], q["objective"]) for q in bounded if q["pair"] == p)[:10])
              for p in range(3))
  assert scores.floor_kl_bound(bounded) == brute
  assert brute < max(r["objective"] for r in bounded)  # the largest lambdas are left out
  assert scores.floor_kl_bound([]) is None and scores.floor_kl_bound([dict(r, mode="output") for r in older]) is None
  assert scores.excess_over_floor([dict(r, mode="output") for r in records])[1] == "own"
  for part, kept in ((records, True), (older[:5] + records[5:], False)):
    compact = json.loads(json.dumps(collect_reproduction.compact_records(part)))
    back = collect_reproduction.expand_records(compact)
    assert ("target_own_nll" in compact["latent"]) is kept and all(("target_own_nll" in r) is kept for r in back)
    if kept:
      np.testing.assert_allclose([r["target_own_nll"] for r in back], [r["target_own_nll"] for r in part], rtol=1e-8)
  compact = collect_reproduction.compact_records(records)
  compact["latent"]["target_own_nll"].pop()
  with pytest.raises(ValueError, match="target_own_nll"):
    collect_reproduction.expand_records(compact)
  # A summary from before the excess was kept, its workdirs gone: the excess comes from the compact records.
  root, out = tmp_path / "runs", tmp_path / "docs"
  _run(str(root), "vae", 1, 1, 0, 0.02, -40.0, target_nll=100.0, steps=11000)
  summary = str(out / "summary.json")
  subprocess.run([sys.executable, "launch/collect_reproduction.py", str(root), summary], cwd=REPO, check=True,
                 capture_output=True)
  row = json.load(open(summary))[0]
  old = {k: v for k, v in row.items() if "excess" not in k and "floor" not in k}
  json.dump([old], open(summary, "w"))
  shutil.rmtree(root / "vae_L1_beta1_seed0")
  subprocess.run([sys.executable, "launch/collect_reproduction.py", str(root), summary], cwd=REPO, check=True,
                 capture_output=True)
  again = json.load(open(summary))[0]
  records = collect_reproduction.read_compact_records(str(out), "vae_L1_beta1_seed0")
  part = [r for r in records if r["mode"] == "latent"]
  floors = {p: np.median([r["target_nll"] for r in part if r["pair"] == p]) for p in range(3)}  # 4 lambdas each
  assert again["latent_floor"] == "smallest_lambda"
  assert again["latent_excess_nll_median"] == pytest.approx(
      np.median([r["target_nll"] - floors[r["pair"]] for r in part]), rel=1e-9)
  assert again["latent_excess_nll_median"] != pytest.approx(row["latent_target_nll_median"], abs=10.0)
  output = [r for r in records if r["mode"] == "output"]  # its floors read from the latent attack's
  assert again["output_floor"] == "smallest_lambda"
  assert again["output_excess_nll_median"] == pytest.approx(
      np.median([r["target_nll"] - floors[r["pair"]] for r in output]), rel=1e-9)
  assert {k: v for k, v in again.items() if k in old} == old
  subprocess.run([sys.executable, "launch/reproduction_tables.py", str(out)], cwd=REPO, check=True,
                 capture_output=True)
  line = [x for x in open(out / "tables.md").read().splitlines() if x.startswith("| VAE | 1 | latent | 1 |")][0]
  assert line.split(" | ")[6].startswith("≈ ")
  line = [x for x in open(out / "tables.md").read().splitlines() if x.startswith("| VAE | 1 | output | 1 |")][0]
  assert line.split(" | ")[6].startswith("≈ ")
  text = open(out / "tables.md").read()
  assert "checked on the seeds whose sweeps record the target's own: the median excess both ways over those " \
         "seeds. No sweep records it yet." in text
  # _run's latent objective is 1 + pair everywhere: the attack never matched the target's posterior.
  assert "| VAE | 1 | latent | 3 | not matched: ≈ may sit above the floor |" in text


def test_history_reads_every_epoch_and_a_resumed_run_s_newest_value(tmp_path):
  from seatbelt_tf.evaluation import history  # pylint: disable=import-outside-toplevel
  workdir = str(tmp_path)
  assert history.read_epoch_history(workdir) == {}
  _event_file(workdir, {"kl_2": [1.0, 2.0, 3.0], "elbo": [-9.0, -8.0, -7.0], "learning_rate": [1e-3] * 3})
  time.sleep(1.1)  # event files are named by their creation second
  _event_file(workdir, {"kl_2": [30.0, 4.0]}, first_epoch=2)  # resumed in epoch 2, then epoch 3
  h = history.read_epoch_history(workdir)
  assert h["epoch"] == [0, 1, 2, 3] and "learning_rate" not in h
  np.testing.assert_allclose(h["kl_2"], [1.0, 2.0, 30.0, 4.0])
  np.testing.assert_allclose(h["elbo"][:3], [-9.0, -8.0, -7.0])
  assert h["elbo"][3] is None


def test_milestone_keeps_a_finished_evaluation_once_and_only_of_its_checkpoint(tmp_path):
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import milestone  # pylint: disable=import-outside-toplevel
  workdir = str(tmp_path / "run")
  for path in ("checkpoints", "evaluation", "attacks"):
    os.makedirs(os.path.join(workdir, path))

  def write(path, obj, age):
    full = os.path.join(workdir, path)
    with open(full, "w") as f:
      json.dump(obj, f)
    os.utime(full, (time.time() - age, time.time() - age))

  write("attacks/attack_results.json", [{"old": True}], 100)  # attacked at an earlier checkpoint
  write("checkpoints/checkpoint", {}, 50)
  write("results.json", {"step": 1800}, 40)
  assert milestone.archive(workdir, 3600) is None  # not evaluated at its checkpoint
  write("evaluation/evaluation.json", {"mig": 0.1}, 30)
  assert milestone.archive(workdir, 1800) is None  # already at the budget
  kept = milestone.archive(workdir, 3600)
  assert kept == os.path.join(workdir, "milestones", "step1800")
  assert sorted(os.listdir(kept)) == ["evaluation.json", "results.json"]  # not the older attacks
  assert milestone.archive(workdir, 3600) is None  # kept once
  assert milestone.milestones(workdir) == [(1800, {"evaluation.json": {"mig": 0.1}, "results.json": {"step": 1800}})]
  assert os.listdir(os.path.join(workdir, "milestones")) == ["step1800"]  # no temporary folder left


def test_paper_sh_leaves_a_run_whose_checkpoint_is_past_steps_alone(tmp_path):
  """A resumed budget probe asks for budgets a run has passed (phase 0 walks 3600, 7200, ... again): paper.sh must
  neither train nor evaluate such a run (an evaluation there would be of an off-budget checkpoint), and must still
  train and evaluate it once STEPS reaches its checkpoint. The launcher is replaced by a script that logs its
  arguments."""
  calls = tmp_path / "calls.log"
  fake = tmp_path / "python"
  fake.write_text(f'#!/usr/bin/env bash\necho "$*" >> {calls}\n')
  fake.chmod(0o755)
  root = tmp_path / "root"
  os.makedirs(root / "vae_L1_beta1" / "checkpoints")
  (root / "vae_L1_beta1" / "checkpoints" / "checkpoint").write_text(
      'model_checkpoint_path: "ckpt-500"\nall_model_checkpoint_paths: "ckpt-500"\n')
  env = dict(os.environ, ROOT=str(root), RUNS="vae:1:1", ATTACK="0", PYTHON=str(fake), NETWORK="mlp")

  def run(steps):
    calls.write_text("")
    out = subprocess.run(["bash", os.path.join(REPO, "launch", "paper.sh")], env=dict(env, STEPS=str(steps)),
                         capture_output=True, text=True, check=True).stdout
    return out, calls.read_text().splitlines()

  out, made = run(200)
  assert "checkpoint is at step 500, past STEPS=200" in out
  assert [c for c in made if "--mode=report" not in c] == []  # no train, no evaluate, no milestone
  out, made = run(500)
  assert "past STEPS" not in out
  assert any("--train_steps=500" in c for c in made)
  assert any("--mode=evaluate" in c for c in made)


def test_the_budget_probe_trains_a_cell_whose_workdir_is_gone_through_every_budget(tmp_path):
  """Phase 0 on a new machine: a cell the summary holds at the probe's first budget, whose workdir went with an
  earlier machine, must train again from step 0, so it is trained and evaluated at the first budget on the way to
  the next (its curve one training's, the earlier training's record at that budget among earlier_runs) instead of
  being skipped there and trained to the next budget in one go; a cell the summary holds at the probe's last
  budget is skipped at every budget."""
  calls = tmp_path / "calls.log"
  fake = tmp_path / "python"
  fake.write_text(f'#!/usr/bin/env bash\ncase "$1" in *collect_reproduction.py) if [ "$2" = --recorded ]; then '
                  f'exec {sys.executable} "$@"; fi; exit 0;; *reproduction_tables.py) exit 0;; esac\n'
                  f'echo "$*" >> {calls}\n')
  fake.chmod(0o755)
  summary = tmp_path / "docs" / "summary.json"
  os.makedirs(summary.parent)
  summary.write_text(json.dumps([{"run": "beta_tcdlgm_L2_beta1_seed0", "train_steps": 3600},
                                 {"run": "seatbelt_L2_beta1_seed0", "train_steps": 7200}]))
  proc = subprocess.run(["bash", os.path.join(REPO, "launch", "reproduce_dsprites.sh")], capture_output=True,
                        text=True, env=dict(os.environ, ROOT=str(tmp_path / "campaign"), PHASES="0", SEEDS="0",
                                            BAR_BETAS="1", PROBE_STEPS="3600 7200", PYTHON=str(fake),
                                            SUMMARY=str(summary), LAYER_MIG=""))
  assert proc.returncode == 0, proc.stderr[-2000:]
  made = calls.read_text().splitlines()
  trained = [(c.split("--workdir=")[1].split()[0].rsplit("/", 1)[1], c.split("--train_steps=")[1].split()[0])
             for c in made if "--train_steps=" in c]
  assert trained == [("beta_tcdlgm_L2_beta1_seed0", "3600"), ("beta_tcdlgm_L2_beta1_seed0", "7200")]
  assert len([c for c in made if "--mode=evaluate" in c]) == 2
  assert proc.stdout.count("== seatbelt_L2_beta1_seed0: already in the campaign's summary") == 2


def test_robust_runs_picks_phase_2_s_cells_in_its_order_with_the_full_attack_protocol(tmp_path):
  """ROBUST_RUNS replaces phase 2's cell list: reproduce_dsprites.sh trains, evaluates and attacks exactly those cells,
  in that order, at the recipe's settings and the full protocol (10 pairs x 50 lambdas, latent on all layers and
  output); without it, phase 2 is the vanilla VAE, the beta-TCVAE and both hierarchies at L = 2 and 4 for each of
  ROBUST_BETAS. A malformed entry anywhere in the list stops the campaign before any launcher call. Each hierarchy's
  every-layer MIG (launch/layer_mig.py) follows its attacks (the issue's numbers first), or its evaluation where it is
  not attacked, at the probe's last budget only in phase 0, and is not computed again once written. The summary is
  rewritten after every evaluation, after the attacks where the every-layer MIG follows, and after every cell.
  Python is replaced by a script that logs its arguments and hands every launcher call to tests/launch_dry_run.py,
  so each is also taken as the launcher takes it (flags, flagfiles, validation, the workdir's settings) and leaves
  the files a real run would."""
  calls = tmp_path / "calls.log"
  fake = tmp_path / "python"
  fake.write_text(f'#!/usr/bin/env bash\necho "$*" >> {calls}\n'
                  'if [ "$1" = -m ] && [ "$2" = seatbelt_tf.launch ]; then shift 2; '
                  f'exec {sys.executable} {os.path.join(REPO, "tests", "launch_dry_run.py")} "$@"; fi\n')
  fake.chmod(0o755)
  env = dict(os.environ, ROOT=str(tmp_path / "root"), PHASES="2", SEEDS="0", STEPS="11000", PYTHON=str(fake),
             SUMMARY=str(tmp_path / "docs" / "summary.json"), DRY_RUN_CALLS=str(tmp_path / "accepted.jsonl"))

  def trained(extra):
    calls.write_text("")
    subprocess.run(["bash", os.path.join(REPO, "launch", "reproduce_dsprites.sh")], env=dict(env, **extra),
                   capture_output=True, text=True, check=True)
    made = calls.read_text().splitlines()
    names = [c.split("--workdir=")[1].split()[0].rsplit("/", 1)[1] for c in made if "--train_steps=" in c]
    return names, made
  names, made = trained({"ROBUST_RUNS": "beta_tcdlgm:2:4 seatbelt:2:4 vae:1:1 beta_tcvae:1:4"})
  assert names == ["beta_tcdlgm_L2_beta4_seed0", "seatbelt_L2_beta4_seed0", "vae_L1_beta1_seed0",
                   "beta_tcvae_L1_beta4_seed0"]
  train = [c for c in made if "--train_steps=" in c]
  assert all("--train_steps=11000" in c and "--network=mlp" in c and "--batch_size=2048" in c for c in train)
  attacks = [c for c in made if "--mode=attack" in c]
  assert len(attacks) == 4 and all("--attack_pairs=10 --attack_lambdas=50 --attack_modes=latent,output" in c
                                   for c in attacks)
  # The paper's latent attack on a beta-TC DLGM is on z^1 alone (eq. 14), on every layer otherwise (eq. 15).
  assert ["--attack_layers=first,all" in c for c in attacks] == [True, False, False, False]
  assert all("--attack_layers=all" in c for c in attacks[1:])
  assert len([c for c in made if "--mode=evaluate" in c]) == 4
  # The summary is rewritten after every evaluation (a cell's J.2 numbers are recorded before its attacks and
  # every-layer MIG, which a session's end may cut off), after a hierarchy's attacks (recorded before its every-layer
  # MIG, a diagnostic), after every cell (a finished cell is recorded before the next starts), at the phase's end,
  # and after the report over every cell that ends the campaign.
  def event(c):
    return ("train" if "--train_steps=" in c else "evaluate" if "--mode=evaluate" in c else
            "attack" if "--mode=attack" in c else "layer_mig" if "layer_mig.py" in c else "summary")
  events = [event(c) for c in made if event(c) != "summary" or c.split()[0].endswith("collect_reproduction.py")]
  hierarchy = ["train", "evaluate", "summary", "attack", "summary", "layer_mig", "summary"]
  single = ["train", "evaluate", "summary", "attack", "summary"]
  assert events == hierarchy * 2 + single * 2 + ["summary", "summary"]
  assert f"--mode=report --workdir={tmp_path / 'root' / 'report'} --workdirs={tmp_path / 'root'}" in made[-3]
  # Each hierarchy, once evaluated, has every layer's MIG written beside the summary (full grid, exact protocol).
  layer_migs = [c for c in made if "layer_mig.py" in c]
  assert [c.split()[2] for c in layer_migs] == [str(tmp_path / "docs" / "layer_mig" / f"{n}_step11000.json")
                                                for n in names[:2]]
  assert all(c.split()[1].endswith(f"/root/{n}") and c.endswith("--points=0") for c, n in zip(layer_migs, names))
  assert [c.split()[0] for c in made if "--mode=evaluate" in c or "layer_mig.py" in c][:3] == [
      "-m", os.path.join(REPO, "launch", "layer_mig.py"), "-m"]  # after the run's own evaluation
  # A summary that cannot be written stops the campaign after the cell that failed to be recorded.
  broken = tmp_path / "broken_python"
  broken.write_text(f'#!/usr/bin/env bash\ncase "$1" in *collect_reproduction.py) exit 3;; esac\nexec {fake} "$@"\n')
  broken.chmod(0o755)
  calls.write_text("")
  stopped = subprocess.run(["bash", os.path.join(REPO, "launch", "reproduce_dsprites.sh")], capture_output=True,
                           text=True, env=dict(env, PYTHON=str(broken), ROOT=str(tmp_path / "broken"),
                                               ROBUST_RUNS="vae:1:1 beta_tcvae:1:4"))
  assert stopped.returncode != 0 and "failed: AFTER_CELL (summarise)" in stopped.stderr
  assert len([c for c in calls.read_text().splitlines() if "--train_steps=" in c]) == 1
  # The budget probe (phase 0) scores every layer at its last budget only, and never again once it has.
  calls.write_text("")
  (tmp_path / "docs" / "layer_mig" / "seatbelt_L2_beta4_seed0_step7200.json").write_text("{}")
  subprocess.run(["bash", os.path.join(REPO, "launch", "reproduce_dsprites.sh")], capture_output=True, text=True,
                 check=True, env=dict(env, PHASES="0", BAR_BETAS="4", PROBE_STEPS="3600 7200",
                                      ROOT=str(tmp_path / "probe")))
  made = calls.read_text().splitlines()
  assert [c.split()[2].rsplit("/", 1)[1] for c in made if "layer_mig.py" in c] == [
      "beta_tcdlgm_L2_beta4_seed0_step7200.json"]
  assert len([c for c in made if "--mode=evaluate" in c]) == 4
  calls.write_text("")  # a typo in the last entry is refused before the first cell starts
  bad = subprocess.run(["bash", os.path.join(REPO, "launch", "reproduce_dsprites.sh")],
                       env=dict(env, ROBUST_RUNS="vae:1:1 seatbelt:2"), capture_output=True, text=True)
  assert bad.returncode == 2 and "RUNS entry 'seatbelt:2' is not family:L:beta" in bad.stderr
  assert calls.read_text() == ""
  names, _ = trained({"ROBUST_BETAS": "8"})
  assert names == ["vae_L1_beta1_seed0", "beta_tcvae_L1_beta8_seed0", "beta_tcdlgm_L2_beta8_seed0",
                   "seatbelt_L2_beta8_seed0", "beta_tcdlgm_L4_beta8_seed0", "seatbelt_L4_beta8_seed0"]

def test_tables_say_each_cell_s_budget_when_the_cells_were_trained_for_different_budgets():
  """A probe trains some cells on further than others; J.2 and Figure 3 must then name each cell's budget (a run
  at 30 epochs beside one at 10 is not a β effect), and say nothing extra when every run shares one budget."""
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import reproduction_tables  # pylint: disable=import-outside-toplevel

  def row(model, beta, epochs):
    return ({"model": model, "layers": 2, "beta": beta, "seed": 0, "epochs": epochs, "mig_exact": 0.1,
             "mig_histogram": 0.2, "elbo": -50.0}, [])

  same = [row("beta_tcdlgm", 1.0, 10.13), row("beta_tcdlgm", 4.0, 10.14), row("seatbelt", 4.0, 10.1)]
  for section in (reproduction_tables.j2_section, reproduction_tables.figure3_section):
    text = "\n".join(section(same))
    assert " ep |" not in text and "different budgets" not in text
  mixed = same[:1] + [row("beta_tcdlgm", 4.0, 30.4)] + same[2:]
  j2 = "\n".join(reproduction_tables.j2_section(mixed))
  assert "different budgets** (10.1, 30.4 epochs" in j2
  assert "| β-TC DLGM, L = 2 | exact | 0.100 (n = 1) at 10.1 ep | 0.100 (n = 1) at 30.4 ep |" in j2
  assert "| β-TC DLGM, L = 2 | 4 | MIG >= 0.25 | 0.100 (n = 1) at 30.4 ep | pending (1 of 3 seeds) |" in j2
  figure3 = "\n".join(reproduction_tables.figure3_section(mixed))
  assert "different budgets" in figure3 and "-50.00 (n = 1) at 30.4 ep" in figure3


def test_the_j2_bar_waits_until_a_cell_s_three_seeds_share_one_budget():
  """Three seeds judge a J.2 cell only when they were trained for one budget: their mean over a 10-epoch seed and
  two 31-epoch ones is no verdict on either budget."""
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import reproduction_tables  # pylint: disable=import-outside-toplevel

  def runs(epochs):
    return [({"model": "seatbelt", "layers": 2, "beta": 4.0, "seed": seed, "epochs": e, "mig_exact": 0.3,
              "mig_histogram": 0.2, "elbo": -50.0}, []) for seed, e in enumerate(epochs)]

  def status(epochs):
    text = "\n".join(reproduction_tables.j2_section(runs(epochs)))
    return next(line for line in text.splitlines() if line.startswith("| Seatbelt-VAE, L = 2 | 4 | MIG >= 0.25"))

  assert status([31.0, 31.0, 30.98]).endswith("| met |")
  assert status([31.0, 31.0, 10.1]).endswith("| pending (seeds at different budgets: 10.1/31.0 ep) |")
  assert status([31.0, 31.0]).endswith("| pending (2 of 3 seeds) |")


def test_the_attack_verdict_waits_until_the_cell_and_the_vae_share_one_budget(tmp_path):
  """Section 5 judges a cell against the VAE over three seeds each, and only when all their attacked runs were
  trained for one budget; otherwise it says which budgets it found."""
  root, out = str(tmp_path / "runs"), str(tmp_path / "docs")
  for seed in range(3):
    _run(root, "vae", 1, 1.0, seed, 0.02, -75.0, target_nll=100.0, own_nll=20.0, steps=11000)
    _run(root, "seatbelt", 2, 4.0, seed, 0.1, -85.0, target_nll=500.0, own_nll=480.0,
         steps=3600 if seed == 2 else 11000)
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import collect_reproduction  # pylint: disable=import-outside-toplevel
  import reproduction_tables  # pylint: disable=import-outside-toplevel
  collect_reproduction.main(root, os.path.join(out, "summary.json"))
  lines, _, _ = reproduction_tables.robustness_section(reproduction_tables.load(out), np.random.default_rng(0))
  latent = [line for line in lines if line.startswith("| Seatbelt-VAE, L = 2 | 4 | latent | 3 |")]
  assert len(latent) == 1 and latent[0].endswith("| pending (runs at different budgets: 10.0/30.6 ep) |"), latent


def test_the_floor_check_takes_the_seeds_that_record_the_target_s_own_score(tmp_path):
  """A cell whose seed 0 was attacked before the target's own -log p(x^t|z~) was kept pools an approximate excess;
  its later seeds record the own score, and the floor check compares both floors on those seeds alone (the
  campaign's one-layer cells: seed 0 approximate, seeds 1 and 2 exact), never on a seed without it."""
  root, out = str(tmp_path / "runs"), str(tmp_path / "docs")
  for seed in range(3):
    _run(root, "vae", 1, 1.0, seed, 0.02, -75.0, target_nll=100.0, own_nll=None if seed == 0 else 20.0,
         steps=11000)
  _run(root, "beta_tcvae", 1, 4.0, 0, 0.2, -98.0, target_nll=130.0, steps=11000)  # no seed records it
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import collect_reproduction  # pylint: disable=import-outside-toplevel
  import reproduction_tables  # pylint: disable=import-outside-toplevel
  collect_reproduction.main(root, os.path.join(out, "summary.json"))
  cells = reproduction_tables.attack_cells(reproduction_tables.load(out))
  rows = [line for line in reproduction_tables.floor_check(cells)  # the check's rows (not floor_bounds')
          if line.startswith("| ") and not line.startswith("| model") and line.count("|") == 8]
  assert [row.split(" | ")[:4] for row in rows] == [["| VAE", "1", "latent", "1, 2"], ["| VAE", "1", "output", "1, 2"]]
  # Seeds 1 and 2 only: the exact excess is 100 - 20 = 80 (noise 0.5 each), the approximate ~0 (the latent attack's
  # 4 lambdas all read as the floor), as numpy gives on those seeds' records.
  records = [r for seed in cells[("vae", 1, 1.0)]["latent"][1:] for pair in seed for r in pair]
  exact, approx = np.median([r["excess"] for r in records]), np.median([r["approximate"] for r in records])
  assert abs(exact - 80.0) < 2.0 and abs(approx) < 1.0
  assert rows[0].endswith(f"| {exact:.4g} | {approx:.4g} | {approx - exact:+.3g} |")


def test_figure3_pairs_a_cell_with_beta_1_at_the_same_budget_only():
  """Figure 3's change from β = 1 subtracts the same seed's β = 1 ELBO at the same budget (its latest evaluation or
  a milestone), never one of another budget: β = 4 at 31 epochs against β = 1 at 10 would read training as a β
  effect. Without a same-budget β = 1 the cell says which budgets β = 1 has."""
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import reproduction_tables  # pylint: disable=import-outside-toplevel

  def row(model, beta, seed, epochs, elbo, milestones=()):
    return ({"model": model, "layers": 2, "beta": beta, "seed": seed, "epochs": epochs, "elbo": elbo,
             "mig_exact": 0.1, "mig_histogram": 0.2,
             "milestones": [{"epochs": e, "elbo": v, "train_steps": int(e * 100)} for e, v in milestones]}, [])

  def change(runs, model_label, beta):
    text = "\n".join(reproduction_tables.figure3_section(runs))
    line = next(line for line in text.splitlines() if line.startswith(f"| {model_label} | {beta} |"))
    return line.rsplit("|", 2)[-2].strip()

  # β = 1 at 10.1 epochs only; β = 8 at 10.1 pairs with it, β = 4 at 31.0 does not.
  runs = [row("beta_tcdlgm", 1.0, 0, 10.14, -73.5), row("beta_tcdlgm", 4.0, 0, 31.0, -50.0),
          row("beta_tcdlgm", 8.0, 0, 10.13, -83.5)]
  assert change(runs, "β-TC DLGM, L = 2", 8) == "-10.00 (n = 1)"
  assert change(runs, "β-TC DLGM, L = 2", 4) == "— (β = 1 evaluated at 10.1 ep only)"
  # β = 1 trained on to 31 epochs, its 10-epoch evaluation kept as a milestone: both cells pair at their own budget.
  runs[0] = row("beta_tcdlgm", 1.0, 0, 31.0, -45.0, milestones=[(10.14, -73.5)])
  assert change(runs, "β-TC DLGM, L = 2", 8) == "-10.00 (n = 1)"
  assert change(runs, "β-TC DLGM, L = 2", 4) == "-5.00 (n = 1)"
  # Seeds pair with their own seed's β = 1 only; a seed with no β = 1 run at all is left out of the change.
  runs += [row("beta_tcdlgm", 4.0, 1, 31.0, -52.0), row("beta_tcdlgm", 1.0, 1, 31.0, -46.0),
           row("beta_tcdlgm", 4.0, 2, 31.0, -60.0)]
  assert change(runs, "β-TC DLGM, L = 2", 4) == "-5.50 ± 0.71 (n = 2)"


def test_figure3_takes_the_vanilla_vae_as_the_beta_tcvae_s_beta_1():
  """The vanilla VAE's loss is the β-TCVAE's at β = 1 (analytic KL, TC weighted by β - 1), so Figure 3's β-TCVAE
  line starts at the VAE's runs, named as such, and its β = 4 change pairs with the same seed's VAE; a VAE trained
  with free bits is another loss and stays out, and the hierarchies never take the VAE."""
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import reproduction_tables  # pylint: disable=import-outside-toplevel

  def row(model, layers, beta, seed, elbo, free_bits=0.0):
    return ({"model": model, "layers": layers, "beta": beta, "seed": seed, "epochs": 31.0, "elbo": elbo,
             "free_bits": free_bits, "mig_exact": 0.1, "mig_histogram": 0.2, "milestones": []}, [])

  def lines(runs):
    return [line for line in reproduction_tables.figure3_section(runs) if line.startswith("| ") and "---" not in line]

  runs = [row("vae", 1, 1.0, 0, -54.0), row("vae", 1, 1.0, 1, -56.0), row("beta_tcvae", 1, 4.0, 0, -98.0),
          row("beta_tcvae", 1, 4.0, 1, -96.0), row("seatbelt", 2, 4.0, 0, -48.0)]
  table = lines(runs)
  assert "| β-TCVAE (the vanilla VAE) | 1 | -55.00 ± 1.41 (n = 2) | 0 |" in table
  assert "| β-TCVAE | 4 | -97.00 ± 1.41 (n = 2) | -42.00 ± 2.83 (n = 2) |" in table
  assert not any(line.startswith("| Seatbelt-VAE, L = 2 | 1 |") for line in table)
  assert "| Seatbelt-VAE, L = 2 | 4 | -48.00 (n = 1) | — |" in table
  with_free_bits = [row("vae", 1, 1.0, 0, -54.0, free_bits=0.05), row("beta_tcvae", 1, 4.0, 0, -98.0)]
  assert lines(with_free_bits) == ["| model | β | ELBO | change from β = 1 |",
                                   "| β-TCVAE | 4 | -98.00 (n = 1) | — |"]


def test_tables_show_every_layer_s_mig_once_the_campaign_scored_it(tmp_path):
  """tables.md's "where the factors went" section: absent while layer_mig/ holds no file, then one row per run
  and layer, in layer order, with each factor's gap, best unit and that unit's MI."""
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import reproduction_tables  # pylint: disable=import-outside-toplevel
  assert reproduction_tables.layer_mig_section(str(tmp_path)) == []
  os.makedirs(tmp_path / "layer_mig")
  assert reproduction_tables.layer_mig_section(str(tmp_path)) == []
  layers = {f"layer_{i}": {"mig": mig, "per_factor": {"shape": gap, "posX": 0.5 * gap},
                           "best_unit": {"shape": 1, "posX": 0},
                           "mutual_info_nats": [[0.9, 0.1 * i], [0.2, 0.8]]}
            for i, mig, gap in ((10, 0.3, 0.25), (2, 0.05, 0.04), (1, 0.1, 0.12))}
  with open(tmp_path / "layer_mig" / "seatbelt_L2_beta4_seed0_step11000.json", "w") as f:
    json.dump({"run": "seatbelt_L2_beta4_seed0", "epochs": 31.03, "factor_names": ["shape", "posX"],
               "factor_entropy": {"posX": 2.0, "shape": 1.5}, "layers": layers}, f)
  lines = reproduction_tables.layer_mig_section(str(tmp_path))
  assert lines[0] == "## Where the factors went: MIG of every layer"
  rows = [line for line in "\n".join(lines).splitlines() if line.startswith("| seatbelt_L2_beta4_seed0 |")]
  # The ceiling: the mean over factors of the best unit's MI over the factor's entropy, e.g. z1: (0.9 / 1.5 +
  # 0.8 / 2.0) / 2 = 0.5; z10's posX is best held by unit 0 (1.0 nats): (0.6 + 0.5) / 2 = 0.55.
  assert rows == ["| seatbelt_L2_beta4_seed0 | 31.0 | z1 | 0.100 | 0.500 | 0.120 (u1, 0.20) | 0.060 (u0, 0.10) |",
                  "| seatbelt_L2_beta4_seed0 | 31.0 | z2 | 0.050 | 0.500 | 0.040 (u1, 0.20) | 0.020 (u0, 0.20) |",
                  "| seatbelt_L2_beta4_seed0 | 31.0 | z10 | 0.300 | 0.550 | 0.250 (u1, 0.20) | 0.125 (u0, 1.00) |"]


def test_the_mig_ceiling_bounds_mig_and_is_reached_when_each_factor_s_second_unit_holds_nothing():
  """layer_mig.mig_ceiling: the mean over varying factors of max_j I(z_j; v_k) / H(v_k), against a brute-force
  loop; never under MIG (eq. J.1) of the same table, and equal to it when every factor's second-best unit holds
  nothing; a factor that does not vary is left out, as MIG leaves it out; mismatched shapes are refused."""
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import layer_mig  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(3)
  entropy = np.array([1.1, 1.8, 3.7, 3.5, 3.5])
  for _ in range(20):
    info = rng.uniform(0.0, 1.0, (6, 5)) * entropy
    brute = sum(max(info[j, k] for j in range(6)) / entropy[k] for k in range(5)) / 5
    ordered = np.sort(info, axis=0)
    mig = float(np.mean((ordered[-1] - ordered[-2]) / entropy))
    ceiling = layer_mig.mig_ceiling(info.tolist(), entropy.tolist())
    assert ceiling == pytest.approx(brute, rel=1e-12) and ceiling >= mig
  aligned = np.zeros((6, 5))
  aligned[[0, 1, 2, 3, 4], [0, 1, 2, 3, 4]] = [0.5, 1.0, 2.0, 0.7, 3.5]
  ordered = np.sort(aligned, axis=0)
  assert layer_mig.mig_ceiling(aligned, entropy) == pytest.approx(  # = MIG: the second units hold nothing
      np.mean((ordered[-1] - ordered[-2]) / entropy), rel=1e-12)
  assert layer_mig.mig_ceiling([[0.5, 9.0], [0.1, 3.0]], [1.0, 0.0]) == pytest.approx(0.5)
  with pytest.raises(ValueError, match="2 factor entropies for a mutual-information table of 3 factors"):
    layer_mig.mig_ceiling(np.ones((4, 3)), [1.0, 2.0])
  with pytest.raises(ValueError, match="No factor varies"):
    layer_mig.mig_ceiling(np.ones((4, 2)), [0.0, 0.0])


def test_layer_mig_scores_every_layer_of_a_kept_checkpoint_and_writes_nothing_in_the_workdir(tmp_path):
  """launch/layer_mig.py on a tiny trained Seatbelt-VAE (checkpoints at steps 3 and 6): at the latest checkpoint
  its every-layer MIG equals `metrics.compute_mig` on the live trained model with the same settings; at step 3 it
  restores that checkpoint (other numbers, step recorded); the workdir is left byte for byte as it was; a step the
  workdir does not keep is refused with the steps it keeps; the markdown table has a row per run and layer."""
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import layer_mig  # pylint: disable=import-outside-toplevel
  from conftest import tiny_config  # pylint: disable=import-outside-toplevel
  from seatbelt_tf import attacks, metrics, runs  # pylint: disable=import-outside-toplevel
  from seatbelt_tf.modes import train as train_mode  # pylint: disable=import-outside-toplevel
  workdir = str(tmp_path / "seatbelt_L2")
  config = tiny_config(workdir, model="seatbelt", layers=2, z_sizes="6,3", h_sizes="8", train_steps=6, mig_samples=300,
                       steps_per_epoch=3, keep_checkpoints=3)
  train_mode.train(config)

  def snapshot():
    return {os.path.relpath(os.path.join(d, n), workdir): open(os.path.join(d, n), "rb").read()
            for d, _, names in os.walk(workdir) for n in names}
  before = snapshot()
  latest = layer_mig.layer_mig(workdir, None, "exact", points=96, verbose=False)
  early = layer_mig.layer_mig(workdir, 3, "exact", points=96, verbose=False)
  assert snapshot() == before

  config, source, model = runs.open_trained_run(config)
  live = metrics.compute_mig(attacks.ModelFns(model).encode_fn, source, method="exact", num_points=96,
                             num_samples=config.evaluation.mig_samples, layers="all", seed=config.train.seed,
                             batch_size=config.train.eval_batch_size)
  assert latest["step"] == 6 and early["step"] == 3 and sorted(latest["layers"]) == ["layer_1", "layer_2"]
  for name, layer in latest["layers"].items():
    np.testing.assert_allclose(layer["mutual_info_nats"], live["layers"][name]["mutual_info"], rtol=1e-5, atol=1e-7)
    assert layer["mig"] == pytest.approx(live["layers"][name]["mig"], rel=1e-5, abs=1e-7)
  assert np.array(latest["layers"]["layer_1"]["mutual_info_nats"]).shape == (6, 5)
  assert np.array(latest["layers"]["layer_2"]["mutual_info_nats"]).shape == (3, 5)
  assert not np.allclose(early["layers"]["layer_1"]["mutual_info_nats"], latest["layers"]["layer_1"]["mutual_info_nats"])

  with pytest.raises(ValueError, match="keeps no checkpoint of step 4; it keeps steps 3, 6"):
    layer_mig.main([workdir, str(tmp_path / "x.json"), "--step", "4"])
  out = tmp_path / "layer_mig"
  layer_mig.main([workdir, str(out / "seatbelt_L2.json"), "--step", "3", "--points", "96"])
  assert json.load(open(out / "seatbelt_L2.json"))["layers"] == json.loads(json.dumps(early["layers"]))
  table = layer_mig.markdown(str(out)).splitlines()
  assert len(table) == 4 and table[2].startswith("| seatbelt_L2 | ") and "| z2 |" in table[3]


def test_campaign_status_tells_each_run_s_stage_and_training_left_without_tensorflow(tmp_path):
  """launch/campaign_status.py: the checkpoint against the budget, the epoch pace from the training log (median of
  the last 3, fastest of the last 10), the training left at both, evaluation and attacks done / stale (older than
  the checkpoint) / absent, and the summary's record (a run it holds without a workdir is listed too); TensorFlow is
  never imported."""
  root = tmp_path / "runs"
  for name, step in (("seatbelt_L2_beta4_seed0", 400), ("vae_L1_beta1_seed0", 1000)):
    os.makedirs(root / name / "checkpoints")
    (root / name / "config.json").write_text("{}")
    (root / name / "flags.cfg").write_text("--train_steps=600\n--steps_per_epoch=200\n--train_steps=1000\n")
    for sub, stamp in (("evaluation/evaluation.json", 1000.0), ("attacks/attack_results.json", 3000.0)):
      if name.startswith("vae") or sub.startswith("evaluation"):
        os.makedirs(os.path.dirname(root / name / sub), exist_ok=True)
        (root / name / sub).write_text("{}" if sub.startswith("evaluation") else json.dumps(
            [{"mode": "output", "layers": "all", "objective_draws": 4,
              "driver_version": config.ATTACK_DRIVER_VERSION}]))
        os.utime(root / name / sub, (stamp, stamp))
    (root / name / "checkpoints" / "checkpoint").write_text(f'model_checkpoint_path: "ckpt-{step}"\n')
    os.utime(root / name / "checkpoints" / "checkpoint", (2000.0, 2000.0))
  os.makedirs(root / "logs")
  epochs = "".join(f"Epoch {i + 1}/5\n200/200 - {s}s - 3s/step - loss: 1.0\n"
                   for i, s in enumerate((100, 300, 200, 250)))
  from seatbelt_tf import health  # pylint: disable=import-outside-toplevel
  spike = lambda step, quantity, ratio: "/x/train.py:121: RuntimeWarning: " + health.spike_message(  # noqa: E731
      {"step": step, "quantity": quantity, "value": 12345.6, "median": 95.1, "ratio": ratio}) + "\n"
  (root / "logs" / "seatbelt_L2_beta4_seed0.train.log").write_text(
      "== 2026-12-06 00:32:25 UTC: train\nResuming\n" + spike(44, "kl_1", 612.0) + epochs
      + spike(244, "grad_norm_q_z2_given_z1", 103.4) + "Epoch 5/5\n 17/200 - 9s")
  summary = tmp_path / "summary.json"
  summary.write_text(json.dumps([
      {"run": "vae_L1_beta1_seed0", "model": "vae", "train_steps": 1000, "latent_delta_median": 1.0,
       "output_delta_median": 2.0, "latent_layers": "all", "output_objective_draws": 4,
       "attack_driver": config.ATTACK_DRIVER_VERSION},
      {"run": "beta_tcdlgm_L2_beta4_seed0", "model": "beta_tcdlgm", "train_steps": 11000, "latent_delta_median": 1.0,
       "output_delta_median": 2.0, "latent_layers": "all"}]))
  script = ("import sys; sys.path.insert(0, 'launch'); import campaign_status\n"
            f"campaign_status.main([{str(root)!r}, {str(summary)!r}])\n"
            "assert 'tensorflow' not in sys.modules, 'imported TensorFlow'\n")
  proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr[-2000:]
  rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in proc.stdout.splitlines()
          if line.startswith("| ") and not line.startswith("| run ")}
  assert rows["seatbelt_L2_beta4_seed0"][:6] == ["—", "400 / 1000", "250 (100)", "0.2 h (0.1 h)", "stale", "—"]
  assert rows["seatbelt_L2_beta4_seed0"][7] == "2 (step 244: grad_norm_q_z2_given_z1 at 103× its running median) |"
  assert rows["vae_L1_beta1_seed0"][:6] == ["1000 steps, attacked", "1000 / 1000", "—", "—", "stale", "done"]
  assert rows["vae_L1_beta1_seed0"][7] == "— |"  # no training log
  assert rows["beta_tcdlgm_L2_beta4_seed0"][:2] == [  # a row from before the draws were kept: one draw
      "11000 steps, attacked, not the paper's latent attack, output objective on 1 noise draw(s) (the protocol's: 4), "
      f"by attack driver 1 (current: {config.ATTACK_DRIVER_VERSION}; attacked again)",
      "no workdir: the summary's record only"]
  # A sweep whose output objective used one draw is out of date, however new (launch/paper.sh attacks it again).
  (root / "vae_L1_beta1_seed0" / "attacks" / "attack_results.json").write_text(
      json.dumps([{"mode": "output", "layers": "all"}]))
  os.utime(root / "vae_L1_beta1_seed0" / "attacks" / "attack_results.json", (3000.0, 3000.0))
  proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
  assert "| out of date: output objective on 1 noise draw(s), the protocol's 4 |" in proc.stdout
  assert "training left in the runs that have a workdir: 0.2 h at their recent pace (0.1 h at their fastest)" \
      in proc.stdout
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import campaign_status  # pylint: disable=import-outside-toplevel
  status = {s["run"]: s for s in campaign_status.status(str(root), str(summary))}
  seatbelt = status["seatbelt_L2_beta4_seed0"]
  assert seatbelt["left_s"] == 750.0 and seatbelt["fastest_left_s"] == 300.0


def test_the_campaign_s_file_only_scripts_load_without_tensorflow():
  """The summary, the tables, the robustness table and the status read files alone: importing them loads neither
  TensorFlow nor (but for the figures' matplotlib) anything heavy, so they run in a second or two beside the
  campaign (seatbelt_tf.evaluation imports its TensorFlow modules on first use)."""
  script = ("import sys; sys.path.insert(0, 'launch')\n"
            "import collect_reproduction, reproduction_tables, collect_attacks, campaign_status\n"
            "from seatbelt_tf.evaluation import seeds\n"
            "assert 'tensorflow' not in sys.modules, 'imported TensorFlow'\n"
            "from seatbelt_tf import evaluation\n"
            "assert callable(evaluation.write_report) and 'tensorflow' in sys.modules\n")
  proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True)
  assert proc.returncode == 0, proc.stderr[-2000:]


def test_a_summary_that_is_not_json_stops_every_campaign_script_with_one_line_naming_it(tmp_path):
  """summary.json cut short (a full disk, a bad merge): the campaign, its summary's reader, the tables and the status
  each say which file and how to restore it, in one line and no traceback; the campaign stops before any launcher
  call, and the file is left as it was for the user to restore."""
  summary = tmp_path / "docs" / "summary.json"
  os.makedirs(summary.parent)
  summary.write_text('[{"run": "vae_L1_beta1_seed0", "train_st')
  root = tmp_path / "runs"
  os.makedirs(root)
  calls = tmp_path / "calls.log"
  fake = tmp_path / "python"  # real Python for the campaign's own scripts; launcher calls only logged
  fake.write_text(f'#!/usr/bin/env bash\nif [ "$1" = -m ]; then echo "$*" >> {calls}; exit 0; fi\n'
                  f'exec {sys.executable} "$@"\n')
  fake.chmod(0o755)
  launch_dir = os.path.join(REPO, "launch")
  runs = {
      "campaign": ["bash", os.path.join(launch_dir, "reproduce_dsprites.sh")],
      "recorded": [sys.executable, os.path.join(launch_dir, "collect_reproduction.py"), "--recorded", str(summary),
                   "11000", "1"],
      "collect": [sys.executable, os.path.join(launch_dir, "collect_reproduction.py"), str(root), str(summary)],
      "tables": [sys.executable, os.path.join(launch_dir, "reproduction_tables.py"), str(summary.parent)],
      "status": [sys.executable, os.path.join(launch_dir, "campaign_status.py"), str(root), str(summary)],
  }
  env = dict(os.environ, PHASES="2", SEEDS="0", ROBUST_RUNS="vae:1:1", ROOT=str(root), PYTHON=str(fake),
             SUMMARY=str(summary))
  for name, command in runs.items():
    proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0, name
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"{summary} cannot be read as JSON" in errors[0], (name, proc.stderr[-1500:])
    assert f"git checkout -- {summary}" in errors[0] and "Traceback" not in proc.stderr, name
  assert not calls.exists()
  assert summary.read_text() == '[{"run": "vae_L1_beta1_seed0", "train_st'


def _table(stdout):
  """Rows of a printed markdown table as lists of cells (header and rule dropped)."""
  lines = [line for line in stdout.splitlines() if line.startswith("|")][2:]
  return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines]


def test_elbo_vs_beta_table_gives_each_cell_s_seed_spread_and_change_against_the_same_seeds_beta_1(tmp_path):
  """launch/collect_results.py (elbo_vs_beta.sh's and health_remeasure.sh's table) against numpy on fabricated
  workdirs: mean ± sample sd (range) over seeds, the change of the mean ELBO against the beta = 1 runs of the same
  seeds only (a seed without its beta = 1 run is left out of both means), per-layer KL means, steps and free bits."""
  rng = np.random.default_rng(3)
  elbos = {}
  for model, layers in (("beta_tcvae", 1), ("seatbelt", 2)):
    for beta, seeds in ((1.0, (0, 1, 2)), (6.0, (0, 1, 3))):
      for seed in seeds:
        workdir = tmp_path / f"{model}_L{layers}_beta{beta:g}_seed{seed}"
        os.makedirs(workdir)
        elbo = float(-100 - 10 * beta - rng.uniform(0, 5))
        elbos[(model, beta, seed)] = elbo
        (workdir / "config.json").write_text(json.dumps({"model": model, "layers": layers, "beta": beta,
                                                         "seed": seed, "free_bits": 0.0}))
        results = {"elbo": elbo, "reconstruction": elbo + 20, "kl": 20.0 + seed, "step": 3000, "kl_units": [1.0]}
        results.update({f"kl_{i + 1}": 5.0 * (i + 1) + seed for i in range(layers)} if layers > 1 else {})
        (workdir / "results.json").write_text(json.dumps(results))
  os.makedirs(tmp_path / "unfinished")  # no results.json: not a run
  proc = subprocess.run([sys.executable, os.path.join(REPO, "launch", "collect_results.py"), str(tmp_path)],
                        capture_output=True, text=True, check=True)
  rows = {(r[0], int(r[1]), float(r[2])): r for r in _table(proc.stdout)}
  assert sorted(rows) == [("beta_tcvae", 1, 1.0), ("beta_tcvae", 1, 6.0), ("seatbelt", 2, 1.0), ("seatbelt", 2, 6.0)]
  for (model, layers, beta), row in rows.items():
    seeds = (0, 1, 2) if beta == 1.0 else (0, 1, 3)
    values = np.array([elbos[(model, beta, s)] for s in seeds])
    assert row[3] == "[0.0]" and row[4] == ",".join(map(str, seeds)) and row[5] == "3000"
    assert row[6] == f"{values.mean():.2f} ± {values.std(ddof=1):.2f} ({values.min():.1f}..{values.max():.1f})"
    paired = [s for s in seeds if s in (0, 1, 2)]
    mean = np.mean([elbos[(model, beta, s)] for s in paired])
    reference = np.mean([elbos[(model, 1.0, s)] for s in paired])
    assert row[7] == f"{100 * (mean - reference) / abs(reference):+.1f}%"
    expected_kl = [np.mean([5.0 * (i + 1) + s for s in seeds]) for i in range(layers)] if layers > 1 else \
        [np.mean([20.0 + s for s in seeds])]
    assert row[10] == ", ".join(f"{k:.2f}" for k in expected_kl)
  assert rows[("seatbelt", 2, 1.0)][7] == "+0.0%"


def test_robustness_table_gives_pooled_and_displayed_medians_with_an_interval_and_each_seed_s_median(tmp_path):
  """launch/collect_attacks.py (robustness.sh's table) against numpy on fabricated sweeps: the median over every
  pair x lambda of every seed, the median over the displayed lambda of each pair, each seed's own median, the
  problem count, and a 95% interval around the pooled median that is a point when every record is equal; the
  median excess over the floor, pooled and per seed, by the target's own score where the records keep it (the
  VAE's), else by each pair's median at the latent attack's smallest lambdas ("≈"), which the output attack reads
  its floors from; and the same table from the saved files (launch/save_remeasure.sh's
  `<run>.attack_results.json`)."""
  rng = np.random.default_rng(5)
  sweeps = {}
  for model, beta, nll_scale in (("vae", 1.0, 10.0), ("beta_tcvae", 6.0, 0.0)):
    for seed in (0, 1):
      workdir = tmp_path / f"{model}_beta{beta:g}_seed{seed}"
      os.makedirs(workdir / "attacks")
      (workdir / "config.json").write_text(json.dumps({"model": model, "layers": 1, "beta": beta, "seed": seed}))
      records = []
      for mode in ("latent", "output"):
        for pair in range(3):
          for k, lam in enumerate((0.25, 1.0, 4.0, 16.0)):
            nll = 50.0 + nll_scale * rng.standard_normal()
            records.append({"mode": mode, "layers": "all", "pair": pair, "lambda": lam, "display": k == 1,
                            "objective": nll / 10 + lam, "target_nll": nll})
            if model == "vae":  # a sweep that keeps each target's own score
              records[-1]["target_own_nll"] = 40.0 + pair + rng.standard_normal()
      (workdir / "attacks" / "attack_results.json").write_text(json.dumps(records))
      sweeps[(model, seed)] = records
  proc = subprocess.run([sys.executable, os.path.join(REPO, "launch", "collect_attacks.py"), str(tmp_path)],
                        capture_output=True, text=True, check=True)
  rows = {(r[0], r[3]): r for r in _table(proc.stdout)}
  saved = tmp_path / "saved"
  os.makedirs(saved)
  for (model, seed), records in sweeps.items():
    name = f"{model}_beta{1 if model == 'vae' else 6}_seed{seed}"
    shutil.copy(tmp_path / name / "config.json", saved / f"{name}.config.json")
    (saved / f"{name}.attack_results.json").write_text(json.dumps(records))
  again = subprocess.run([sys.executable, os.path.join(REPO, "launch", "collect_attacks.py"), str(saved)],
                         capture_output=True, text=True, check=True)
  assert again.stdout == proc.stdout
  assert sorted(rows) == [("beta_tcvae", "latent (all)"), ("beta_tcvae", "output (all)"), ("vae", "latent (all)"),
                          ("vae", "output (all)")]
  for (model, attack), row in rows.items():
    mode = attack.split()[0]
    parts = [[r for r in sweeps[(model, seed)] if r["mode"] == mode] for seed in (0, 1)]
    every = [r for part in parts for r in part]
    shown = [r for r in every if r["display"]]
    assert row[4] == "0,1" and row[5] == str(len(every)) == "24"
    for column, records, key in ((6, every, "objective"), (7, every, "target_nll")):
      median = np.median([r[key] for r in records])
      assert row[column].startswith(f"{median:.4g} [")
      low, high = (float(v) for v in row[column].split("[")[1].rstrip("]").split(", "))
      assert low <= float(f"{median:.4g}") <= high
    assert row[8] == f"{np.median([r['objective'] for r in shown]):.4g}"
    assert row[9] == f"{np.median([r['target_nll'] for r in shown]):.4g}"
    assert row[10] == ", ".join(f"{np.median([r['target_nll'] for r in part]):.1f}" for part in parts)
    excess = []
    for part, seed in zip(parts, (0, 1)):  # each pair's floor: its median own score, else the latent attack's
      # median at its 10 smallest lambdas (all 4 here), which an output attack reads its floors from
      latent = [r for r in sweeps[(model, seed)] if r["mode"] == "latent"]
      floors = {p: np.median([r["target_own_nll"] if model == "vae" else r["target_nll"]
                              for r in (part if model == "vae" else latent) if r["pair"] == p]) for p in range(3)}
      excess.append([r["target_nll"] - floors[r["pair"]] for r in part])
    mark = "" if model == "vae" else "≈ "
    median = np.median(np.concatenate(excess))
    assert row[11].startswith(f"{mark}{median:.4g} [")
    low, high = (float(v) for v in row[11].split("[")[1].rstrip("]").split(", "))
    assert low <= float(f"{median:.4g}") <= high
    assert row[12] == mark + ", ".join(f"{np.median(e):.1f}" for e in excess)
  assert rows[("beta_tcvae", "latent (all)")][7] == "50 [50, 50]"  # every record equal: the interval is a point
  assert rows[("beta_tcvae", "latent (all)")][11] == "≈ 0 [0, 0]"
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import collect_attacks  # pylint: disable=import-outside-toplevel
  output = [r for r in sweeps[("beta_tcvae", 0)] if r["mode"] == "output"]  # no own score, no latent attack
  assert collect_attacks.excess_columns([(0, output, [])], np.random.default_rng(0)) == ("—", "—", None)
  # With FIGURE: the excess against lambda of every cell that has one.
  figure = tmp_path / "curves.png"
  subprocess.run([sys.executable, os.path.join(REPO, "launch", "collect_attacks.py"), str(saved), str(figure)],
                 capture_output=True, text=True, check=True)
  assert figure.stat().st_size > 10_000


def test_save_remeasure_copies_each_run_s_results_and_never_leaves_a_truncated_table(tmp_path):
  """launch/save_remeasure.sh: results.json and config.json of every finished run (and its attack records, where it
  has them) copied into OUT beside the two tables; run again over a folder with no finished run, it fails and the
  tables already in OUT are left whole (written beside and renamed, never truncated)."""
  root, out = tmp_path / "runs", tmp_path / "out"
  for name, attacked in (("vae_L1_beta1_seed0", True), ("seatbelt_L2_beta6_seed0", False)):
    os.makedirs(root / name / "attacks")
    (root / name / "config.json").write_text(json.dumps({"model": name.split("_L")[0], "layers": int(name[-13]),
                                                         "beta": float(name.split("beta")[1][0]), "seed": 0,
                                                         "free_bits": 0.0}))
    (root / name / "results.json").write_text(json.dumps({"elbo": -90.0, "reconstruction": -80.0, "kl": 10.0,
                                                          "step": 3000}))
    if attacked:
      records = [{"mode": "latent", "layers": "all", "pair": 0, "lambda": 1.0, "display": True, "objective": 2.0,
                  "target_nll": 40.0}]
      (root / name / "attacks" / "attack_results.json").write_text(json.dumps(records))
  env = dict(os.environ, ROOT=str(root), OUT=str(out), PYTHON=sys.executable)
  script = os.path.join(REPO, "launch", "save_remeasure.sh")
  subprocess.run(["bash", script], env=env, capture_output=True, text=True, check=True)
  assert sorted(os.listdir(out)) == sorted([
      "elbo_vs_beta.md", "robustness.md", "vae_L1_beta1_seed0.results.json", "vae_L1_beta1_seed0.config.json",
      "vae_L1_beta1_seed0.attack_results.json", "seatbelt_L2_beta6_seed0.results.json",
      "seatbelt_L2_beta6_seed0.config.json"])
  tables = {name: (out / name).read_text() for name in ("elbo_vs_beta.md", "robustness.md")}
  assert "| seatbelt | 2 | 6 |" in tables["elbo_vs_beta.md"] and "| vae | 1 | 1 | latent (all) |" in \
      tables["robustness.md"]
  shutil.rmtree(root)
  os.makedirs(root)
  failed = subprocess.run(["bash", script], env=env, capture_output=True, text=True)
  assert failed.returncode != 0 and "No finished runs" in failed.stderr
  assert {name: (out / name).read_text() for name in tables} == tables
  assert not [name for name in os.listdir(out) if name.endswith(".tmp")]


def test_learning_curves_plot_every_point_once_and_skip_a_cut_line(tmp_path):
  """launch/plot_curves.py over the committed budget-study curves: one table row per curve and step (a step written
  twice counts once, the last line winning), a partial last line (a killed write) skipped, and the figure written."""
  source = os.path.join(REPO, "docs", "reproduction", "curves")
  expected = {}
  for name in sorted(os.listdir(source)):
    if name.endswith(".curve.jsonl"):
      shutil.copy(os.path.join(source, name), tmp_path / name)
      points = {}
      for line in open(os.path.join(source, name)):
        point = json.loads(line)
        points[point["step"]] = point
      expected[name[:-len(".curve.jsonl")]] = points
  assert expected, "no committed curves"
  first = sorted(expected)[0]
  last_step = max(expected[first])
  with open(tmp_path / f"{first}.curve.jsonl", "a") as f:  # the last step again, with another ELBO, then a cut line
    f.write(json.dumps({**expected[first][last_step], "elbo": -1.5}) + "\n" + '{"step": 99999, "elbo": -')
  expected[first][last_step] = {**expected[first][last_step], "elbo": -1.5}
  subprocess.run([sys.executable, os.path.join(REPO, "launch", "plot_curves.py"), str(tmp_path)], check=True,
                 capture_output=True, text=True)
  rows = _table((tmp_path / "learning_curves.md").read_text())
  assert [(r[0], int(r[1])) for r in rows] == [(name, step) for name in expected for step in sorted(expected[name])]
  assert [float(r[4]) for r in rows] == [round(expected[r[0]][int(r[1])]["elbo"], 1) for r in rows]
  assert os.path.getsize(tmp_path / "learning_curves.png") > 10_000


def _fake_reproduce(tmp_path, fail_at=None, sleep=0, imports=None):
  """A stand-in for launch/reproduce_dsprites.sh that appends the settings it was run with (one line per call) to
  calls.log, sleeps `sleep` seconds, and fails on the call whose PHASES equal `fail_at`: (path, calls.log). With
  `imports` (a file), it also appends there where `$PYTHON -m seatbelt_tf.where` (the launcher's way of importing
  the package) finds the package from its working directory."""
  calls = tmp_path / "calls.log"
  fake = tmp_path / "reproduce.sh"
  fail = f'if [ "$PHASES" = "{fail_at}" ]; then exit 3; fi\n' if fail_at else ""
  where = f'"$PYTHON" -m seatbelt_tf.where >> {imports}\n' if imports else ""
  fake.write_text("#!/usr/bin/env bash\n"
                  f'echo "$PHASES|$SEEDS|${{STEPS:-}}|${{ROBUST_RUNS:-}}|${{BAR_BETAS:-}}|${{PROBE_STEPS:-}}|$ROOT" >> {calls}\n'
                  f"{where}sleep {sleep}\n{fail}")
  fake.chmod(0o755)
  return str(fake), calls


def test_the_campaign_plan_runs_its_steps_in_order_and_resumes_at_the_first_unfinished_one(tmp_path):
  """launch/campaign_plan.sh runs launch/reproduce_dsprites.sh once per step with that step's settings, every cell
  at one budget (11,000 steps); a failed step stops the plan unfinished, and the next run of the plan starts at it
  (finished steps are in ROOT/logs/plan.done); --list marks each step."""
  root = tmp_path / "runs"
  fake, calls = _fake_reproduce(tmp_path, fail_at="1")
  plan = os.path.join(REPO, "launch", "campaign_plan.sh")
  env = dict(os.environ, ROOT=str(root), REPRODUCE=fake, PYTHON=sys.executable, SUMMARY=str(tmp_path / "s.json"),
             STEPS="3600", SEEDS="7")  # (a step's own settings win over the environment's)
  first = subprocess.run(["bash", plan], env=env, capture_output=True, text=True)
  assert first.returncode == 3, first.stdout + first.stderr
  robust = "vae:1:1 beta_tcvae:1:4 beta_tcdlgm:2:4 seatbelt:2:4"
  expected = [f"2|0|11000|{robust}|||{root}", f"0|0|3600||8 1|3600 7200 11000|{root}",
              f"2|1 2|11000|{robust}|||{root}", f"2|1 2 0|11000|seatbelt:2:8 beta_tcdlgm:2:8|||{root}",
              f"1|1 2|11000||||{root}", f"2 3|0 1 2|11000||||{root}"]
  assert calls.read_text().splitlines() == expected[:5]  # step 5 (PHASES=1) failed
  listed = subprocess.run(["bash", plan, "--list"], env=env, capture_output=True, text=True, check=True).stdout
  assert [line.split("] ")[0] + "]" for line in listed.splitlines()] == [
      "1. [done]", "2. [done]", "3. [done]", "4. [done]", "5. [to do]", "6. [to do]"]
  assert 'ROBUST_RUNS="vae:1:1 beta_tcvae:1:4' in listed.splitlines()[0]
  calls.unlink()
  fake, calls = _fake_reproduce(tmp_path)
  second = subprocess.run(["bash", plan], env=dict(env, REPRODUCE=fake), capture_output=True, text=True)
  assert second.returncode == 0, second.stdout + second.stderr
  assert calls.read_text().splitlines() == expected[4:]
  assert "== plan step 1: done" in second.stdout and "every step done" in second.stdout
  calls.unlink()
  subprocess.run(["bash", plan], env=dict(env, REPRODUCE=fake), check=True, capture_output=True)
  assert not calls.exists()  # nothing left to do
  bad = subprocess.run(["bash", plan, "--go"], env=env, capture_output=True, text=True)
  assert bad.returncode == 2 and "unknown argument '--go' (use --start, --list, --pause CMD or nothing)" in bad.stderr


def _plan_checkout(tmp_path):
  """A git repository holding launch/campaign_plan.sh, a README (all that --start needs of a checkout) and a
  package seatbelt_tf with a module `where` that prints the folder it was imported from: (checkout, worktree,
  root, plan, env), env with ROOT, PYTHON and CAMPAIGN_WORKTREE set (REPRODUCE is the caller's)."""
  checkout, worktree, root = tmp_path / "checkout", tmp_path / "campaign", tmp_path / "checkout" / "runs" / "r"
  os.makedirs(checkout / "launch")
  os.makedirs(checkout / "seatbelt_tf")
  shutil.copy(os.path.join(REPO, "launch", "campaign_plan.sh"), checkout / "launch" / "campaign_plan.sh")
  (checkout / "README.md").write_text("a checkout\n")
  (checkout / "seatbelt_tf" / "__init__.py").write_text("")
  (checkout / "seatbelt_tf" / "where.py").write_text("import os\nprint(os.path.dirname(os.path.dirname(__file__)))\n")
  git = ["git", "-C", str(checkout), "-c", "user.name=test", "-c", "user.email=test@example.com"]
  for args in (["init", "-q"], ["add", "launch", "README.md", "seatbelt_tf"],
               ["commit", "-q", "-m", "the plan under test"]):
    subprocess.run(git + args, check=True)
  env = dict(os.environ, ROOT=str(root), PYTHON=sys.executable, CAMPAIGN_WORKTREE=str(worktree))
  env.pop("SUMMARY", None)
  return checkout, worktree, root, str(checkout / "launch" / "campaign_plan.sh"), env


def _group_states(group, listing=None):
  """The ps states (e.g. "S", "T"; zombies left out) of the processes in process group `group`, from `listing`
  (the output of `ps -e -o pgid=,stat=`; by default ps's now)."""
  if listing is None:
    listing = subprocess.run(["ps", "-e", "-o", "pgid=,stat="], capture_output=True, text=True).stdout
  rows = [line.split() for line in listing.splitlines()]
  return [row[1] for row in rows if len(row) == 2 and row[0] == str(group) and not row[1].startswith("Z")]


def test_pause_runs_a_command_with_the_campaign_stopped_and_resumes_it_however_the_command_ends(tmp_path):
  """--pause CMD stops every process of the running campaign's group (the plan, the step it runs) while CMD runs,
  passes CMD's exit status on, and lets the campaign go on afterwards, also when CMD fails; with no campaign
  running it runs CMD alone, and without CMD it says what is missing."""
  _, _, root, plan, env = _plan_checkout(tmp_path)
  env["REPRODUCE"], calls = _fake_reproduce(tmp_path, sleep=60)
  start = subprocess.run(["bash", plan, "--start"], env=env, capture_output=True, text=True)
  assert start.returncode == 0, start.stderr
  group = int((root / "logs" / "campaign.pid").read_text())
  try:
    # The plan and its step (the fake's sleep) are up: the fake has logged its call, which it does just before its
    # sleep, and the group has its three processes. The count alone is not enough: the plan's own short-lived
    # children (its greps and command substitutions) can make three before the step starts, on a loaded machine.
    deadline = time.monotonic() + 60
    states = _group_states(group)
    while (not calls.exists() or len(states) < 3) and time.monotonic() < deadline:
      time.sleep(0.1)
      states = _group_states(group)
    assert calls.exists() and len(states) >= 3, f"the campaign's step did not come up in 60 s: {states}"
    seen = tmp_path / "seen"
    check = f"ps -e -o pgid=,stat= > {seen}; exit 7"
    paused = subprocess.run(["bash", plan, "--pause", "bash", "-c", check], env=env, capture_output=True, text=True)
    assert paused.returncode == 7 and f"campaign paused (process group {group}" in paused.stderr, paused.stderr
    during = _group_states(group, seen.read_text())
    assert len(during) >= 3 and all(state.startswith("T") for state in during), during
    after = _group_states(group)
    assert after and not any(state.startswith("T") for state in after), after
  finally:
    os.killpg(group, signal.SIGKILL)
  for _ in range(100):
    if not _group_states(group):
      break
    time.sleep(0.1)
  alone = subprocess.run(["bash", plan, "--pause", "true"], env=env, capture_output=True, text=True)
  assert alone.returncode == 0 and "no campaign is running" in alone.stderr
  bare = subprocess.run(["bash", plan, "--pause"], env=env, capture_output=True, text=True)
  assert bare.returncode == 2 and "--pause needs a command" in bare.stderr


def test_the_campaign_starts_from_a_frozen_worktree_and_refuses_a_second_start(tmp_path):
  """--start puts a worktree at the checkout's HEAD and runs the plan from it in the background (its own process
  group, pid in ROOT/logs/campaign.pid), with ROOT, PYTHON and SUMMARY in the checkout; a second --start while it
  runs is refused with the way to stop it; once it has ended, --start replaces the worktree with HEAD's again.
  Started from the checkout, the plan's `python -m` calls import the worktree's package, not the checkout's."""
  checkout, worktree, root, plan, env = _plan_checkout(tmp_path)
  head = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                        check=True).stdout.strip()
  imports = tmp_path / "imports.log"
  fake, calls = _fake_reproduce(tmp_path, sleep=3, imports=imports)
  env["REPRODUCE"] = fake
  start = subprocess.run(["bash", plan, "--start"], env=env, capture_output=True, text=True, cwd=checkout)
  assert start.returncode == 0, start.stderr
  assert f"campaign started at {head} in {worktree}" in start.stdout
  assert (worktree / "launch" / "campaign_plan.sh").exists()
  again = subprocess.run(["bash", plan, "--start"], env=env, capture_output=True, text=True)
  assert again.returncode == 1 and "the campaign is already running" in again.stderr and "kill -- -" in again.stderr
  log = tmp_path / "checkout" / "runs" / "r.log"
  steps = len(subprocess.run(["bash", plan, "--list"], env=env, capture_output=True, text=True,
                             check=True).stdout.splitlines())
  for _ in range(80 * steps):  # the plan's steps, 3 s each (its last line; an ended process may stay a zombie here)
    if "every step done" in log.read_text():
      break
    time.sleep(0.5)
  else:
    pytest.fail("the plan did not end: " + log.read_text()[-2000:])
  assert len(calls.read_text().splitlines()) == steps and log.read_text().count("== plan step") == steps
  assert imports.exists() and imports.read_text().splitlines() == [str(worktree)] * steps, log.read_text()[-2000:]
  (root / "logs" / "campaign.pid").write_text(f"{os.getpid()}\n")  # a stale pid, now another process's: no campaign
  (worktree / "stale").write_text("")
  (checkout / "README.md").write_text("edited\n")
  # (ROOT relative to the checkout, where --start is run: the plan, run in the worktree, gets it made absolute.)
  restart = subprocess.run(["bash", plan, "--start"], env=dict(env, ROOT="runs/r"), capture_output=True, text=True,
                           cwd=checkout)
  assert restart.returncode == 0 and "uncommitted changes; the campaign runs HEAD" in restart.stderr
  assert f"log {root}.log" in restart.stdout, restart.stdout
  assert (root / "logs" / "campaign.pid").read_text().strip() != str(os.getpid())
  assert not (worktree / "stale").exists()
  for _ in range(100):  # every step is done: the restarted plan says so in ROOT's log and ends
    if log.read_text().count("every step done") == 2:
      break
    time.sleep(0.1)
  else:
    pytest.fail("the restarted plan did not write to ROOT's log: " + log.read_text()[-2000:])


def test_the_paired_comparisons_match_numpy_on_the_shared_problems():
  """reproduction_tables.paired_section: a cell's excess over the floor against the VAE's on the same (seed,
  pair, lambda) with 2^-3 <= lambda < 2^10, both over the approximate floor (a sweep with the target's own score
  uses its `approximate` excess), against numpy: the problems only one sweep attacked and the lambdas outside the
  range are left out, the interval is Section 5's hierarchical bootstrap (seeds, then pairs), and out-of-date
  sweeps get no row. A Seatbelt-VAE is also compared with the beta-TCVAE of its beta and the beta-TC DLGM of its L
  and beta, whose reference sweep is the paper's latent attack for it (z^1), not its all-layer one."""
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import reproduction_tables  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(4)
  lambdas = [2.0 ** k for k in (-6, -3, 0, 4, 9.5, 10, 14)]

  def cell(offset, own, seeds, pairs):
    return [[[{"seed": seed, "pair": p, "lambda": lam, "floor": "own" if own else "smallest_lambda",
               "excess": 1e4 if own else offset + rng.normal(), "approximate": offset + rng.normal() if own else None}
              for lam in lambdas] for p in range(pairs)] for seed in seeds]
  vae, tcvae = cell(0.0, False, (0, 1, 2), 3), cell(5.0, True, (0, 1), 4)
  dlgm_first, dlgm_all, seatbelt = cell(1.0, True, (0,), 3), cell(50.0, True, (0,), 3), cell(9.0, False, (0,), 2)
  cells = {("beta_tcdlgm", 2, 4.0): {"latent, all layers (eq. 15); the paper's for this family: z¹ (eq. 14)": dlgm_all,
                                     "latent, z¹ (eq. 14)": dlgm_first},
           ("beta_tcvae", 1, 4.0): {"latent": tcvae},
           ("seatbelt", 2, 4.0): {"latent; by attack driver 1, out of date (current: 2)": cell(9.0, False, (0,), 3),
                                  "latent": seatbelt},
           ("vae", 1, 1.0): {"latent": vae}}
  lines = reproduction_tables.paired_section(cells)
  rows = [line for line in lines if line.startswith("| β-TCVAE") or line.startswith("| Seatbelt")]
  assert len(rows) == 4 and "out of date" not in "".join(rows), lines

  def row(cell_name, label, other_name, ours, theirs, seeds_, pairs, key):
    differences = [[[ours[seed][p][i]["approximate" if ours[seed][p][i]["floor"] == "own" else "excess"]
                     - theirs[seed][p][i]["approximate" if theirs[seed][p][i]["floor"] == "own" else "excess"]
                     for i in (1, 2, 3, 4)] for p in range(pairs)] for seed in seeds_]
    diffs = np.ravel(differences)
    groups = [[[{"difference": d} for d in pair] for pair in seed] for seed in differences]
    _, low, high = seeds.median_interval(groups, "difference", seeds.keyed_rng("paired", *key))
    return (f"| {cell_name} | 4 | {label} | {other_name} | {len(diffs)} | {np.median(diffs):.3g} "
            f"[{low:.3g}, {high:.3g}] | {np.mean(diffs > 0):.0%} |"), np.median(diffs)
  expected, median = row("β-TCVAE", "latent", "VAE", tcvae, vae, (0, 1), 3, ("beta_tcvae", 1, 4.0, "latent"))
  assert rows[0] == expected and 4.0 < median < 6.0  # the key of the comparison with the VAE is as before
  seatbelt_key = ("seatbelt", 2, 4.0, "latent")
  for other_name, theirs, reference, low, high in (("VAE", vae, None, 8.0, 10.0),
                                                   ("β-TCVAE, β = 4", tcvae, ("beta_tcvae", 1, 4.0), 3.0, 5.0),
                                                   ("β-TC DLGM, L = 2, β = 4", dlgm_first, ("beta_tcdlgm", 2, 4.0),
                                                    7.0, 9.0)):
    expected, median = row("Seatbelt-VAE, L = 2", "latent", other_name, seatbelt, theirs, (0,), 2,
                           seatbelt_key + (reference or ()))
    assert expected in rows and low < median < high, (expected, rows)
  assert reproduction_tables.paired_references(("beta_tcdlgm", 4, 8.0)) == [("vae", 1, 1.0), ("beta_tcvae", 1, 8.0)]
  assert reproduction_tables.paired_references(("vae", 1, 1.0)) == []


def test_the_summary_keeps_which_unit_holds_each_factor_at_every_budget(tmp_path):
  """collect_reproduction keeps the exact protocol's per-factor gap, best unit and that unit's MI of z^L (from the
  evaluation's own `metrics.mig` result, written as evaluation.json is: keys sorted) for a run and its milestones,
  the record outlives the workdir, and the tables list it per budget. The factors' column order is not their
  sorted order, so reading a factor's MI from the wrong column shows. Codes: unit 2 copies `posX` at the last
  budget (unit 0 at the milestone, whose evaluation predates `factor_names`: its columns are found from the
  numbers); `const` is constant (not in MIG); `shape` is noise."""
  from seatbelt_tf.metrics import mutual_info_gap  # pylint: disable=import-outside-toplevel
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import collect_reproduction  # pylint: disable=import-outside-toplevel
  import reproduction_tables  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(0)
  factors = np.stack([rng.integers(0, 3, 300), rng.integers(0, 4, 300), np.zeros(300, int)], axis=1)

  def mig_of(unit):
    codes = rng.normal(size=(300, 3))
    codes[:, unit] = 3.0 * factors[:, 1] + 0.01 * rng.normal(size=300)
    return mutual_info_gap.mig(codes, factors, method="exact", scales=np.full((300, 3), 0.05), num_samples=500,
                               factor_names=["shape", "posX", "const"])

  def evaluation_json(path, result):
    with open(path, "w") as f:
      f.write(json.dumps({"mig_methods": {"exact": result, "histogram": {"mig": 0.0}}}, sort_keys=True))

  result, early_result = mig_of(2), mig_of(0)
  assert result["factor_names"] == ["shape", "posX", "const"]
  early_result.pop("factor_names")  # an evaluation.json written before the names were kept
  root, out = str(tmp_path / "runs"), str(tmp_path / "docs")
  _run(root, "beta_tcdlgm", 2, 8.0, 0, result["mig"], -60.0, steps=7200)
  workdir = os.path.join(root, "beta_tcdlgm_L2_beta8.0_seed0")
  evaluation_json(os.path.join(workdir, "evaluation", "evaluation.json"), result)
  _milestone(workdir, 3600, mig_exact=early_result["mig"], elbo=-80.0, kl_top=2.0)
  evaluation_json(os.path.join(workdir, "milestones", "step3600", "evaluation.json"), early_result)
  summary = os.path.join(out, "summary.json")
  collect_reproduction.main(root, summary)
  row, = json.load(open(summary))
  assert set(row["mig_factors_exact"]) == {"shape", "posX"}  # the constant factor is not in MIG
  for record, res, unit in ((row["mig_factors_exact"], result, 2),
                            (row["milestones"][0]["mig_factors_exact"], early_result, 0)):
    mi = np.array(res["mutual_info"])
    pos = record["posX"]
    assert pos["unit"] == unit and pos["gap"] == pytest.approx(res["per_factor"]["posX"], abs=1e-4)
    assert pos["mi"] == pytest.approx(mi[unit, 1], abs=1e-4) and pos["mi"] == pytest.approx(np.log(4), abs=0.05)
    assert pos["gap"] > 0.8 and record["shape"]["gap"] < 0.1
    assert record["shape"]["mi"] == pytest.approx(mi[record["shape"]["unit"], 0], abs=1e-4)
  shutil.rmtree(root)  # a new machine: the record stands
  os.makedirs(root)
  collect_reproduction.main(root, summary)
  assert json.load(open(summary))[0]["mig_factors_exact"] == row["mig_factors_exact"]
  lines = reproduction_tables.budget_section(reproduction_tables.load(out))
  assert "| run | epochs | posX: gap (unit, MI nats) | shape: gap (unit, MI nats) |" in lines
  for epochs, record in (("10.0", row["milestones"][0]["mig_factors_exact"]), ("20.0", row["mig_factors_exact"])):
    pos, shape = record["posX"], record["shape"]
    assert (f"| beta_tcdlgm_L2_beta8.0_seed0 | {epochs} | {pos['gap']:.3f} (u{pos['unit']}, {pos['mi']:.2f}) "
            f"| {shape['gap']:.3f} (u{shape['unit']}, {shape['mi']:.2f}) |") in lines
  # Where the columns cannot be told (a gap that matches no column), or the evaluation kept no per-factor result
  # (recorded before it was kept): no record, counted in the tables, not listed.
  assert collect_reproduction.factor_gaps({"mig_methods": {"exact": {**early_result, "per_factor": {
      "posX": 0.5, "shape": early_result["per_factor"]["shape"]}}}}) is None
  assert collect_reproduction.factor_gaps({"mig_methods": {"exact": {"mig": 0.1}}}) is None
  old = {**row, "milestones": [], "mig_factors_exact": None}
  lines = reproduction_tables.budget_section([(old, [])])
  assert any("No evaluation in the summary keeps it yet (1 recorded" in line for line in lines)


def test_an_earlier_training_keeps_its_curves_when_the_cell_is_trained_again(tmp_path):
  """A cell trained again from step 0 (its record moved to `earlier_runs`) keeps the earlier training's per-epoch
  curves beside the new one's (`training/<run>.earlier1.json`), once however often the campaign collects, and the
  training figure draws both."""
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import collect_reproduction  # pylint: disable=import-outside-toplevel
  import reproduction_tables  # pylint: disable=import-outside-toplevel
  root, out = str(tmp_path / "runs"), str(tmp_path / "docs")
  summary, run = os.path.join(out, "summary.json"), "seatbelt_L2_beta8.0_seed0"
  _run(root, "seatbelt", 2, 8.0, 0, 0.05, -60.0)
  _event_file(os.path.join(root, run), {"kl_2": [0.9, 1.1], "elbo": [-300.0, -90.0]})
  collect_reproduction.main(root, summary)
  first = collect_reproduction.read_training(out, run)
  assert first["kl_2"] == pytest.approx([0.9, 1.1])
  shutil.rmtree(root)  # a new machine: trained again from step 0 to the same budget, another ELBO and curve
  _run(root, "seatbelt", 2, 8.0, 0, 0.07, -58.0)
  _event_file(os.path.join(root, run), {"kl_2": [0.5, 2.5], "elbo": [-280.0, -80.0]})
  for _ in range(2):  # collected twice: the earlier curves are moved once, never overwritten by the new ones
    collect_reproduction.main(root, summary)
    row, = json.load(open(summary))
    assert [e["elbo"] for e in row["earlier_runs"]] == [-60.0]
    assert collect_reproduction.read_training(out, run)["kl_2"] == pytest.approx([0.5, 2.5])
    earlier = collect_reproduction.read_json(collect_reproduction.earlier_training_path(out, run, 1))
    assert earlier["kl_2"] == pytest.approx([0.9, 1.1]) and earlier["elbo"] == pytest.approx([-300.0, -90.0])
  assert sorted(os.listdir(os.path.join(out, "training"))) == [f"{run}.earlier1.json", f"{run}.json"]
  runs = reproduction_tables.load(out)
  assert runs[0][0]["earlier_runs"][0]["training"]["kl_2"] == pytest.approx([0.9, 1.1])
  drawn = []
  plotting = reproduction_tables.plotting
  original = plotting.save
  plotting.save = lambda fig, path: drawn.extend(
      (line.get_label(), list(line.get_ydata())) for ax in fig.axes for line in ax.get_lines())
  try:
    assert reproduction_tables.plot_training(runs, str(tmp_path / "training.png"))
  finally:
    plotting.save = original
  assert ("β = 8, seed 0 (earlier training)", pytest.approx([0.9, 1.1])) in drawn
  assert ("β = 8, seed 0", pytest.approx([0.5, 2.5])) in drawn


def test_seed_training_figure_draws_each_seed_of_every_cell_that_has_more_than_one(tmp_path):
  """training_by_seed.png: a panel per cell with two or more seeds (cells of one seed, or of one seed at each of two
  budgets, have none), a line per seed with its own epochs (images over images per epoch), a seed's earlier training
  faint beside it; nothing drawn, and False, when no cell has two seeds."""
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import reproduction_tables  # pylint: disable=import-outside-toplevel

  def row(model, layers, beta, seed, elbo, epochs=31.0, earlier=None):
    training = {"images": [1000.0, 2000.0, 3000.0, 4000.0], "elbo": elbo}
    return ({"model": model, "layers": layers, "beta": beta, "seed": seed, "run": f"{model}_{seed}_{epochs}",
             "epochs": epochs, "images_seen": 4000.0, "training": training,
             "earlier_runs": [{"epochs": epochs, "images_seen": 4000.0,
                               "training": {"images": training["images"], "elbo": earlier}}] if earlier else []}, [])

  drawn = []
  plotting = reproduction_tables.plotting
  original = plotting.save
  plotting.save = lambda fig, path: drawn.append(
      [(ax.get_title(), [(line.get_label(), list(line.get_xdata()), list(line.get_ydata()), line.get_alpha())
                         for line in ax.get_lines()]) for ax in fig.axes if ax.get_visible()])
  try:
    lone = [row("vae", 1, 1.0, 0, [-300.0, -100.0, -90.0, -80.0]),
            row("vae", 1, 1.0, 1, [-300.0, -100.0, -90.0, -80.0], epochs=10.0)]  # one seed per budget
    assert not reproduction_tables.plot_seed_training(lone, str(tmp_path / "none.png")) and not drawn
    runs = lone + [row("vae", 1, 1.0, 2, [-310.0, -95.0, -85.0, -70.0]),
                   row("beta_tcvae", 1, 4.0, 0, [-400.0, -103.0, -102.0, -101.0]),
                   row("beta_tcvae", 1, 4.0, 1, [-420.0, -104.0, -90.0, -72.0], earlier=[-1.0, -2.0, -3.0, -4.0]),
                   row("seatbelt", 2, 8.0, 0, [-300.0, -90.0, -60.0, -50.0])]
    assert reproduction_tables.plot_seed_training(runs, str(tmp_path / "seeds.png"))
  finally:
    plotting.save = original
  panels, = drawn
  assert [title for title, _ in panels] == ["VAE, β = 1 (31.0 ep)", "β-TCVAE, β = 4 (31.0 ep)"]
  vae, tcvae = (lines for _, lines in panels)
  assert [(label, xs) for label, xs, _, _ in vae] == [("seed 0", [7.75, 15.5, 23.25, 31.0]),
                                                       ("seed 2", [7.75, 15.5, 23.25, 31.0])]
  assert vae[1][2] == [-310.0, -95.0, -85.0, -70.0]
  assert [(label, ys[-1], alpha) for label, _, ys, alpha in tcvae] == [
      ("seed 0", -101.0, 1.0), ("seed 1 (earlier training)", -4.0, 0.3), ("seed 1", -72.0, 1.0)]


def test_a_recipe_probe_is_recorded_beside_its_cell_s_seeds(tmp_path):
  sys.path.insert(0, os.path.join(REPO, "launch"))
  import recipe_probe  # pylint: disable=import-outside-toplevel
  workdir = tmp_path / "beta_tcvae_L1_beta4_seed2_warmup4"
  workdir.mkdir()
  settings = {**config.RunConfig(workdir=str(workdir)).flat(), "model": "beta_tcvae", "beta": 4.0, "seed": 2,
              "beta_warmup_steps": 4, "steps_per_epoch": 2, "batch_size": 8}
  (workdir / "config.json").write_text(json.dumps(settings))
  out, summary_dir = tmp_path / "probes", tmp_path / "reproduction"
  training = summary_dir / "training"
  with pytest.raises(SystemExit, match="no training events"):
    recipe_probe.record(str(workdir), str(out), summary_dir=str(summary_dir))
  _event_file(str(workdir), {"elbo": [-300.0, -120.0, -95.0], "tc": [2.0, 1.5, 1.0]})
  training.mkdir(parents=True)
  for name, elbo in (("beta_tcvae_L1_beta4_seed0", [-400.0, -110.0, -103.0]),
                     ("beta_tcvae_L1_beta4_seed2", [-410.0, -111.0, -102.5]),
                     ("beta_tcvae_L1_beta4_seed1.earlier1", [-1.0, -1.0, -1.0]),  # an earlier training: not drawn
                     ("beta_tcvae_L1_beta40_seed1", [-1.0, -1.0, -1.0]),  # another cell sharing the prefix
                     ("vae_L1_beta1_seed2", [-400.0, -100.0, -90.0])):
    (training / f"{name}.json").write_text(json.dumps({"epoch": [0, 1, 2], "elbo": elbo}))
  assert sorted(recipe_probe.campaign_training(str(summary_dir), "beta_tcvae_L1_beta4")) == [0, 2]
  recipe_probe.main([str(workdir), str(out), "--cell=beta_tcvae_L1_beta4", "--reference=vae_L1_beta1",
                     f"--summary_dir={summary_dir}"])
  saved = json.loads((out / "beta_tcvae_L1_beta4_seed2_warmup4.json").read_text())
  assert saved["recipe"]["beta_warmup_steps"] == 4 and saved["recipe"]["seed"] == 2 and saved["epochs_trained"] == 3
  np.testing.assert_allclose(saved["history"]["elbo"], [-300.0, -120.0, -95.0])
  assert saved["history"]["images"] == [16, 32, 48] and saved["command"].startswith("python launch/recipe_probe.py")
  assert (out / "beta_tcvae_L1_beta4_seed2_warmup4.png").stat().st_size > 10_000
  with pytest.raises(SystemExit, match="no config.json"):
    recipe_probe.record(str(tmp_path / "missing"), str(out))
