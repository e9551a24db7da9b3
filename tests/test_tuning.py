"""Keras Tuner searches (--mode=tune): a 2-trial search end to end, resumption without new trials, best.cfg, and
the robustness objective."""

import csv
import os

import numpy as np
import pytest

from seatbelt_tf import config as config_lib
from seatbelt_tf import data, launch, runs, tuning
from seatbelt_tf.modes import train as train_mode
from seatbelt_tf.modes import tune as tune_mode
from conftest import tiny_config


def _search(tmp_path, **overrides):
  settings = {"mode": "tune", "tuner": "random", "tune_max_trials": 2, "tune_models": "beta_tcvae,seatbelt",
              "tune_betas": "1:8", "tune_max_layers": 2, "tune_objective": "robustness_excess", "tune_attack_pairs": 2,
              "tune_attack_lambdas": 2, "tune_attack_iterations": 5, **overrides}
  return tiny_config(tmp_path / "search", **settings)


def test_two_trial_search_resumes_without_new_trials_and_best_cfg_trains(tmp_path):
  config = _search(tmp_path)
  first = tune_mode.tune(config)
  assert first["completed"] == 2 and first["new_trials"] == 2
  project = os.path.join(config.workdir, "tuning", "search")
  rows = list(csv.DictReader(open(os.path.join(project, "trials.csv"))))
  assert len(rows) == 2 and all(r["status"] == "COMPLETED" for r in rows)
  for row in rows:
    assert np.isfinite([float(row[k]) for k in ("val_elbo", "robustness", "combined", "robustness_excess")]).all()
    assert float(row["robustness_excess"]) < float(row["robustness"])  # the floor taken out
    assert 1.0 <= float(row["beta"]) <= 8.0 and row["model"] in ("beta_tcvae", "seatbelt")
    assert float(row["score"]) == pytest.approx(float(row["robustness_excess"]))  # the objective configs/tune.cfg uses
  assert first["best_trial"] == max(rows, key=lambda r: float(r["robustness_excess"]))["trial"]
  assert "(best)" in open(os.path.join(project, "trials.md")).read()
  again = tune_mode.tune(config)  # the same command again: the search reloads and runs nothing new
  assert again["new_trials"] == 0 and again["completed"] == 2 and again["best_trial"] == first["best_trial"]
  # get_best_models() rebuilds the best trial's model and loads its trained weights.
  tuner = tuning.build_tuner(config, tuning.SeatbeltHyperModel(config, data.ProceduralDSprites()))
  best_model = tuner.get_best_models(1)[0]
  fresh = tuner.hypermodel.build(tuner.oracle.get_best_trials(1)[0].hyperparameters)
  assert type(best_model).__name__ == type(fresh).__name__
  assert any(not np.allclose(a, b) for a, b in zip(best_model.get_weights(), fresh.get_weights()))
  # best.cfg relaunches training with the best trial's settings.
  args = launch.expand_flagfiles([f"--flagfile={first['best_cfg']}"])
  flat = dict(arg.lstrip("-").split("=", 1) for arg in args)
  assert flat["mode"] == "train" and flat["workdir"] == os.path.join(config.workdir, "best")
  assert flat["model"] == first["best_values"]["model"]
  assert float(flat["beta"]) == pytest.approx(first["best_values"]["beta"])
  launch.FLAGS.unparse_flags()
  launch.FLAGS(["seatbelt-launch", *args, "--train_steps=3", "--verbose=0"])
  results = train_mode.train(launch.config_from_flags())
  launch.FLAGS.unparse_flags()
  assert results["step"] == 3 and np.isfinite(results["elbo"])


def test_robustness_objective_is_finite_and_tells_models_apart(tmp_path):
  source = data.ProceduralDSprites()
  scores = {}
  for name, overrides in {"vae": {"model": "vae", "beta": 1.0},
                          "seatbelt": {"model": "seatbelt", "layers": 2, "beta": 8.0}}.items():
    config = tiny_config(tmp_path / name, tune_attack_pairs=2, tune_attack_lambdas=2, tune_attack_iterations=10,
                         train_steps=30, steps_per_epoch=15, **overrides)
    train_mode.train(config)
    _, _, model = runs.open_trained_run(config)
    records = tuning.attack_records(config, model, source)
    scores[name] = tuning.robustness_scores(records)
    # robustness_excess: each record's -log p(x^t|z~) less its pair's median own score, then the median
    own = {p: np.median([r["target_own_nll"] for r in records if r["pair"] == p]) for p in (0, 1)}
    assert scores[name]["robustness_excess"] == pytest.approx(
        np.median([r["target_nll"] - own[r["pair"]] for r in records]), rel=1e-12)
    assert scores[name]["robustness"] == pytest.approx(np.median([r["target_nll"] for r in records]), rel=1e-12)
    assert len(records) == 4 and {r["layers"] for r in records} == {"all"}
  assert all(np.isfinite(v["robustness"]) and v["robustness"] > 0 for v in scores.values())
  assert abs(scores["vae"]["robustness"] - scores["seatbelt"]["robustness"]) > 1.0
  with pytest.raises(ValueError, match="target_own_nll"):
    tuning.robustness_scores([{k: v for k, v in r.items() if k != "target_own_nll"} for r in records])
  assert tuning.OBJECTIVES == config_lib.TUNE_OBJECTIVES and "robustness_excess" in tuning.OBJECTIVES
  config_lib.RunConfig(workdir="w", tune=config_lib.TuneConfig(tune_objective="robustness_excess")).validate()


def test_search_space_flags_are_validated(tmp_path):
  with pytest.raises(ValueError, match="unknown families flow"):
    tuning.run_search(_search(tmp_path, tune_models="seatbelt,flow"), data.ProceduralDSprites())
  assert tuning.parse_space(["1:10"], "b") == ("range", 1.0, 10.0)
  assert tuning.parse_space(["4", "1"], "b") == ("choice", [1.0, 4.0])
  with pytest.raises(ValueError, match="tune_betas=10:1"):
    config_lib.RunConfig(workdir="w", tune=config_lib.TuneConfig(tune_betas=("10:1",))).validate()
  with pytest.raises(ValueError, match="tuner='grid'"):
    config_lib.RunConfig(workdir="w", tune=config_lib.TuneConfig(tuner="grid")).validate()


def test_the_paper_style_search_config_parses_and_searches_for_the_excess():
  """configs/tune.cfg (README's tuning example) expands, validates, and asks for `robustness_excess`: the raw
  `robustness` and `combined` have each model's floor in them (tuning's module docstring)."""
  args = launch.expand_flagfiles([f"--flagfile={os.path.join(os.path.dirname(__file__), '..', 'configs', 'tune.cfg')}"])
  launch.FLAGS.unparse_flags()
  try:
    launch.FLAGS(["seatbelt-launch", *args])
    config = launch.config_from_flags()
  finally:
    launch.FLAGS.unparse_flags()
  config.validate()
  assert config.mode == "tune" and config.tune.tune_objective == "robustness_excess"
  assert config.tune.tuner == "bayesian" and config.tune.tune_max_layers == 5
