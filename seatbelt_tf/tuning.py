"""Keras Tuner searches over model families, beta, L and training settings (--mode=tune).

`SeatbeltHyperModel` is a `keras_tuner.HyperModel`: `build(hp)` returns a built, compiled seatbelt_tf model (built
on a dummy batch, so `get_best_models()` can reload its weights), and `fit(hp, model, ...)` trains it on the run's
dataset with the normal training pipeline, then returns four metrics, any of which can be the objective
(`--tune_objective`):

* `val_elbo` (maximise): the held-out ELBO without beta (eq. 3 / eq. 10 with beta = 1) on the run's held-out split,
  the same number `results.json` reports after training. It measures how well the model explains the data.
* `robustness` (maximise): the median -log p(x^t|z~) over a small fixed latent attack (eqs. 13-15, all
  layers): `tune_attack_pairs` held-out input/target pairs (the same pairs for every trial) x `tune_attack_lambdas`
  lambda values from 2^-8 to 2^0, each attack run for `tune_attack_iterations` L-BFGS iterations. A robust model
  keeps the target unlikely under the adversarial input's posterior (paper Figures 5-7), so higher is better.
* `combined` (maximise): `robustness` while `val_elbo` is at or above `tune_elbo_floor` (nats); below the floor, the
  robustness minus 10 x the shortfall. It asks for the most robust model that still models the data well enough:
  robustness alone rewards models that ignore their input (a posterior collapsed onto the prior explains no
  target), which the floor rules out.
* `robustness_excess` (maximise): the same attack's median excess of -log p(x^t|z~) over its floor, the target's
  own -log p(x^t|z~) with z~ ~ q(z|x^t) (`seatbelt_tf.scores.excess_over_floor`, per pair). `robustness` has that
  floor in it, so it also rewards a model for reconstructing its targets badly (docs/REPRODUCTION.md, "The floor of
  the attack score"); the excess does not, and a model that ignores its input scores about 0 (q(z|x*) = q(z|x^t)
  whatever the input), so it needs no ELBO floor.

The search space (flags): the families of `--tune_models`; beta from `--tune_betas` (a list to choose from, or
`lo:hi` for a log-uniform range); L from 1 to `--tune_max_layers` for the hierarchical families; the learning rate
from `--tune_learning_rates` (same syntax); free bits from `--tune_free_bits`; the estimator from
`--tune_estimators`. Each trial trains `train_steps` steps (Hyperband: its own epoch budget, `steps_per_epoch` steps
per epoch).

Resumable: the tuner state lives in `<tune_directory>/<tune_project>/` (default `<workdir>/tuning/search`);
re-running the same command reloads it and runs only the missing trials. After the search, `best.cfg` (a flagfile
that trains the best trial's settings in `<workdir>/best`) and `trials.csv` / `trials.md` (every trial's settings
and metrics) are written into the project folder.

Distributed search: keras-tuner's chief/worker protocol (`launch/tune_distributed.sh`): every process runs the same
command with `KERASTUNER_ORACLE_IP`/`KERASTUNER_ORACLE_PORT` pointing at the chief and `KERASTUNER_TUNER_ID` set to
`chief` on the oracle and `tuner0`, `tuner1`, ... on the workers.
"""

import csv
import dataclasses
import io
import math
import os

import keras_tuner as kt
import numpy as np

from seatbelt_tf import config as config_lib
from seatbelt_tf import data as data_lib
from seatbelt_tf import io_utils
from seatbelt_tf import models as models_lib
from seatbelt_tf import runs
from seatbelt_tf import scores

OBJECTIVES = config_lib.TUNE_OBJECTIVES
TUNERS = ("random", "bayesian", "hyperband")
SHORTFALL_PENALTY = 10.0  # per nat of ELBO below the floor, in the combined objective


def parse_space(values, name):
  """A flag's search space: ("range", lo, hi) for a single "lo:hi" item, else ("choice", [floats])."""
  values = [str(v).strip() for v in values if str(v).strip()]
  if len(values) == 1 and ":" in values[0]:
    lo, hi = (float(v) for v in values[0].split(":", 1))
    if not 0 < lo < hi:
      raise ValueError(f"{name}={values[0]}: a range lo:hi needs 0 < lo < hi (it is sampled log-uniformly).")
    return ("range", lo, hi)
  if not values:
    raise ValueError(f"{name} is empty: give values to choose from, or lo:hi for a log-uniform range.")
  return ("choice", sorted({float(v) for v in values}))


def _hp_float(hp, name, space):
  if space[0] == "range":
    return hp.Float(name, space[1], space[2], sampling="log")
  return hp.Choice(name, space[1]) if len(space[1]) > 1 else hp.Fixed(name, space[1][0])


def trial_config(config, values):
  """The RunConfig of a trial: `config` with the trial's hyperparameter values (a dict)."""
  flat = {**config.flat(), "mode": "train"}
  for key in ("model", "beta", "layers", "learning_rate", "free_bits", "estimator"):
    if key in values:
      flat[key] = values[key]
  if not models_lib.is_hierarchical(flat["model"]):
    flat["layers"] = 1
  return config_lib.RunConfig.from_flat(flat).validate()


class SeatbeltHyperModel(kt.HyperModel):
  """Builds and trains seatbelt_tf models from hyperparameters (module docstring).

  Args:
    config: the search's RunConfig (the base settings every trial starts from, and `config.tune`).
    source: the dataset source.
  """

  def __init__(self, config, source):
    super().__init__(name="seatbelt_tf")
    self.config = config
    self.source = source

  def values(self, hp):
    """Registers the search space on `hp` and returns the trial's values by flag name."""
    t = self.config.tune
    models = list(t.tune_models)
    family = hp.Choice("model", models) if len(models) > 1 else hp.Fixed("model", models[0])
    values = {"model": family, "beta": _hp_float(hp, "beta", parse_space(t.tune_betas, "tune_betas")),
              "learning_rate": _hp_float(hp, "learning_rate",
                                         parse_space(t.tune_learning_rates, "tune_learning_rates"))}
    hierarchical = [m for m in models if models_lib.is_hierarchical(m)]
    if hierarchical and t.tune_max_layers > 1:
      with hp.conditional_scope("model", hierarchical):
        layers = hp.Int("layers", 1, t.tune_max_layers)
      if models_lib.is_hierarchical(family):
        values["layers"] = layers
    free_bits = sorted({float(v) for v in t.tune_free_bits})
    values["free_bits"] = hp.Choice("free_bits", free_bits) if len(free_bits) > 1 else free_bits[0]
    estimators = list(t.tune_estimators)
    values["estimator"] = hp.Choice("estimator", estimators) if len(estimators) > 1 else estimators[0]
    return values

  def build(self, hp):
    """A built (every variable created on a dummy batch) and compiled model of the trial's settings."""
    return runs.build_model(trial_config(self.config, self.values(hp)), self.source)

  def fit(self, hp, model, *args, callbacks=None, epochs=None, initial_epoch=0, **kwargs):
    """Trains `model` on the run's training stream, then returns every objective of `OBJECTIVES`."""
    del args, kwargs
    trial = trial_config(self.config, self.values(hp))
    tr = trial.train
    epochs = epochs or max(1, math.ceil(tr.train_steps / tr.steps_per_epoch))
    model.fit(data_lib.train_dataset(self.source, tr.batch_size, trial.data.eval_examples, tr.seed,
                                     start_step=initial_epoch * tr.steps_per_epoch),
              steps_per_epoch=tr.steps_per_epoch, initial_epoch=initial_epoch, epochs=epochs, shuffle=False,
              verbose=0 if tr.verbose == 1 else tr.verbose, callbacks=callbacks or [])
    return trial_metrics(trial, model, self.source)


def trial_metrics(config, model, source):
  """{objective: value} of a trained model for every objective of `OBJECTIVES` (module docstring)."""
  evaluated = runs.evaluate_model(config, model, source, unit_kls=False)
  val_elbo = float(evaluated["elbo"])
  robust = robustness_scores(attack_records(config, model, source))
  shortfall = max(0.0, config.tune.tune_elbo_floor - val_elbo)
  return {"val_elbo": val_elbo, **robust, "combined": robust["robustness"] - SHORTFALL_PENALTY * shortfall}


def attack_records(config, model, source):
  """The records of a small, fixed latent attack on every layer (module docstring): the same pairs, lambdas and
  iterations for every trial."""
  from seatbelt_tf import attacks  # pylint: disable=g-import-not-at-top
  t = config.tune
  candidates = data_lib.pipeline.eval_indices(source.num_examples, config.data.eval_examples,
                                              config.train.seed).numpy()
  pairs = attacks.choose_pairs(candidates, t.tune_attack_pairs, config.attack.attack_seed)
  inputs, targets = source.tf_images(pairs[:, 0]).numpy(), source.tf_images(pairs[:, 1]).numpy()
  lambdas = attacks.lambda_grid(t.tune_attack_lambdas, -8.0, 0.0)
  records, _ = attacks.run_attack(attacks.ModelFns(model), inputs, targets, lambdas, "latent", "all",
                                  data_range=source.data_range, starts=("input",), neighbour_rounds=0,
                                  max_iterations=t.tune_attack_iterations, seed=config.attack.attack_seed)
  return records


def robustness_scores(records):
  """{"robustness": median -log p(x^t|z~), "robustness_excess": its median excess over the target's own} of
  `attack_records`' records."""
  excess, source = scores.excess_over_floor(records)
  if source != "own":
    raise ValueError("The tuner's attack records lack the target's own -log p(x^t|z~) (target_own_nll).")
  return {"robustness": float(np.median([r["target_nll"] for r in records])),
          "robustness_excess": float(np.median(excess))}


def robustness(config, model, source):
  """Median -log p(x^t|z~) of a small, fixed latent attack on every layer (module docstring)."""
  return robustness_scores(attack_records(config, model, source))["robustness"]


def build_tuner(config, hypermodel):
  """The keras_tuner tuner of `config.tune` over `hypermodel`, reloading an existing search."""
  t = config.tune
  objective = kt.Objective(t.tune_objective, direction="max")
  common = {"objective": objective, "directory": tune_directory(config), "project_name": t.tune_project,
            "overwrite": False, "seed": config.train.seed}
  if t.tuner == "hyperband":
    max_epochs = max(2, math.ceil(config.train.train_steps / config.train.steps_per_epoch))
    return kt.Hyperband(hypermodel, max_epochs=max_epochs, factor=3, max_retries_per_trial=0, **common)
  cls = kt.RandomSearch if t.tuner == "random" else kt.BayesianOptimization
  return cls(hypermodel, max_trials=t.tune_max_trials, max_retries_per_trial=0, **common)


def tune_directory(config):
  return config.tune.tune_directory or os.path.join(config.workdir, "tuning")


def run_search(config, source):
  """Runs (or resumes) the search; writes best.cfg, trials.csv and trials.md; returns a summary dict."""
  unknown = sorted(set(config.tune.tune_models) - set(models_lib.MODELS))
  if unknown:
    raise ValueError(f"tune_models={','.join(config.tune.tune_models)}: unknown families {', '.join(unknown)}; "
                     f"choose from {', '.join(sorted(models_lib.MODELS))}.")
  tuner = build_tuner(config, SeatbeltHyperModel(config, source))
  if is_worker():  # a distributed worker: trains the trials the chief hands out; the chief writes the summary
    tuner.search(verbose=0)
    return {"project_dir": tuner.project_dir, "role": os.environ["KERASTUNER_TUNER_ID"],
            "best_cfg": os.path.join(tuner.project_dir, "best.cfg (written by the chief)")}
  before = _completed(tuner)
  tuner.search(verbose=0)
  trials = list(tuner.oracle.trials.values())
  completed = [tr for tr in trials if tr.status == "COMPLETED"]
  if not completed:
    raise RuntimeError(f"No trial of the search in {tuner.project_dir} completed; see the errors above.")
  best = tuner.oracle.get_best_trials(1)[0]
  best_config = trial_config(config, dict(best.hyperparameters.values))
  train = best_config.train
  if "tuner/epochs" in best.hyperparameters.values:  # Hyperband: the best trial's own budget
    train = dataclasses.replace(train, train_steps=best.hyperparameters.values["tuner/epochs"] * train.steps_per_epoch)
  best_config = dataclasses.replace(best_config, workdir=os.path.join(config.workdir, "best"), train=train)
  project = tuner.project_dir
  io_utils.atomic_write_text(os.path.join(project, "best.cfg"),
                             f"# Best trial {best.trial_id} of the search in {project} "
                             f"({config.tune.tune_objective} = {best.score:.6g}); trains its settings.\n"
                             + best_config.to_flagfile())
  rows = trial_rows(trials)
  io_utils.atomic_write_text(os.path.join(project, "trials.csv"), _csv(rows))
  io_utils.atomic_write_text(os.path.join(project, "trials.md"), _markdown(rows, best.trial_id))
  values = {k: v for k, v in best.hyperparameters.values.items() if not k.startswith("tuner/")}
  return {"project_dir": project, "trials": len(trials), "completed": len(completed),
          "new_trials": len(completed) - before, "best_trial": best.trial_id, "best_score": float(best.score),
          "best_values": values, "best_cfg": os.path.join(project, "best.cfg")}


def is_worker():
  """Whether this process is a worker of a distributed search (keras-tuner's environment variables)."""
  return "KERASTUNER_ORACLE_IP" in os.environ and os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief"


def _completed(tuner):
  return sum(tr.status == "COMPLETED" for tr in tuner.oracle.trials.values())


def trial_rows(trials):
  """One dict per trial: id, status, score, every hyperparameter and metric."""
  rows = []
  for tr in sorted(trials, key=lambda tr: tr.trial_id):
    row = {"trial": tr.trial_id, "status": tr.status, "score": tr.score}
    row.update({k: v for k, v in tr.hyperparameters.values.items() if not k.startswith("tuner/")})
    for name in OBJECTIVES:
      if tr.metrics.exists(name):
        row[name] = tr.metrics.get_last_value(name)
    rows.append(row)
  return rows


def _columns(rows):
  columns = []
  for row in rows:
    columns += [k for k in row if k not in columns]
  return columns


def _csv(rows):
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=_columns(rows))
  writer.writeheader()
  writer.writerows(rows)
  return out.getvalue()


def _markdown(rows, best_id):
  columns = _columns(rows)
  fmt = lambda v: "" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))
  lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
  for row in rows:
    mark = " (best)" if row["trial"] == best_id else ""
    lines.append("| " + " | ".join(fmt(row.get(c)) + (mark if c == "trial" else "") for c in columns) + " |")
  return "\n".join(lines) + "\n"
