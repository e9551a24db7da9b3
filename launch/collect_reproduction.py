"""Writes the machine-readable summary of a reproduction campaign (launch/reproduce_dsprites.sh): one object per
trained run under ROOT, with its settings, held-out ELBO, the held-out KL of every layer and of every unit, with the
count of active units per layer (`seatbelt_tf.evaluation.units`), MIG of z^L by both protocols (and, factor by
factor, the exact protocol's gap, the unit holding the factor and that unit's mutual information), and, where
attacked, the median -log p(x^t|z~) and Delta of the latent attack (the paper's for the run's family: z^1 alone for
the beta-TC DLGM, eq. 14, every layer otherwise, eq. 15; `latent_layers` names the set) and the output attack over
all pairs x lambdas, with the median excess of -log p(x^t|z~) over its floor, the target's own -log p(x^t|z~)
(`seatbelt_tf.scores.excess_over_floor`; an output attack without it reads its floors from the latent attack); and,
beside the summary, each attacked run's records in compact form (`attack_records/<run>.json`: per attack, one column
per field, float32 precision), so that the tables' intervals (launch/reproduction_tables.py) can be recomputed from
the repository alone, without the runs' workdirs; and each run's per-epoch training metrics (`training/<run>.json`,
from its TensorBoard events: ELBO, the KL of every layer, ...; an earlier training's, once the cell is trained again
from step 0, `training/<run>.earlier<i>.json`). A run trained on to a larger budget keeps its earlier evaluations
(launch/milestone.py): `milestones` in its summary object.

The summary is the campaign's record, and it outlives the workdirs (a session may start on a new machine, with
ROOT empty): a run already in the summary is kept as it is when its workdir is gone, or when its workdir is
behind it (fewer training steps, e.g. the cell restarted from scratch on a new machine), and so are its compact
files (a record without an excess over the floor gets one from its compact records where they now give it); a
workdir at the same or a larger budget replaces it. A workdir at a larger budget that kept the record's budget
among its milestones (launch/paper.sh keeps a run's evaluation before it trains it on: launch/milestone.py) is
the same training, trained on: the record's earlier milestones join its own. A workdir at the same budget with
another held-out ELBO, or at a larger budget without a milestone at the record's, is the cell trained again from
step 0 (its checkpoint went with an earlier machine): the record it replaces, milestones and all, moves to the
row's `earlier_runs`, so the budgets that run was evaluated at stay in the summary (and in the tables), apart from
the new run's. No run is ever dropped: to take one out, delete its object from the summary.

  python launch/collect_reproduction.py runs/reproduce docs/reproduction/summary.json
  python launch/collect_reproduction.py --recorded docs/reproduction/summary.json STEPS ATTACK
      # prints the runs the summary records at >= STEPS training steps (and attacked, when ATTACK is 1), one per
      # line: launch/reproduce_dsprites.sh skips those cells (launch/paper.sh's RECORDED)
  python launch/collect_reproduction.py --current-attack WORKDIR
      # exit status 0 where WORKDIR's attack sweep is the protocol's (its output objective over OBJECTIVE_DRAWS
      # draws), else 1: launch/paper.sh attacks the run again
"""

import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from seatbelt_tf import config as config_lib  # noqa: E402
from seatbelt_tf import io_utils  # noqa: E402
from seatbelt_tf.evaluation import units  # noqa: E402  (numpy alone)
from seatbelt_tf.scores import median_excess  # noqa: E402  (numpy alone, like this script)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import milestone  # noqa: E402

HIERARCHICAL = ("seatbelt", "beta_tcdlgm")
# The output attack's objective averages over this many fixed noise draws (attacks/protocol.py); a sweep with fewer
# (records without `objective_draws` had one) is out of date: the attack fits a single draw (docs/REPRODUCTION.md).
OBJECTIVE_DRAWS = config_lib.AttackConfig.attack_objective_draws
DRIVER_VERSION = config_lib.ATTACK_DRIVER_VERSION  # the batched attack driver's version of a current attack
ATTACKS = ("latent", "output")
# The fields of an attack record kept in the compact files: what the tables and a reader of Figures 5-7 need.
RECORD_FIELDS = ("pair", "lambda", "display", "objective", "target_nll", "distortion_l2")
# Kept where every record of an attack has them: the target's own -log p(x^t|z~), z~ ~ q(z|x^t) on the score's
# draws (attacks/protocol.py), recorded by sweeps from 2026-12-04 on.
OPTIONAL_FIELDS = ("target_own_nll",)
RECORDS_DIR = "attack_records"
TRAINING_DIR = "training"


class UnreadableFileError(ValueError):
  """A campaign file that exists but is not JSON."""


def read_json(path):
  """The JSON in `path`, or None where there is no such file; a file that is not JSON (cut short, overwritten) is a
  `UnreadableFileError` naming it and the fix, never a traceback from deep in a campaign."""
  if not os.path.isfile(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (ValueError, UnicodeDecodeError) as e:
    raise UnreadableFileError(f"{path} cannot be read as JSON ({type(e).__name__}: {e}). Restore it (a committed "
                              f"file: git checkout -- {path}), or remove it so that what writes it runs "
                              "again.") from None


def mig_by_method(evaluation):
  """{"histogram": value or None, "exact": value or None} from an evaluation.json."""
  out = {"histogram": None, "exact": None}
  if not evaluation:
    return out
  for method, result in (evaluation.get("mig_methods") or {}).items():
    out[method] = result["mig"]
  if "mig" in evaluation and out.get(evaluation["mig"].get("method")) is None:
    out[evaluation["mig"]["method"]] = evaluation["mig"]["mig"]
  return out


def factor_gaps(evaluation, method="exact"):
  """What z^L holds, factor by factor, under `method` from an evaluation.json: {factor: {"gap": its normalised gap
  (as MIG averages it), "unit": the unit most informative about it, "mi": that unit's mutual information with it,
  nats}}, rounded to 4 decimals; None where the evaluation has no such protocol result. Kept in the summary so that
  which unit carries which factor at every budget outlives the run's workdir (a new machine takes it)."""
  result = ((evaluation or {}).get("mig_methods") or {}).get(method)
  if not result or not all(key in result for key in ("per_factor", "best_unit", "mutual_info")):
    return None
  columns = factor_columns(result)
  if columns is None:
    return None
  info = result["mutual_info"]
  return {name: {"gap": round(float(gap), 4), "unit": int(result["best_unit"][name]),
                 "mi": round(float(info[int(result["best_unit"][name])][columns[name]]), 4)}
          for name, gap in result["per_factor"].items()}


def factor_columns(result):
  """{factor: its column in a `metrics.mig` result's `mutual_info`}, or None where it cannot be told. The result
  names its columns (`factor_names`) since 2026-12-05; an evaluation.json written before holds only dicts, whose
  keys JSON sorts, so a factor's column is found from the numbers themselves: the one column whose best unit is
  the factor's `best_unit` and whose normalised gap, computed as `metrics.mig` computes it, equals its
  `per_factor` (JSON keeps floats exactly)."""
  if result.get("factor_names"):
    return {name: j for j, name in enumerate(result["factor_names"])}
  info = np.asarray(result["mutual_info"], np.float64)
  entropy = result.get("factor_entropy") or {}
  if info.ndim != 2 or info.shape[0] < 2:
    return None
  order = np.argsort(info, axis=0)[::-1]  # per column, units by decreasing MI, as metrics.mig orders them
  columns = {}
  for name, gap in result["per_factor"].items():
    if not entropy.get(name):
      return None
    found = [k for k in range(info.shape[1]) if order[0, k] == result["best_unit"][name]
             and abs((info[order[0, k], k] - info[order[1, k], k]) / entropy[name] - gap) <= 1e-9 * max(1.0, gap)]
    if len(found) != 1:
      return None
    columns[name] = found[0]
  return columns


def attack_records(workdir):
  """The run's attack records (`attacks/attack_results.json`), [] when it has not been attacked."""
  return read_json(os.path.join(workdir, "attacks", "attack_results.json")) or []


# The paper's latent attack of each family (Section 4): on z^1 alone for the beta-TC DLGM, whose decoder sees only
# z^1 (eq. 14), on every layer for the Seatbelt-VAE (eq. 15), on the one layer of the VAE and beta-TCVAE.
PAPER_LATENT_LAYERS = {"beta_tcdlgm": "first"}


def paper_latent_layers(model):
  """The layer set (`--attack_layers`) of the paper's latent attack on `model`."""
  return PAPER_LATENT_LAYERS.get(model, "all")


def layer_records(records, mode, layers="all"):
  """The records of one attack mode on one layer set (default: latent attacks on every layer; the output
  attack)."""
  return [r for r in records if r["mode"] == mode and r["layers"] == layers]


def chosen_records(records, model):
  """({mode: records}, latent layer set) of the attacks a summary reports for a run of `model`: the output attack,
  and the paper's latent attack for its family where the run has it, else the latent attack on every layer (an
  earlier protocol, named by the returned set; None when there is no latent attack)."""
  out = {"output": layer_records(records, "output")}
  latent_layers = paper_latent_layers(model)
  out["latent"] = layer_records(records, "latent", latent_layers)
  if not out["latent"]:
    latent_layers = "all"
    out["latent"] = layer_records(records, "latent")
  return out, latent_layers if out["latent"] else None


def objective_draws(records):
  """The fixed noise draws the output attack's objective averaged over in `records` (the fewest, should they differ;
  1 for records written before the count was kept), or None where there is no output attack."""
  output = layer_records(records, "output")
  return min(int(r.get("objective_draws", 1)) for r in output) if output else None


def driver_version(records):
  """The batched driver's version (`config.ATTACK_DRIVER_VERSION`) `records` were made with (the oldest, should they
  differ; 1 for records written before it was kept), or None where there are no records."""
  return min(int(r.get("driver_version", 1)) for r in records) if records else None


def sweep_state(workdir):
  """(`objective_draws`, `driver_version`) of `workdir`'s attack sweep (attacks/attack_results.json, read once),
  each None where it has no output attack, or no sweep."""
  records = read_json(os.path.join(workdir, "attacks", "attack_results.json"))
  return (objective_draws(records), driver_version(records)) if isinstance(records, list) else (None, None)


def current_attack(workdir):
  """Whether `workdir`'s attack sweep has an output attack whose objective averaged over the protocol's
  `OBJECTIVE_DRAWS` and was made by the current driver (`DRIVER_VERSION`): launch/paper.sh attacks a run again
  where it has not."""
  return sweep_state(workdir) == (OBJECTIVE_DRAWS, DRIVER_VERSION)


def excess_fields(mode, records, latent=None):
  """A summary row's `<mode>_excess_nll_median` (`seatbelt_tf.scores.median_excess`, None without records) and
  `<mode>_floor` (its source) for one attack's `records` (`latent`: the same sweep's latent attack, where an output
  attack without the target's own score reads its floors)."""
  median, source = median_excess(records, latent)
  return {f"{mode}_excess_nll_median": median, f"{mode}_floor": source}


def _float32(value):
  """A record's float written with float32's 9 significant digits (the attacks run in float32)."""
  return float(f"{value:.9g}") if isinstance(value, float) else value


def compact_records(records, model="vae"):
  """{mode: {field: [value per record]}, "latent_layers": set} of the attacks a summary reports for a run of
  `model` (`chosen_records`; RECORD_FIELDS only)."""
  chosen, latent_layers = chosen_records(records, model)
  out = {}
  for mode in ATTACKS:
    if chosen[mode]:
      fields = RECORD_FIELDS + tuple(f for f in OPTIONAL_FIELDS if all(r.get(f) is not None for r in chosen[mode]))
      out[mode] = {field: [_float32(r.get(field)) for r in chosen[mode]] for field in fields}
  if latent_layers:
    out["latent_layers"] = latent_layers
  if chosen["output"]:
    out["output_objective_draws"] = objective_draws(chosen["output"])
  if chosen["latent"] or chosen["output"]:
    out["attack_driver"] = driver_version(chosen["latent"] + chosen["output"])
  return out


def expand_records(compact):
  """The records of `compact_records`' output, as the attack's own record dicts (a latent record's layers: the
  file's `latent_layers`, "all" in files written before it was kept)."""
  out = []
  for mode, columns in compact.items():
    if mode not in ATTACKS:
      continue
    n = len(columns["pair"])
    bad = [field for field in RECORD_FIELDS if len(columns.get(field, ())) != n]
    if bad:
      raise ValueError(f"Compact {mode} records have columns {bad} missing or of a length other than {n}: "
                       "rewrite the file with launch/collect_reproduction.py.")
    bad = [field for field in OPTIONAL_FIELDS if field in columns and len(columns[field]) != n]
    if bad:
      raise ValueError(f"Compact {mode} records have columns {bad} of a length other than {n}: rewrite the file "
                       "with launch/collect_reproduction.py.")
    fields = RECORD_FIELDS + tuple(f for f in OPTIONAL_FIELDS if f in columns)
    layers = compact.get("latent_layers", "all") if mode == "latent" else "all"
    out += [dict({field: columns[field][i] for field in fields}, mode=mode, layers=layers) for i in range(n)]
  return out


def records_path(summary_dir, run):
  """Where a run's compact attack records live beside the summary."""
  return os.path.join(summary_dir, RECORDS_DIR, f"{run}.json")


def read_compact_records(summary_dir, run):
  """A run's attack records from its compact file beside the summary, [] when it has none."""
  compact = read_json(records_path(summary_dir, run))
  return expand_records(compact) if compact else []


def training_path(summary_dir, run):
  """Where a run's per-epoch training curves live beside the summary."""
  return os.path.join(summary_dir, TRAINING_DIR, f"{run}.json")


def earlier_training_path(summary_dir, run, index):
  """Where the per-epoch training curves of a run's earlier training live: `index` 1-based, as in its
  `earlier_runs` (the file its record had before the cell was trained again from step 0)."""
  return os.path.join(summary_dir, TRAINING_DIR, f"{run}.earlier{index}.json")


def read_training(summary_dir, run):
  """A run's per-epoch training curves from beside the summary, {} when it has none."""
  return read_json(training_path(summary_dir, run)) or {}


def _write_compact(path, columns, run):
  """Writes {field: column} and the run's name as one-line JSON, atomically."""
  io_utils.atomic_write_text(path, json.dumps(dict(columns, run=run), separators=(",", ":")) + "\n")


def _layer_kls(results, layers):
  """[KL of z^1, ..., KL of z^L] (held-out, nats, before beta) from a results.json, None where missing."""
  if layers == 1:
    return [results.get("kl")]
  return [results.get(f"kl_{i}") for i in range(1, layers + 1)]


def _unit_fields(results):
  """{kl_units: [[mean KL of each unit of z^1], ..., [of z^L]] (held-out, nats, 4 decimals), active_units: [count
  per layer] (`evaluation.units`)} from a results.json; both None for runs trained before `kl_units` was recorded."""
  kls = results.get("kl_units")
  if not kls:
    return {"kl_units": None, "active_units": None}
  return {"kl_units": [[round(float(v), 4) for v in layer_kls] for _, layer_kls in units.by_layer(kls)],
          "active_units": units.active_units(kls)}


def milestone_rows(workdir, layers, current_step):
  """The run's earlier budgets (launch/milestone.py): [{train_steps, images_seen, epochs, elbo, mig_exact,
  mig_histogram, kl_layers, kl_units, active_units, mig_factors_exact, health_spikes}], by step; those before
  `current_step` only (while training extends a run, its results are still the kept budget's)."""
  out = []
  for step, files in milestone.milestones(workdir):
    if step >= current_step:
      continue
    results = files.get("results.json") or {}
    mig = mig_by_method(files.get("evaluation.json"))
    out.append({"train_steps": step, "images_seen": results.get("num_examples_seen"),
                "epochs": results.get("epochs"), "elbo": results.get("elbo"), "mig_exact": mig["exact"],
                "mig_histogram": mig["histogram"], "kl_layers": _layer_kls(results, layers),
                **_unit_fields(results), "mig_factors_exact": factor_gaps(files.get("evaluation.json")),
                "health_spikes": results.get("health_spikes")})
  return out


def training_history(workdir, config):
  """The run's per-epoch training metrics (`evaluation.history`) with `images` seen at the end of each epoch."""
  from seatbelt_tf.evaluation import history  # TensorFlow: imported only where event files are read
  h = history.read_epoch_history(workdir)
  if h:
    per_epoch = int(config["steps_per_epoch"]) * int(config["batch_size"])
    h["images"] = [(e + 1) * per_epoch for e in h["epoch"]]
  return h


def summarise(workdir, records=None):
  """The summary object of one run workdir, or None when it has no results.json yet; `records` are its attack
  records when the caller has read them already (`attack_records`)."""
  config, results = read_json(os.path.join(workdir, "config.json")), read_json(os.path.join(workdir, "results.json"))
  if not config or not results:
    return None
  evaluation = read_json(os.path.join(workdir, "evaluation", "evaluation.json"))
  mig = mig_by_method(evaluation)
  layers = int(config["layers"]) if config["model"] in HIERARCHICAL else 1
  row = {"run": os.path.basename(workdir), "model": config["model"], "layers": layers,
         "beta": float(config["beta"]), "seed": int(config["seed"]), "network": config["network"],
         "batch_size": int(config["batch_size"]), "learning_rate": float(config["learning_rate"]),
         "free_bits": float(config["free_bits"]), "train_steps": int(results["step"]),
         "images_seen": int(results["num_examples_seen"]), "epochs": results.get("epochs"),
         "elbo": float(results["elbo"]), "mig_exact": mig["exact"], "mig_histogram": mig["histogram"],
         "kl_layers": _layer_kls(results, layers), **_unit_fields(results),
         "mig_factors_exact": factor_gaps(evaluation),
         "health_spikes": results.get("health_spikes"),  # None for runs trained before the count was recorded
         "milestones": milestone_rows(workdir, layers, int(results["step"]))}
  records = attack_records(workdir) if records is None else records
  chosen, row["latent_layers"] = chosen_records(records, row["model"])
  for mode in ATTACKS:
    part = chosen[mode]
    row[f"{mode}_target_nll_median"] = float(np.median([r["target_nll"] for r in part])) if part else None
    row[f"{mode}_delta_median"] = float(np.median([r["objective"] for r in part])) if part else None
    row.update(excess_fields(mode, part, chosen["latent"]))
  row["output_objective_draws"] = objective_draws(chosen["output"])
  row["attack_driver"] = driver_version(chosen["latent"] + chosen["output"])
  return row


def output_draws(row):
  """The noise draws a summary row's output attack averaged its objective over (rows written before the count was
  kept: one)."""
  return row.get("output_objective_draws") or 1


def attack_driver(row):
  """The batched attack driver's version a summary row's attacks were made with (rows written before the version
  was kept: 1)."""
  return row.get("attack_driver") or 1


def attack_state(row):
  """(attacked by both attacks, its latent attack the paper's for its family, its output attack's objective over
  the protocol's `OBJECTIVE_DRAWS`, its attacks made by the current driver `DRIVER_VERSION`) for a summary row
  (rows without `output_objective_draws` had one draw; rows without `attack_driver`, driver 1)."""
  attacked = all(row.get(f"{mode}_delta_median") is not None for mode in ATTACKS)
  return (attacked, row.get("latent_layers", "all") == paper_latent_layers(row["model"]),
          output_draws(row) == OBJECTIVE_DRAWS, attack_driver(row) == DRIVER_VERSION)


def is_recorded(row, steps, attacked):
  """Whether a summary row holds a finished cell of the campaign at `steps` (trained at least that far and, when
  `attacked`, attacked by both attacks, its latent attack the paper's for its family, its output attack's objective
  over the protocol's draws)."""
  if row["train_steps"] < steps:
    return False
  return not attacked or all(attack_state(row))


def recorded_runs(summary, steps, attacked):
  """The names of the runs `summary` (a summary.json path; absent: none) records as finished at `steps`."""
  return [row["run"] for row in read_json(summary) or [] if is_recorded(row, steps, attacked)]


MILESTONE_KEYS = ("train_steps", "images_seen", "epochs", "elbo", "mig_exact", "mig_histogram", "kl_layers",
                  "kl_units", "active_units", "mig_factors_exact")


def trained_on(old, row):
  """Whether `row` (a workdir's, at a larger budget than the summary's `old` row of the same run) is `old`'s training
  trained on: its workdir kept an evaluation at `old`'s budget (launch/milestone.py, which launch/paper.sh runs
  before training a finished run on). Without one it was trained from step 0 past that budget: another training."""
  return any(m["train_steps"] == old["train_steps"] for m in row["milestones"])


def supersede(old, row):
  """`row` (a workdir's, at a larger budget than the summary's `old` row of the same run, and `trained_on` from it)
  with `old`'s budget and milestones among its milestones, where the workdir's own milestones lack those steps."""
  have = {m["train_steps"] for m in row["milestones"]}
  extra = [m for m in (old.get("milestones") or []) if m["train_steps"] not in have]
  if old["train_steps"] not in have:
    extra.append({key: old.get(key) for key in MILESTONE_KEYS})
  row["milestones"] = sorted(row["milestones"] + [m for m in extra if m["train_steps"] < row["train_steps"]],
                             key=lambda m: m["train_steps"])
  return row


def keep_earlier_runs(old, row):
  """`row` (a workdir's, replacing the summary's `old` row of the same run at the same or a larger budget) with
  `old`'s `earlier_runs`, and `old` itself among them when it is another training of the cell: the same budget
  and another held-out ELBO (a cell trained again from step 0 on a new machine; re-collecting the same workdir
  gives the same ELBO), or a larger budget not `trained_on` from it."""
  earlier = list(old.get("earlier_runs") or [])
  if (old["train_steps"] == row["train_steps"] and old.get("elbo") != row.get("elbo")
      or old["train_steps"] < row["train_steps"] and not trained_on(old, row)):
    earlier.append({**{key: old.get(key) for key in MILESTONE_KEYS}, "milestones": old.get("milestones") or []})
  if earlier:
    row["earlier_runs"] = earlier
  return row


def _remove(path):
  if os.path.isfile(path):
    os.remove(path)


def main(root, out):
  previous = {row["run"]: row for row in read_json(out) or []}
  rows, attacked, kept = {}, 0, []
  summary_dir = os.path.dirname(out)
  for name in sorted(os.listdir(root)):
    workdir = os.path.join(root, name)
    records = attack_records(workdir)
    row = summarise(workdir, records)
    if row is None:
      continue
    old = previous.get(name)
    if old is not None and old["train_steps"] > row["train_steps"]:
      continue  # the workdir is behind the record (restarted on a new machine?): the record stands
    if old is not None and old["train_steps"] < row["train_steps"] and trained_on(old, row):
      row = supersede(old, row)
    if old is not None:
      row = keep_earlier_runs(old, row)
      index = len(row.get("earlier_runs") or [])
      if index > len(old.get("earlier_runs") or []) and os.path.isfile(training_path(summary_dir, name)):
        # the record became an earlier run: its curves (the file is always its record's) go with it
        os.replace(training_path(summary_dir, name), earlier_training_path(summary_dir, name, index))
    rows[name] = row
    trajectory = training_history(workdir, read_json(os.path.join(workdir, "config.json")))
    if trajectory:
      _write_compact(training_path(summary_dir, name),
                     {k: [_float32(v) for v in values] for k, values in trajectory.items()}, name)
    else:
      _remove(training_path(summary_dir, name))  # a replaced record's curves are not this workdir's
    compact = compact_records(records, row["model"])
    if compact:
      _write_compact(records_path(summary_dir, name), compact, name)
      attacked += 1
    else:
      _remove(records_path(summary_dir, name))  # nor its attacks
  for name, old in previous.items():
    if name not in rows:
      rows[name] = old
      kept.append(name)
      # A record from before the excess over the floor, or before an output attack's floors were read from the
      # latent attack: the excess from its compact records (nothing changes for a run never attacked).
      if any(old.get(f"{mode}_floor") is None for mode in ATTACKS):
        compact = read_compact_records(summary_dir, name)
        latent = [r for r in compact if r["mode"] == "latent"]
        for mode in ATTACKS:
          if old.get(f"{mode}_floor") is None:
            old.update(excess_fields(mode, [r for r in compact if r["mode"] == mode], latent))
  if not rows:
    sys.exit(f"No trained runs (config.json + results.json) under {root}, and no summary at {out}.")
  io_utils.atomic_write_json(out, [rows[name] for name in sorted(rows)])
  print(f"{out}: {len(rows)} runs; compact attack records of {attacked} written in "
        f"{os.path.join(summary_dir, RECORDS_DIR)}"
        + (f"; {len(kept)} kept from the summary as they were (no workdir under {root} at their budget): "
           + ", ".join(sorted(kept)) if kept else ""))


def _command_line(argv):
  if len(argv) == 5 and argv[1] == "--recorded":
    if not argv[3].isdigit() or argv[4] not in ("0", "1"):
      sys.exit(f"--recorded SUMMARY STEPS ATTACK: STEPS a step count and ATTACK 0 or 1, not {argv[3:]}")
    print("\n".join(recorded_runs(argv[2], int(argv[3]), argv[4] == "1")))
  elif len(argv) == 3 and argv[1] == "--current-attack":
    sys.exit(0 if current_attack(argv[2]) else 1)
  elif len(argv) == 3:
    main(argv[1], argv[2])
  else:
    sys.exit(__doc__)


if __name__ == "__main__":
  try:
    _command_line(sys.argv)
  except UnreadableFileError as e:
    sys.exit(f"error: {e}")
