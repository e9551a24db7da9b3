"""The reproduction campaign's tables and figures over seeds (issue 26; launch/reproduce_dsprites.sh writes ROOT):

* Table J.2: MIG of z^L (L = 2) per family and beta, mean ± sd over seeds, by Chen et al.'s exact protocol (the
  paper's) and the histogram one, and the issue's bar judged on the exact protocol's seed means (MIG <= 0.10 at
  beta = 1, >= 0.25 at beta = 4 and 8, three seeds): met, not met, or pending while a cell has fewer seeds or its
  seeds were trained for different budgets;
* Figure 3: held-out ELBO without beta against beta per family, mean ± sd, and the change from beta = 1 paired by
  seed and budget;
* Section 5: per robustness cell and attack (the paper's latent attack for the family, output), the median Delta
  and the median -log p(x^t|z~) over seeds x pairs x lambdas with a 95% hierarchical-bootstrap interval
  (`seatbelt_tf.evaluation.seeds`), and each cell's -log p(x^t|z~) against the vanilla VAE's: harder to attack
  (intervals apart, higher), easier (apart, lower) or not separated, once both have three seeds at one budget;
  and the same for the excess of -log p(x^t|z~) over its floor, the target's own (`scores.excess_over_floor`),
  which takes each model's reconstruction quality out of the comparison; and, problem by problem where the curves
  rise, each cell's excess against the cells the paper's claims compare it with (`paired_references`: the VAE;
  for a hierarchy the beta-TCVAE of its beta; for a Seatbelt-VAE the beta-TC DLGM of its L and beta).

* where the factors went: each hierarchy's MIG of every layer, with the unit that holds each factor best
  (OUT/layer_mig/, launch/layer_mig.py; J.2 scores z^L alone);
* the training budget: every budget each L = 2 run was evaluated at (ELBO, MIG, KL of z^L), and its per-epoch
  KL of z^L and ELBO (OUT/training_top_layer.png);
* seed by seed: the per-epoch training ELBO of every cell with more than one seed (OUT/training_by_seed.png);
* what each run holds: the held-out KL of every layer and its count of active units (`evaluation.units`).

Reads only what launch/collect_reproduction.py wrote into OUT (summary.json, the compact attack records in
OUT/attack_records/, the training curves in OUT/training/), so the tables can be rewritten from the repository
alone. Writes OUT/tables.md, OUT/mig_vs_beta.png, OUT/elbo_vs_beta.png, OUT/training_top_layer.png,
OUT/training_by_seed.png, OUT/attack_medians.png and OUT/attack_curves.png (the excess over the floor against
lambda) (atomically); with ROOT, the campaign's runs folder, it also copies each attacked cell's lowest seed's
attack grids at the displayed lambda into OUT/grids/ (without it, the grids already there are shown).

  python launch/collect_reproduction.py runs/reproduce docs/reproduction/summary.json
  python launch/reproduction_tables.py docs/reproduction runs/reproduce
"""

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from seatbelt_tf import io_utils, plotting, scores  # noqa: E402
from seatbelt_tf.evaluation import seeds as seed_stats  # noqa: E402
from seatbelt_tf.evaluation import units  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import collect_reproduction  # noqa: E402
import layer_mig  # noqa: E402

NAMES = {"vae": "VAE", "beta_tcvae": "β-TCVAE", "beta_tcdlgm": "β-TC DLGM", "seatbelt": "Seatbelt-VAE"}
J2_FAMILIES = ("beta_tcdlgm", "seatbelt")
J2_BAR = {1.0: ("<=", 0.10), 4.0: (">=", 0.25), 8.0: (">=", 0.25)}  # issue 26's bar, on seed means
J2_PAPER_BETA1 = {"beta_tcdlgm": 0.041, "seatbelt": 0.048}  # Table J.2's dSprites column at β = 1
SEEDS_NEEDED = 3
ATTACKS = ("latent", "output")
LAYER_SETS = {"all": "all layers (eq. 15)", "first": "z¹ (eq. 14)", "top": "z^L only"}
FIGURE3 = (("beta_tcvae", 1), ("beta_tcdlgm", 2), ("seatbelt", 2))
# The vanilla VAE's loss is the beta-TCVAE's at beta = 1 (seatbelt_tf/models/beta_tcvae.py: analytic KL, the TC
# weighted by beta - 1), so a VAE run without free bits is that family's beta = 1 cell in Figure 3.
FIGURE3_BETA1 = {"beta_tcvae": "vae"}


def load(out):
  """[(summary row, attack records)] of every run in OUT/summary.json (records [] when not attacked)."""
  path = os.path.join(out, "summary.json")
  if not os.path.isfile(path):
    sys.exit(f"No summary.json in {out}: write it first with `python launch/collect_reproduction.py ROOT "
             f"{path}` (ROOT: the campaign's runs folder), then run `python launch/reproduction_tables.py {out} "
             "ROOT`.")
  rows = collect_reproduction.read_json(path)
  for row in rows:
    row["training"] = collect_reproduction.read_training(out, row["run"])
    for i, earlier in enumerate(row.get("earlier_runs") or []):
      earlier["training"] = collect_reproduction.read_json(
          collect_reproduction.earlier_training_path(out, row["run"], i + 1)) or {}
  return [(row, collect_reproduction.read_compact_records(out, row["run"])) for row in rows]


def cell_label(model, layers):
  return NAMES[model] + (f", L = {layers}" if model in J2_FAMILIES else "")


def bar_status(values, rule, budgets=()):
  """'met', 'not met' or 'pending (n of 3 seeds)' for one J.2 cell's per-seed values under (op, threshold);
  pending too while its seeds were trained for different `budgets` (epochs, one per seed): a mean over a 10-epoch
  seed and a 31-epoch one is no verdict on either budget."""
  mean, _, _, _, n = seed_stats.mean_sd(values)
  if n < SEEDS_NEEDED:
    return f"pending ({n} of {SEEDS_NEEDED} seeds)"
  if len(set(budgets)) > 1:
    return f"pending (seeds at different budgets: {'/'.join(_ep(e) for e in sorted(set(budgets)))} ep)"
  op, threshold = rule
  ok = mean <= threshold if op == "<=" else mean >= threshold
  return "met" if ok else "not met"


def _budget(row):
  """A run's (or milestone's) training budget as the tables compare them: epochs to 3 significant digits."""
  return float(f"{row.get('epochs') or 0:.3g}")


def _epochs(rows):
  """The distinct training budgets (epochs, 3 significant digits) of `rows`, sorted."""
  return sorted({_budget(r) for r in rows})


def _ep(epochs):
  """Epochs as the tables print them: one decimal from one epoch on (31.0, not 31), else 3 significant digits."""
  return "—" if epochs is None else f"{epochs:.1f}" if epochs >= 1 else f"{epochs:.3g}"


def _at_budget(text, rows, mixed):
  """`text` (a cell's number), followed by its runs' budgets when the table's cells were trained for different
  budgets, so a cell is never read against another of a different budget unawares."""
  return f"{text} at {'/'.join(_ep(e) for e in _epochs(rows))} ep" if mixed and rows else text


MIXED_TITLE = "\nruns of different budgets: see tables.md"  # a figure title's second line, when they differ


def mixed_budget_note(rows):
  """A warning line when `rows` were trained for different budgets, else None."""
  epochs = _epochs(rows)
  if len(epochs) < 2:
    return None
  return (f"**The runs here were trained for different budgets** ({', '.join(_ep(e) for e in epochs)} epochs; "
          "each cell says its own): compare cells at the same budget only. The training-budget section lists every "
          "run at every budget it was evaluated at.")


def _j2_rows(runs):
  """The summary rows of Table J.2's cells: the hierarchies at L = 2."""
  return [r for r, _ in runs if r["model"] in J2_FAMILIES and r["layers"] == 2]


def _figure3_family(runs, model, layers):
  """The summary rows of one Figure 3 family; the beta-TCVAE's include the vanilla VAE's runs without free bits as
  its beta = 1 (FIGURE3_BETA1)."""
  return [r for r, _ in runs if (r["model"], r["layers"]) == (model, layers)
          or (r["model"] == FIGURE3_BETA1.get(model) and r["beta"] == 1.0 and not r.get("free_bits"))]


def _figure3_rows(runs):
  """The summary rows of Figure 3's families (FIGURE3, the beta-TCVAE's beta = 1 stand-in included)."""
  return [r for model, layers in FIGURE3 for r in _figure3_family(runs, model, layers)]


def j2_section(runs):
  rows = _j2_rows(runs)
  betas = sorted({r["beta"] for r in rows})
  lines = ["## Table J.2: MIG of z^L, L = 2", "",
           "Mean ± sample sd over seeds (n = seeds). The paper's dSprites column: β-TC DLGM 0.041 at β = 1 and "
           "0.28-0.35 for β = 2..10; Seatbelt-VAE 0.048 at β = 1 and 0.32-0.36 for β = 2..10. The bar (issue 26) is "
           "judged on the exact protocol's seed means, three seeds per cell.", ""]
  if not rows:
    return lines + ["No L = 2 hierarchy has been evaluated yet.", ""]
  note = mixed_budget_note(rows)
  mixed = note is not None
  if mixed:
    lines += [note, ""]
  lines += ["| model | protocol | " + " | ".join(f"β = {b:g}" for b in betas) + " |",
            "|---|---|" + "---|" * len(betas)]
  verdicts = []
  for model in J2_FAMILIES:
    for protocol in ("exact", "histogram"):
      cells = []
      for b in betas:
        cell = [r for r in rows if r["model"] == model and r["beta"] == b]
        cells.append(_at_budget(seed_stats.format_mean_sd([r[f"mig_{protocol}"] for r in cell]), cell, mixed))
      lines.append(f"| {cell_label(model, 2)} | {protocol} | " + " | ".join(cells) + " |")
    for beta, rule in J2_BAR.items():
      cell = [r for r in rows if r["model"] == model and r["beta"] == beta]
      values = [r["mig_exact"] for r in cell]
      verdicts.append(f"| {cell_label(model, 2)} | {beta:g} | MIG {rule[0]} {rule[1]:.2f} | "
                      f"{_at_budget(seed_stats.format_mean_sd(values), cell, mixed)} | "
                      f"{bar_status(values, rule, [_budget(r) for r in cell])} |")
  lines += ["", "| model | β | bar | exact MIG | status |", "|---|---|---|---|---|", *verdicts, ""]
  return lines


def _number(value, spec):
  return "—" if value is None else format(value, spec)


def budget_section(runs):
  """Per J.2 run, every budget it was evaluated at (its milestones, then its latest): ELBO, MIG of z^L by both
  protocols and the held-out KL of z^L, to show whether more training changes the answer."""
  rows = sorted(_j2_rows(runs), key=lambda r: (r["model"], r["beta"], r["seed"]))
  lines = ["## Training budget: does more training change J.2's answer?", "",
           "Every budget each L = 2 run was evaluated at (a run trained on keeps its earlier evaluation: "
           "launch/milestone.py; a cell trained again from step 0 keeps its earlier run's rows, marked). "
           "KL of z^L: held-out, nats, before β; MIG of z^L cannot be large while z^L holds "
           "little information (a factor's entropy is 1.1 nats for shape, 3.5 for a position). Health warnings: "
           "how many times the training-health guard flagged a quantity from step 0 to that budget (results.json's "
           "`health_spikes`; — for evaluations made before it was counted). The per-epoch "
           "training curves are in `training/` and the figure below.", ""]
  if not rows:
    return lines + ["No L = 2 hierarchy has been evaluated yet.", ""]
  lines += ["| run | epochs | ELBO | MIG exact | MIG histogram | KL of z^L | health warnings |",
            "|---|---|---|---|---|---|---|"]
  for row in rows:
    for name, budget in _trainings(row):
      kl_top = (budget.get("kl_layers") or [None])[-1]
      lines.append(f"| {name} | {_ep(budget.get('epochs'))} | {_number(budget.get('elbo'), '.2f')} "
                   f"| {_number(budget.get('mig_exact'), '.3f')} | {_number(budget.get('mig_histogram'), '.3f')} "
                   f"| {_number(kl_top, '.2f')} | {_number(budget.get('health_spikes'), 'd')} |")
  return lines + ["", *factor_budget_lines(rows)]


def units_section(runs):
  """Per run at its latest budget: the held-out KL of each layer and how many of its units are active
  (`seatbelt_tf.evaluation.units`: mean KL above `ACTIVE_UNIT_KL`), bottom layer first; — where the run was
  trained before the per-unit KL was recorded in the summary."""
  rows = sorted((r for r, _ in runs), key=lambda r: (list(NAMES).index(r["model"]), r["layers"], r["beta"], r["seed"]))
  lines = ["## What each run holds: KL and active units per layer", "",
           "Held-out KL of every layer (nats, before β; bottom layer first) and its active units: those whose "
           f"mean KL is above {units.ACTIVE_UNIT_KL:g} nats, out of the layer's width (a collapsed unit's posterior "
           "is its prior: about 10⁻³ nats, or near the free-bits floor, 0.05 nats per unit, in the hierarchies, "
           "where a unit just above the threshold can hold little; `summary.json`'s `kl_units` has every unit). "
           "— for runs collected before the per-unit KL went into the summary (2026-12-07): their `results.json` "
           "went with earlier machines.", "",
           "| run | epochs | ELBO | KL per layer | active units per layer |", "|---|---|---|---|---|"]
  for row in rows:
    kls = " / ".join(_number(v, ".2f") for v in (row.get("kl_layers") or [None]))
    widths = [len(layer) for layer in row.get("kl_units") or []]
    active = row.get("active_units")
    counts = " / ".join(f"{a} of {w}" for a, w in zip(active, widths)) if active else "—"
    lines.append(f"| {row['run']} | {_ep(row.get('epochs'))} | {_number(row.get('elbo'), '.2f')} | {kls} | {counts} |")
  return lines + [""]


def _trainings(row):
  """(label, budget) for every budget of every training of a summary row: its earlier runs' (marked), then its own;
  each training's milestones before its latest evaluation."""
  trainings = [(f"{row['run']} (earlier run {i + 1}, trained again since)", earlier)
               for i, earlier in enumerate(row.get("earlier_runs") or [])] + [(row["run"], row)]
  return [(name, b) for name, run in trainings for b in [*(run.get("milestones") or []), run]]


def factor_budget_lines(rows):
  """What z^L holds at each budget, factor by factor (`collect_reproduction.factor_gaps`: the exact protocol's gap,
  the unit most informative about the factor and that unit's mutual information): one line per budget that kept
  it; the evaluations recorded before the summary kept it are counted, not listed."""
  kept = [(name, b) for row in rows for name, b in _trainings(row) if b.get("mig_factors_exact")]
  missing = sum(1 for row in rows for _, b in _trainings(row) if not b.get("mig_factors_exact"))
  lines = ["What z^L holds at each budget, factor by factor (the evaluation's exact protocol; each cell: the "
           "factor's gap, normalised as MIG averages it, then the unit most informative about it and that unit's "
           "mutual information with it, nats). MIG is the mean of the gaps: a factor held by one unit alone has a "
           "gap near its MI over its entropy; one split over two units, or absent, a gap near 0.", ""]
  if not kept:
    return lines + [f"No evaluation in the summary keeps it yet ({missing} recorded before it was kept; "
                    "`layer_mig/` has every layer at the last budget of the runs it scored).", ""]
  names = list(kept[0][1]["mig_factors_exact"])
  lines += ["| run | epochs | " + " | ".join(f"{n}: gap (unit, MI nats)" for n in names) + " |",
            "|---" * (2 + len(names)) + "|"]
  for name, budget in kept:
    factors = budget["mig_factors_exact"]
    cells = [f"{factors[n]['gap']:.3f} (u{factors[n]['unit']}, {factors[n]['mi']:.2f})" if n in factors else "—"
             for n in names]
    lines.append(f"| {name} | {_ep(budget.get('epochs'))} | " + " | ".join(cells) + " |")
  if missing:
    lines += ["", f"({missing} evaluation{'s' if missing != 1 else ''} recorded before the summary kept this: "
              "not listed.)"]
  return lines + [""]


ELBO_FROM_EPOCH = 1.5  # the training figures' ELBO axes start from the lowest value after this many epochs: the
# first epoch's (−400 and below) would flatten the rest


def _training_curve(run, key):
  """(epochs, values) of one per-epoch training curve of a summary row or earlier run (`run["training"]`), the
  epochs the run's own (images over its images per epoch); None when the run has no such curve."""
  h = run.get("training")
  if not h or not run.get("images_seen") or not run.get("epochs"):
    return None
  epochs = np.asarray(h.get("images", []), np.float64) * run["epochs"] / run["images_seen"]
  values = np.asarray([np.nan if v is None else v for v in h.get(key, [])], np.float64)
  return (epochs, values) if len(values) == len(epochs) and len(epochs) else None


def _drawn_trainings(row):
  """(run, alpha, label suffix) of every training of a summary row as the training figures draw them: its earlier
  trainings (trained again from step 0 since) faint, then its own."""
  return [(e, 0.3, " (earlier training)") for e in row.get("earlier_runs") or []] + [(row, 1.0, "")]


def _elbo_range(epochs, values):
  """(lowest, highest) finite ELBO from `ELBO_FROM_EPOCH` on, () when there is none."""
  late = values[epochs >= ELBO_FROM_EPOCH]
  return (np.nanmin(late), np.nanmax(late)) if np.any(np.isfinite(late)) else ()


def plot_training(runs, path):
  """The per-epoch training KL of z^L and ELBO of the L = 2 runs, one column per family, colour by beta; a cell's
  earlier trainings (trained again from step 0 since) in the same colour, faint."""
  rows = [r for r in _j2_rows(runs)
          if r.get("training") or any(e.get("training") for e in r.get("earlier_runs") or [])]
  if not rows:
    return False
  plt = plotting.pyplot()
  fig, axes = plt.subplots(2, len(J2_FAMILIES), figsize=(11, 6.4), sharex=True, sharey="row", squeeze=False)
  betas = sorted({r["beta"] for r in rows})
  colours = plt.get_cmap("viridis")(np.linspace(0, 0.9, max(len(betas), 1)))
  styles = ("-", "--", ":", "-.")
  elbo_floor = []  # each curve's lowest training ELBO from ELBO_FROM_EPOCH on
  for column, model in enumerate(J2_FAMILIES):
    for row in (r for r in rows if r["model"] == model):
      colour = colours[betas.index(row["beta"])]
      for run, alpha, suffix in _drawn_trainings(row):
        label = f"β = {row['beta']:g}, seed {row['seed']}{suffix}"
        for axis_row, key in enumerate((f"kl_{row['layers']}", "elbo")):
          curve = _training_curve(run, key)
          if curve:
            axes[axis_row, column].plot(*curve, styles[row["seed"] % len(styles)], color=colour, alpha=alpha,
                                        label=label)
            if key == "elbo":
              elbo_floor.extend(_elbo_range(*curve)[:1])
    axes[0, column].set_title(f"{cell_label(model, 2)}: KL of z^L (training batches, nats)")
    axes[1, column].set_title(f"{cell_label(model, 2)}: training ELBO")
    axes[1, column].set_xlabel("epochs")
    if axes[0, column].get_lines():  # a family with no L = 2 run yet has nothing to name
      axes[0, column].legend(fontsize=7)
  if elbo_floor:
    axes[1, 0].set_ylim(bottom=min(elbo_floor) - 5.0)
  plotting.save(fig, path)
  plt.close(fig)
  return True


def plot_seed_training(runs, path):
  """The per-epoch training ELBO of every cell with more than one seed, a panel per cell and a line per seed (a
  seed's earlier trainings, trained again from step 0 since, faint): whether a cell's seeds train alike, or one
  sits on a plateau the others leave, which its held-out numbers alone do not show. False when no cell has two
  seeds with curves."""
  cells = {}
  for row, _ in runs:
    if _training_curve(row, "elbo"):
      cells.setdefault((row["model"], row["layers"], row["beta"], _budget(row)), []).append(row)
  cells = {k: sorted(v, key=lambda r: r["seed"]) for k, v in sorted(cells.items(), key=lambda kv: (
      list(NAMES).index(kv[0][0]), kv[0][1:])) if len({r["seed"] for r in v}) > 1}
  if not cells:
    return False
  plt = plotting.pyplot()
  columns = min(4, len(cells))
  rows = -(-len(cells) // columns)
  fig, axes = plt.subplots(rows, columns, figsize=(3.6 * columns, 3.2 * rows), sharex=True, sharey=True,
                           squeeze=False)
  colours = plt.get_cmap("tab10")
  low, high = [], []  # one ELBO axis for every panel, so that cells compare at a glance
  for axis, ((model, layers, beta, epochs), cell_rows) in zip(axes.flat, cells.items()):
    for row in cell_rows:
      for run, alpha, suffix in _drawn_trainings(row):
        curve = _training_curve(run, "elbo")
        if curve:
          axis.plot(*curve, color=colours(row["seed"] % 10), alpha=alpha, label=f"seed {row['seed']}{suffix}")
          bounds = _elbo_range(*curve)
          if bounds:
            low.append(bounds[0])
            high.append(bounds[1])
    axis.set_title(f"{cell_label(model, layers)}, β = {beta:g} ({_ep(epochs)} ep)", fontsize=9)
    axis.set_xlabel("epochs")
    axis.legend(fontsize=7)
  if low:
    axes[0, 0].set_ylim(min(low) - 5.0, max(high) + 5.0)
  for axis in axes.flat[len(cells):]:
    axis.set_visible(False)
  for axis in axes[:, 0]:
    axis.set_ylabel("training ELBO (nats)")
  plotting.save(fig, path)
  plt.close(fig)
  return True


def figure3_section(runs):
  lines = ["## Figure 3: held-out ELBO without β against β", "",
           "Mean ± sample sd over seeds; the change from β = 1 is paired by seed and budget (a cell's seeds "
           "against the same seeds' β = 1 runs evaluated at the same number of epochs, a milestone included; none "
           "where β = 1 has no evaluation at that budget, which the cell then says). The β-TCVAE's β = 1 is the "
           "vanilla VAE: its loss is the β-TCVAE's at β = 1 (analytic KL, no free bits).", "",
           "| model | β | ELBO | change from β = 1 |", "|---|---|---|---|"]
  note = mixed_budget_note(_figure3_rows(runs))
  if note:
    lines[2:2] = [note, ""]
  found = False
  for model, layers in FIGURE3:
    rows = _figure3_family(runs, model, layers)
    reference = {(r["seed"], _budget(b)): b["elbo"] for r in rows if r["beta"] == 1.0
                 for b in [*(r.get("milestones") or []), r] if b.get("elbo") is not None}
    for beta in sorted({r["beta"] for r in rows}):
      cell = [r for r in rows if r["beta"] == beta]
      change = [r["elbo"] - reference[(r["seed"], _budget(r))] for r in cell if (r["seed"], _budget(r)) in reference]
      seeds = {r["seed"] for r in cell}
      elsewhere = sorted({budget for seed, budget in reference if seed in seeds})  # β = 1's budgets for them
      if beta == 1.0:
        change_text = "0"
      elif change or not elsewhere:
        change_text = seed_stats.format_mean_sd(change, ".2f")
      else:
        change_text = f"— (β = 1 evaluated at {'/'.join(_ep(e) for e in elsewhere)} ep only)"
      stand_in = " (the vanilla VAE)" if all(r["model"] != model for r in cell) else ""
      lines.append(f"| {cell_label(model, layers)}{stand_in} | {beta:g} | "
                   f"{_at_budget(seed_stats.format_mean_sd([r['elbo'] for r in cell], '.2f'), cell, bool(note))} | "
                   f"{change_text} |")
      found = True
  return lines + ([""] if found else ["", "No run of these families has been evaluated yet.", ""])


def attack_label(model, mode, layers, draws, driver=collect_reproduction.DRIVER_VERSION):
  """The attack column of Section 5: "output"; "latent" for the paper's latent attack of the family, named where it
  is not on every layer (the beta-TC DLGM's, eq. 14); a latent attack other than the paper's named as such; an
  output attack whose objective used fewer noise draws than the protocol's (`draws`: the run's
  `collect_reproduction.output_draws`) named as out of date (it fits its one draw: docs/REPRODUCTION.md); either
  attack made by an older batched driver (`driver`: the run's `collect_reproduction.attack_driver`) named as out of
  date too (the campaign attacks such a run again)."""
  if mode != "latent":
    label = mode
    if draws != collect_reproduction.OBJECTIVE_DRAWS:
      label = (f"output, objective on {draws} noise draw{'s' if draws > 1 else ''}; out of date (the protocol's: "
               f"{collect_reproduction.OBJECTIVE_DRAWS})")
  else:
    paper = collect_reproduction.paper_latent_layers(model)
    if layers != paper:
      label = f"latent, {LAYER_SETS[layers]}; the paper's for this family: {LAYER_SETS[paper]}"
    else:
      label = "latent" if layers == "all" else f"latent, {LAYER_SETS[layers]}"
  if driver != collect_reproduction.DRIVER_VERSION:
    label += f"; by attack driver {driver}, out of date (current: {collect_reproduction.DRIVER_VERSION})"
  return label


def attack_mode(label):
  """The attack ("latent" or "output") an `attack_label` names."""
  return label.replace(";", ",").split(",")[0]


def is_current(label):
  """Whether the sweep of an attack `label` is current, not out of date (an older attack driver, an output
  objective on another number of noise draws than the protocol's): only current sweeps are compared with other
  cells (the VAE's and the `paired_references`)."""
  return "out of date" not in label


def attack_cells(runs):
  """{(model, layers, beta): {attack label: groups}} with groups a list per seed of a list per pair of records (the
  attacks the summary reports: `collect_reproduction.chosen_records`), each with its `excess` over its target's
  floor and the `floor`'s source (`scores.excess_over_floor`; an output attack without the target's own score
  reads its floors from the run's latent attack), and, where the floor is the target's own, the `approximate`
  excess the records would give without it (`floor_check`); seeds attacked with different latent layer sets are
  kept apart."""
  out = {}
  for row, records in runs:
    latent = [r for r in records if r["mode"] == "latent"]
    for mode in ATTACKS:
      part = [r for r in records if r["mode"] == mode]
      if not part:
        continue
      label = attack_label(row["model"], mode, part[0]["layers"], collect_reproduction.output_draws(row),
                           collect_reproduction.attack_driver(row))
      excess, floor = scores.excess_over_floor(part, latent)
      approximate = [None] * len(part)
      if floor == "own":  # what the approximation (a sweep without the own score) gives on the same records
        approximate = scores.excess_over_floor(_without_own(part), _without_own(latent))[0] or approximate
      part = [dict(r, excess=e, floor=floor, approximate=a, seed=row["seed"])
              for r, e, a in zip(part, excess or [None] * len(part), approximate)]
      pairs = [[r for r in part if r["pair"] == p] for p in sorted({r["pair"] for r in part})]
      out.setdefault((row["model"], row["layers"], row["beta"]), {}).setdefault(label, []).append(pairs)
  return dict(sorted(out.items()))


def _without_own(records):
  """Copies of `records` without the target's own score, as a sweep from before it was kept."""
  return [{k: v for k, v in r.items() if k != "target_own_nll"} for r in records]


def separation(cell, vae):
  """A cell's (median, low, high) against the VAE's: "harder" (its interval entirely above), "easier" (entirely
  below) or "not separated"."""
  return "harder" if cell[1] > vae[2] else "easier" if cell[2] < vae[1] else "not separated"


def robustness_section(runs, rng):
  """(Section 5's lines, stats per cell and attack, the `attack_cells` they were computed from)."""
  cells = attack_cells(runs)
  budgets = {}  # (model, layers, beta) -> the budgets of its attacked runs: a verdict pools one budget only
  for row, records in runs:
    if records:
      budgets.setdefault((row["model"], row["layers"], row["beta"]), set()).add(_budget(row))
  lines = ["## Section 5: attacks", "",
           "Medians over seeds × pairs × λ with a 95% interval from a hierarchical bootstrap (seeds, then pairs "
           "within each). Δ is the attack's final objective; −log p(x^t|z̃), z̃ ~ q(z|x*), is how badly the "
           "adversarial input's posterior explains the target: higher, a more robust model. The latent attack is "
           "the paper's for each family: on every layer (eq. 15; the VAE's and β-TCVAE's one layer), on z¹ alone for "
           "the β-TC DLGM (eq. 14: its decoder sees only z¹); Δ of attacks on different layer sets are different "
           "objectives, −log p(x^t|z̃) compares across them. The output attack's objective averages −ELBO over "
           f"{collect_reproduction.OBJECTIVE_DRAWS} fixed noise draws; sweeps made with one draw (it fits that draw: "
           "docs/REPRODUCTION.md), and sweeps by an older attack driver than the current "
           f"({collect_reproduction.DRIVER_VERSION}), are shown as out of date and compared with nothing. Against "
           "the VAE: the cell's −log p(x^t|z̃) interval entirely above the VAE's (harder to attack), entirely below "
           "(easier), or overlapping; judged once both cells have three seeds, all trained for one budget.", "",
           "−log p(x^t|z̃) has a floor that is each model's own: the target's own −log p(x^t|z̃), z̃ ~ q(z|x^t), which "
           "it reaches where the attack succeeds exactly (the latent attack at the smallest λ). A model that "
           "reconstructs its targets badly scores high however easily it is attacked. The excess over the floor "
           "takes that out: −log p(x^t|z̃) less its pair's floor, the median of the target's own over the pair's "
           "records. Sweeps that did not record the target's own (before 2026-12-04), marked ≈, take each pair's "
           f"median −log p(x^t|z̃) at the latent attack's {scores.FLOOR_LAMBDAS} smallest λ instead "
           "(`seatbelt_tf.scores`: checked against the own score on a β-TCVAE, 7.33 against 7.30 for the latent "
           "attack and 1.99 against 1.81 for the output attack): the output attack, which ends below the floor at "
           "its own small λ, reads its floors from the same sweep's latent attack (the same pairs). Against the "
           "VAE, the same judgement on the excess follows the semicolon.", ""]
  if not cells:
    return lines + ["No run has been attacked yet.", ""], {}, cells
  stats = {}
  for key, modes in cells.items():
    for mode, groups in modes.items():
      stats[key + (mode,)] = {k: seed_stats.median_interval(groups, k, rng) for k in ("objective", "target_nll")}
      # (its own draws per cell: the other columns' intervals stay as they were before it was added, and a cell's
      # does not move when cells are added)
      excess, approximate = excess_interval(groups, seed_stats.keyed_rng("excess", *key, mode))
      stats[key + (mode,)].update(excess=excess, seeds=len(groups), approximate_floor=approximate)
  lines += ["| model | β | attack | seeds | median Δ [95%] | median −log p(x^t\\|z̃) [95%] | median excess over the "
            "floor [95%] | against the VAE (−log p; excess) |", "|---|---|---|---|---|---|---|---|"]
  for (model, layers, beta, mode), s in stats.items():
    vae = stats.get(("vae", 1, 1.0, attack_mode(mode)))
    if not is_current(mode):
      against = "— (out of date)"
    elif model == "vae" or vae is None:
      against = "—"
    elif min(s["seeds"], vae["seeds"]) < SEEDS_NEEDED:
      against = f"pending ({min(s['seeds'], vae['seeds'])} of {SEEDS_NEEDED} seeds)"
    elif len(pooled := budgets.get((model, layers, beta), set()) | budgets.get(("vae", 1, 1.0), set())) > 1:
      against = f"pending (runs at different budgets: {'/'.join(_ep(e) for e in sorted(pooled))} ep)"
    else:
      against = "; ".join(separation(s[k], vae[k]) if s[k] and vae[k] else "—" for k in ("target_nll", "excess"))
    lines.append(f"| {cell_label(model, layers)} | {beta:g} | {mode} | {s['seeds']} | "
                 + " | ".join(interval_text(s[k]) for k in ("objective", "target_nll"))
                 + f" | {excess_text(s['excess'], s['approximate_floor'])} | {against} |")
  return lines + [""] + per_seed_section(cells) + paired_section(cells) + floor_check(cells), stats, cells


def excess_interval(groups, rng):
  """(the median excess over the floor pooled over `groups` with its interval, `seed_stats.median_interval`'s
  (median, low, high), or None where a record has no floor; whether any record's floor is approximate)."""
  records = [r for seed in groups for pair in seed for r in pair]
  recorded = all(r["floor"] is not None for r in records)
  return (seed_stats.median_interval(groups, "excess", rng) if recorded else None,
          any(r["floor"] == "smallest_lambda" for r in records))


def interval_text(interval):
  """A (median, low, high) as the tables show it."""
  return "{:.4g} [{:.4g}, {:.4g}]".format(*interval)


def excess_text(interval, approximate):
  """An `excess_interval` as the tables show it: marked ≈ where a floor is approximate."""
  return ("≈ " if approximate else "") + interval_text(interval) if interval else "— (not recorded)"


def per_seed_section(cells):
  """Lines: each current attack cell with more than one seed, seed by seed: the medians of −log p(x^t|z~) and of
  the excess over the floor with 95% intervals over that seed's pairs (`seed_stats.median_interval` on one seed),
  so that the pooled row's interval can be read against its seeds (a seed far from the others widens it)."""
  rows = []
  for key, modes in cells.items():
    for label, groups in modes.items():
      if not is_current(label) or len(groups) < 2:
        continue
      for groups_of_seed in groups:
        seed = groups_of_seed[0][0]["seed"]
        nll = seed_stats.median_interval([groups_of_seed], "target_nll",
                                         seed_stats.keyed_rng("per_seed", *key, label, seed, "target_nll"))
        excess = excess_interval([groups_of_seed], seed_stats.keyed_rng("per_seed", *key, label, seed, "excess"))
        rows.append(f"| {cell_label(key[0], key[1])} | {key[2]:g} | {label} | {seed} | {interval_text(nll)} | "
                    f"{excess_text(*excess)} |")
  if not rows:
    return []
  return ["Seed by seed, for the cells with more than one: the medians over that seed's pairs × λ, with a 95% "
          "interval from the bootstrap over its pairs (the pooled rows above resample the seeds too).", "",
          "| model | β | attack | seed | median −log p(x^t\\|z̃) [95%] | median excess over the floor [95%] |",
          "|---|---|---|---|---|---|", *rows, ""]


RISE_LOG2 = (-3.0, 10.0)  # log2 lambda where the excess curves rise (docs/REPRODUCTION.md, seed 0 at 31 epochs)


def _approximate_excess(record):
  """A record's excess over the approximate floor (its own `excess` where that is already approximate)."""
  return record["approximate"] if record["floor"] == "own" else record["excess"]


def paired_differences(cell, other):
  """A list per seed of a list per pair of {"difference": cell's excess - the other cell's}
  (`seed_stats.median_interval`'s groups), one per problem both sweeps attacked (same seed, pair and lambda) with
  log2 lambda in RISE_LOG2, each excess over the approximate floor so that the two are alike."""
  def problems(groups):
    out = {}
    for seed in groups:
      for pair in seed:
        for r in pair:
          excess = _approximate_excess(r)
          if excess is not None and RISE_LOG2[0] <= np.log2(r["lambda"]) < RISE_LOG2[1]:
            out[r["seed"], r["pair"], r["lambda"]] = excess
    return out
  ours, theirs = problems(cell), problems(other)
  out = {}
  for seed, pair, lam in sorted(set(ours) & set(theirs)):
    difference = ours[seed, pair, lam] - theirs[seed, pair, lam]
    out.setdefault(seed, {}).setdefault(pair, []).append({"difference": difference})
  return [list(pairs.values()) for pairs in out.values()]


def paired_references(key):
  """The cells (model, layers, beta) that the cell `key` is compared with problem by problem, each with the
  paper's claim (Section 5) the comparison bears on: every cell against the vanilla VAE (beta-TCVAEs and
  Seatbelt-VAEs harder to attack than it; beta-TC DLGMs very sensitive to the latent attack); a hierarchy also
  against the beta-TCVAE of its beta, the one-layer model whose penalty its top layer carries; and a Seatbelt-VAE
  against the beta-TC DLGM of its L and beta, the model it changes (its decoder sees every layer: the paper's
  protection against latent attacks)."""
  model, layers, beta = key
  if model == "vae":
    return []
  out = [("vae", 1, 1.0)]
  if model in ("beta_tcdlgm", "seatbelt"):
    out.append(("beta_tcvae", 1, beta))
  if model == "seatbelt":
    out.append(("beta_tcdlgm", layers, beta))
  return out


def _reference_label(modes, mode):
  """The label of a reference cell's sweep that `mode` ("latent" or "output") is compared with: a current one, the
  paper's latent attack for the family where the cell has others too; None if the cell has no current sweep of
  that attack."""
  current = [name for name in modes if attack_mode(name) == mode and is_current(name)]
  paper = [name for name in current if "the paper's for this family" not in name]
  return (paper or current or [None])[0]


def _rng_key(key, label, reference):
  """The bootstrap's key of one comparison (against the VAE as before the other references were added, so its
  intervals did not move)."""
  return (*key, label) if reference == ("vae", 1, 1.0) else (*key, label, *reference)


def paired_section(cells):
  """Lines: each current attack cell's excess over the floor against each of its `paired_references` present in
  `cells`, problem by problem where the curves rise (`paired_differences`): the median difference with a 95%
  interval from the hierarchical bootstrap of the section's other intervals (seeds, then pairs), and the share of
  problems where the cell's excess is the larger."""
  rows = []
  for key, modes in cells.items():
    for reference in paired_references(key):
      if reference not in cells:
        continue
      for label, groups in modes.items():
        other = _reference_label(cells[reference], attack_mode(label))
        if not is_current(label) or other is None:
          continue
        differences = paired_differences(groups, cells[reference][other])
        if not differences:
          continue
        median, low, high = seed_stats.median_interval(
            differences, "difference", seed_stats.keyed_rng("paired", *_rng_key(key, label, reference)))
        diffs = np.array([r["difference"] for seed in differences for pair in seed for r in pair])
        name = cell_label(*reference[:2]) + ("" if reference[0] == "vae" else f", β = {reference[2]:g}")
        rows.append(f"| {cell_label(key[0], key[1])} | {key[2]:g} | {label} | {name} | {len(diffs)} | "
                    f"{median:.3g} [{low:.3g}, {high:.3g}] | {np.mean(diffs > 0):.0%} |")
  if not rows:
    return []
  lo, hi = RISE_LOG2
  return [f"Problem by problem, where the curves rise (2^{lo:g} ≤ λ < 2^{hi:g}): the sweeps of one seed attack the "
          "same pairs at the same λ, so a cell's excess over the floor is compared with another cell's on the same "
          "(seed, pair, λ), both over the approximate floor (≈) so that they are alike. Every cell is compared "
          "with the VAE; a hierarchy also with the β-TCVAE of its β, and a Seatbelt-VAE with the β-TC DLGM of its "
          "L and β (the paper's claims: `paired_references`); the other cell's sweep is its paper's latent attack. "
          "Below that range every cell sits at its floor, above it the attack cannot move the input (and a model "
          "whose posteriors of different images are closer scores lower), so medians pooled over the whole grid "
          "can hide the difference. Interval: the hierarchical bootstrap above (seeds, then pairs).", "",
          "| model | β | attack | against | problems | median excess − the other's [95%] | cell's excess the "
          "larger on |", "|---|---|---|---|---|---|---|", *rows, ""]


def floor_check(cells):
  """Lines that check the approximate floor (each pair's median at the latent attack's smallest lambdas) against
  the target's own -log p(x^t|z~), on every seed whose sweep records the latter (a cell's older seeds may not:
  their excess is the approximate one, and its later seeds' sweeps say how far that reads from the exact): the
  median excess both ways over those seeds."""
  rows = []
  for (model, layers, beta), modes in cells.items():
    for mode, groups in modes.items():
      checked = [[r for pair in seed for r in pair] for seed in groups]
      checked = [seed for seed in checked if all(r["floor"] == "own" and r["approximate"] is not None
                                                 for r in seed)]
      if not checked:
        continue
      records = [r for seed in checked for r in seed]
      exact = float(np.median([r["excess"] for r in records]))
      approx = float(np.median([r["approximate"] for r in records]))
      seeds_checked = ", ".join(str(seed[0]["seed"]) for seed in checked)
      rows.append(f"| {cell_label(model, layers)} | {beta:g} | {mode} | {seeds_checked} | {exact:.4g} | "
                  f"{approx:.4g} | {approx - exact:+.3g} |")
  intro = ("The approximate floor (≈: each pair's median −log p(x^t|z̃) at the latent attack's "
           f"{scores.FLOOR_LAMBDAS} smallest λ, for sweeps from before the target's own was kept; the output "
           "attack reads its floors from the same sweep's latent attack) checked on the seeds whose sweeps record "
           "the target's own: the median excess both ways over those seeds.")
  lines = ([intro + " No sweep records it yet.", ""] if not rows else
           [intro, "", "| model | β | attack | seeds checked | median excess, exact | median excess, ≈ | "
            "≈ − exact |", "|---|---|---|---|---|---|---|", *rows, ""])
  return lines + floor_bounds(cells)


def floor_bounds(cells):
  """Lines that check each approximate floor from its own sweep: the largest latent Δ at the λ it was read at, a
  bound on KL(q(z|x*) || q(z|x^t)) there (`scores.floor_kl_bound`), per seed."""
  rows = []
  for (model, layers, beta), modes in cells.items():
    for mode, groups in modes.items():
      if attack_mode(mode) != "latent":
        continue
      bounds = [scores.floor_kl_bound([r for pair in seed for r in pair]) for seed in groups
                if any(r["floor"] == "smallest_lambda" for pair in seed for r in pair)]
      if bounds:
        verdict = ("the target's own posterior: ≈ is the target's own score" if max(bounds) <= scores.FLOOR_KL_TOLERANCE
                   else "not matched: ≈ may sit above the floor")
        rows.append(f"| {cell_label(model, layers)} | {beta:g} | {mode} | "
                    f"{', '.join(f'{b:.2g}' for b in bounds)} | {verdict} |")
  if not rows:
    return []
  return [f"Each approximate floor from its own sweep: the largest latent Δ at each pair's {scores.FLOOR_LAMBDAS} "
          "smallest λ, where the floor was read. Δ is the KL from q(z|x*) to q(z|x^t) plus λ‖d‖, so it bounds "
          f"that KL; below {scores.FLOOR_KL_TOLERANCE:g} nats the adversarial input's posterior is the target's "
          "there, and −log p(x^t|z̃) is the target's own score up to its noise draws.", "",
          "| model | β | attack | largest Δ at the floor's λ, per seed (nats) | the attack there |",
          "|---|---|---|---|---|", *rows, ""]


def copy_grids(runs, out, root):
  """Shows each attacked cell's attack grids at the displayed lambda (`--mode=attack`'s grid_<mode>_<layers>.png,
  the latent one of the summary's latent layer set) of its lowest seed: copied from the run's workdir under `root`
  into OUT/grids/ when `root` is given, else the copy already in OUT/grids/. Returns the markdown that shows
  them."""
  lowest = {}
  for row, records in runs:
    key = (row["model"], row["layers"], row["beta"])
    if records and (key not in lowest or row["seed"] < lowest[key]["seed"]):
      lowest[key] = row
  lines = []
  for key, row in sorted(lowest.items()):
    for mode in ATTACKS:
      name = f"{row['run']}_{mode}.png"
      target = os.path.join(out, "grids", name)
      layers = (row.get("latent_layers") or "all") if mode == "latent" else "all"
      source = os.path.join(root, row["run"], "attacks", f"grid_{mode}_{layers}.png") if root else None
      if source and os.path.isfile(source):
        io_utils.atomic_copy(source, target)
      if os.path.isfile(target):
        lines.append(f"![{mode} attack grid, {row['run']}](grids/{name})")
  if not lines:
    return []
  return ["## Attack grids at the displayed λ", "",
          "Per attacked cell, its lowest seed: inputs, targets, adversarial inputs and their reconstructions at "
          "each pair's displayed λ (the λ whose objective is just better than the mean over λ; paper Figures "
          "G.8-G.10).", "", *lines, ""]


def plot_mig(runs, path):
  plt = plotting.pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(10, 3.6), sharey=True)
  mixed = mixed_budget_note(_j2_rows(runs))
  for ax, protocol in zip(axes, ("exact", "histogram")):
    for model in J2_FAMILIES:
      rows = [r for r, _ in runs if r["model"] == model and r["layers"] == 2 and r[f"mig_{protocol}"] is not None]
      if not rows:
        continue
      betas = sorted({r["beta"] for r in rows})
      means = [np.mean([r[f"mig_{protocol}"] for r in rows if r["beta"] == b]) for b in betas]
      line, = ax.plot(betas, means, "o-", label=cell_label(model, 2))
      ax.scatter([r["beta"] for r in rows], [r[f"mig_{protocol}"] for r in rows], s=12, alpha=0.5,
                 color=line.get_color())
      ax.plot([1.0], [J2_PAPER_BETA1[model]], "*", ms=11, mfc="none", color=line.get_color(),
              label=f"paper, {cell_label(model, 2)}, β = 1")
    ax.axhspan(0.28, 0.36, color="0.85", zorder=0, label="paper, β = 2..10")
    for i, (beta, (rule, bar)) in enumerate(sorted(J2_BAR.items())):  # ▼: at most; ▲: at least
      ax.plot([beta], [bar], "v" if rule == "<=" else "^", color="k", ms=7, mfc="none",
              label="issue 26's bar (▼ at most, ▲ at least)" if i == 0 else None)
    ax.set_title(f"MIG of z^L ({protocol} protocol)" + (MIXED_TITLE if mixed else ""))
    ax.set_xlabel("β")
  axes[0].set_ylabel("MIG (line: seed mean; dots: seeds)")
  handles, labels = axes[0].get_legend_handles_labels()  # below the panels: inside, it hides the bar's markers
  fig.legend(handles, labels, fontsize=8, ncol=3, loc="upper center", bbox_to_anchor=(0.5, 0.0))
  plotting.save(fig, path)
  plt.close(fig)


def plot_elbo(runs, path):
  plt = plotting.pyplot()
  fig, ax = plt.subplots(figsize=(5.5, 3.6))
  for model, layers in FIGURE3:
    rows = _figure3_family(runs, model, layers)
    if not rows:
      continue
    betas = sorted({r["beta"] for r in rows})
    means = [np.mean([r["elbo"] for r in rows if r["beta"] == b]) for b in betas]
    stand_in = " (β = 1: the vanilla VAE)" if any(r["model"] != model for r in rows) else ""
    line, = ax.plot(betas, means, "o-", label=cell_label(model, layers) + stand_in)
    ax.scatter([r["beta"] for r in rows], [r["elbo"] for r in rows], s=12, alpha=0.5, color=line.get_color())
  ax.set_xlabel("β")
  ax.set_ylabel("held-out ELBO without β")
  mixed = mixed_budget_note(_figure3_rows(runs))
  ax.set_title("Figure 3 (line: seed mean; dots: seeds)" + (MIXED_TITLE if mixed else ""))
  ax.legend(fontsize=8)
  plotting.save(fig, path)
  plt.close(fig)


def _tick_suffix(label):
  """What a label names beyond its attack, under its cell's tick (`attack_label`): a latent attack's layer set
  ("not the paper's" where it is not), "out of date" for an output attack's old objective or an older driver."""
  head, _, notes = label.partition(";")
  what = f"\n{head.split(', ', 1)[1]}" if ", " in head else ""
  if "out of date" in notes:
    return what + "\nout of date"
  return what + ("\nnot the paper's" if notes else "")


def attack_tick(key, stat):
  """One cell's tick under the attack figure: the cell, β, what its label names beyond the attack
  (`_tick_suffix`), how many seeds its intervals pool (cells gain seeds one at a time, so points side by side may
  rest on different numbers) and "(≈ floor)" where its excess is over the approximate floor."""
  model, layers, beta, label = key
  seeds = stat["seeds"]
  return (f"{cell_label(model, layers)}\nβ = {beta:g}" + _tick_suffix(label)
          + f"\n{seeds} seed{'s' if seeds != 1 else ''}" + ("\n(≈ floor)" if stat["approximate_floor"] else ""))


def plot_attacks(stats, path):
  """Per attack (columns), the median −log p(x^t|z̃) (top) and its excess over the floor (bottom) of every cell,
  with their 95% intervals over seeds and pairs; each tick says how many seeds (`attack_tick`)."""
  plt = plotting.pyplot()
  fig, axes = plt.subplots(2, 2, figsize=(11, 7.6), sharex="col")
  for column, mode in enumerate(ATTACKS):
    keys = [k for k in stats if attack_mode(k[3]) == mode]
    positions = np.arange(len(keys))
    for row, (field, title) in enumerate((("target_nll", "median −log p(x^t|z̃)"),
                                          ("excess", "median excess over the floor (≈: approximate)"))):
      ax = axes[row, column]
      values = np.array([stats[k][field] or (np.nan,) * 3 for k in keys], np.float64).reshape(-1, 3)  # —: nan
      if len(keys):
        ax.errorbar(positions, values[:, 0], yerr=[values[:, 0] - values[:, 1], values[:, 2] - values[:, 0]],
                    fmt="o" if row == 0 else "s", capsize=3, color="tab:blue" if row == 0 else "tab:orange")
      if len(keys) and np.isnan(values[:, 0]).all():
        ax.text(0.5, 0.5, "not recorded: these sweeps have neither the target's own score\nnor a latent attack "
                "to read the floor from", transform=ax.transAxes, ha="center", va="center", fontsize=8)
        ax.set_yticks([])
      ax.set_title(f"{mode} attack: {title}", fontsize=9)
    axes[1, column].set_xticks(positions)
    axes[1, column].set_xticklabels([attack_tick(k, stats[k]) for k in keys], rotation=60, fontsize=7,
                                    ha="right")
  plotting.save(fig, path)
  plt.close(fig)


def excess_curves(cells):
  """[(mode, legend name, current?, lambdas, quartiles `[len(lambdas), 3]`)]: per cell and attack with an excess
  over the floor, the 25th, 50th and 75th percentiles of the excess over seeds × pairs at each lambda
  (`scores.excess_quartiles`)."""
  out = []
  for (model, layers, beta), modes in cells.items():
    for label, groups in modes.items():
      records = [r for seed in groups for pair in seed for r in pair]
      if any(r["excess"] is None or "lambda" not in r for r in records):
        continue
      current = is_current(label)
      name = (f"{cell_label(model, layers)}, β = {beta:g}, {len(groups)} seed{'s' if len(groups) > 1 else ''}"
              + (" (≈ floor)" if any(r["floor"] == "smallest_lambda" for r in records) else "")
              + ("" if current else " (out of date)"))
      out.append((attack_mode(label), name, current, *scores.excess_quartiles(records)))
  return out


def plot_attack_curves(cells, path):
  """Per attack (columns), each cell's excess of −log p(x^t|z̃) over its floor against λ (`excess_curves`): the
  median over seeds × pairs at each λ, and the band between the quartiles. Where a curve leaves 0 is how much
  distortion the attack needs to move the posterior; at the largest λ, where no distortion is affordable, it is how
  far the input's posterior is from explaining the target. Out-of-date sweeps are dashed. Returns whether a curve
  was drawn (no file otherwise)."""
  curves = excess_curves(cells)
  if curves:
    plotting.excess_curves_figure(curves, path, ATTACKS)
  return bool(curves)


def layer_mig_section(out):
  """Every layer's MIG of each hierarchy the campaign scored (OUT/layer_mig/*.json); no lines when none was."""
  folder = os.path.join(out, "layer_mig")
  if not os.path.isdir(folder) or not any(n.endswith(".json") for n in os.listdir(folder)):
    return []
  return ["## Where the factors went: MIG of every layer", "",
          "Table J.2 scores z^L alone. Chen et al.'s exact protocol on the full factor grid, per layer (gap: the "
          "normalised difference between the two units most informative about the factor, as MIG averages it; MI: "
          "the best unit's mutual information with the factor; ceiling: the MIG the layer would have if every "
          "factor's second most informative unit held nothing, the mean over the factors of the best unit's MI over "
          "the factor's entropy, an upper bound of its MIG: a layer whose ceiling is under J.2's bar of 0.25 misses "
          "it for how little it holds about the factors, not for how it spreads that over its units). One row per "
          "run, layer and scored checkpoint (`layer_mig/`, `launch/layer_mig.py`).", "", layer_mig.markdown(folder),
          ""]


def main(out, root=None):
  runs = load(out)
  if not runs:
    sys.exit(f"{out}/summary.json lists no run.")
  rng = np.random.default_rng(0)
  robustness, stats, cells = robustness_section(runs, rng)
  seeds = sorted({r["seed"] for r, _ in runs})
  steps = sorted({r["train_steps"] for r, _ in runs})
  epochs = _epochs([r for r, _ in runs])
  lines = ["# Reproduction campaign: tables over seeds", "",
           f"Written by `launch/reproduction_tables.py` from {len(runs)} trained "
           f"run{'s' if len(runs) != 1 else ''} "
           f"(seeds {', '.join(str(s) for s in seeds)}; training steps {', '.join(str(s) for s in steps)}; "
           f"epochs {', '.join(_ep(e) for e in epochs)}). Every run's numbers are in `summary.json`, its attack "
           "records in `attack_records/`.", "",
           *j2_section(runs), *layer_mig_section(out), *budget_section(runs), *units_section(runs),
           *figure3_section(runs), *robustness]
  os.makedirs(out, exist_ok=True)
  plot_mig(runs, os.path.join(out, "mig_vs_beta.png"))
  plot_elbo(runs, os.path.join(out, "elbo_vs_beta.png"))
  lines += ["![MIG against beta](mig_vs_beta.png)", "", "![ELBO against beta](elbo_vs_beta.png)", ""]
  if plot_training(runs, os.path.join(out, "training_top_layer.png")):
    lines += ["![KL of z^L and ELBO during training](training_top_layer.png)", ""]
  if plot_seed_training(runs, os.path.join(out, "training_by_seed.png")):
    lines += ["![training ELBO, seed by seed, of every cell with more than one](training_by_seed.png)", ""]
  if stats:
    plot_attacks(stats, os.path.join(out, "attack_medians.png"))
    lines += ["![attack medians](attack_medians.png)", ""]
    if plot_attack_curves(cells, os.path.join(out, "attack_curves.png")):
      lines += ["![the excess over the floor against lambda](attack_curves.png)", ""]
    lines += copy_grids(runs, out, root)
  io_utils.atomic_write_text(os.path.join(out, "tables.md"), "\n".join(lines))
  print(f"{os.path.join(out, 'tables.md')}: {len(runs)} runs")


if __name__ == "__main__":
  if len(sys.argv) not in (2, 3):
    sys.exit(__doc__)
  try:
    main(*sys.argv[1:])
  except collect_reproduction.UnreadableFileError as e:
    sys.exit(f"error: {e}")
