"""Reports over many runs (--mode=report): the paper's figures and tables regenerated from workdirs.

`write_report(workdirs, out_dir)` reads, from each run workdir, `config.json`, `results.json` (after training),
`evaluation/evaluation.json` and `evaluation/noise.npz` (--mode=evaluate) and `attacks/attack_results.json`
(--mode=attack; and `eps_ball_results.json`, `margin_results.json`, `defence_hmc.json` of the attacks beyond the
paper), whichever exist, and writes to `out_dir`:

  report.md                 tables and the figures below, with what each shows
  elbo_vs_beta.png          held-out ELBO without beta against beta, per model family and depth (Figure 3)
  attack_<mode>_<layers>_bars.png  the median Delta and -log p(x^t|z~) of every run, as bars
  attack_<mode>_<layers>.png  heat maps over beta x L of the same medians, one panel per model family with more
                            than one cell, one colour scale per metric (Figures 6-7)
  mig_vs_latent_dim.png     beta-TCVAE MIG against |z|, per beta (Figure J.35), when runs differ in |z|
  noise_<family>.png        smoothed histograms of log p(x|z*) under input noise, per beta and L (Figure 8)
  grids/                    each run's attack grids (Figure 1)
  eps_ball_<mode>_<layers>.png  median -log p(x^t|z~) against the L2 budget, one line per run (--attack_kind=eps_ball)
  margins.png               median r-robustness margin per run (--attack_kind=margin)
and tables of MIG at z^L (Table J.2) and of the relative change of the encoder and decoder weight norms from the
smallest to the largest beta (Table 1). Runs missing a stage are listed with what they lack; a figure is only drawn
when some run has its data.
"""

import collections
import json
import os

import numpy as np

from seatbelt_tf import io_utils
from seatbelt_tf import scores
from seatbelt_tf.attacks import measures
from seatbelt_tf.evaluation import plots

HIERARCHICAL = ("seatbelt", "beta_tcdlgm")
FAMILY_NAMES = {"vae": "VAE", "beta_tcvae": "β-TCVAE", "beta_tcdlgm": "β-TC DLGM", "seatbelt": "Seatbelt-VAE"}


def find_runs(paths):
  """Run workdirs (folders with config.json) among `paths`, each a run or a folder of runs; sorted, unique."""
  runs = []
  for path in paths:
    if os.path.isfile(os.path.join(path, "config.json")):
      runs.append(os.path.abspath(path))
    elif os.path.isdir(path):
      runs += [os.path.abspath(os.path.join(path, n)) for n in sorted(os.listdir(path))
               if os.path.isfile(os.path.join(path, n, "config.json"))]
    else:
      raise FileNotFoundError(f"--workdirs entry {path} does not exist.")
  runs = sorted(set(runs))
  if not runs:
    raise FileNotFoundError(f"No run workdirs (folders with config.json) in {', '.join(paths)}: pass run workdirs "
                            "or the folders that hold them.")
  return runs


def _read_json(path, default=None):
  if not os.path.isfile(path):
    return default
  with open(path) as f:
    return json.load(f)


def load_run(workdir):
  """Everything a report uses from one workdir (missing stages are None / empty)."""
  config = _read_json(os.path.join(workdir, "config.json"))
  family = config["model"]
  depth = int(config["layers"]) if family in HIERARCHICAL else 1
  noise_path = os.path.join(workdir, "evaluation", "noise.npz")
  noise = None
  if os.path.isfile(noise_path):
    with np.load(noise_path) as f:
      noise = {float(k): f[k] for k in f.files}
  attacks_dir = os.path.join(workdir, "attacks")
  grids = sorted(n for n in os.listdir(attacks_dir) if n.startswith("grid_")) if os.path.isdir(attacks_dir) else []
  return {"name": os.path.basename(workdir), "workdir": workdir, "config": config, "family": family,
          "depth": depth, "beta": float(config["beta"]),
          "latent_dim": int(config["latent_dim"]) if family not in HIERARCHICAL else None,
          "results": _read_json(os.path.join(workdir, "results.json")),
          "evaluation": _read_json(os.path.join(workdir, "evaluation", "evaluation.json")),
          "attacks": _read_json(os.path.join(attacks_dir, "attack_results.json"), []), "noise": noise,
          "eps_ball": _read_json(os.path.join(attacks_dir, "eps_ball_results.json"), []),
          "margins": _read_json(os.path.join(attacks_dir, "margin_results.json"), []),
          "defence": _read_json(os.path.join(attacks_dir, "defence_hmc.json")),
          "grids": [os.path.join(attacks_dir, n) for n in grids]}


def _label(run, with_beta=True):
  parts = [FAMILY_NAMES.get(run["family"], run["family"])]
  if run["family"] in HIERARCHICAL:
    parts.append(f"L={run['depth']}")
  elif run["latent_dim"] is not None:
    parts.append(f"|z|={run['latent_dim']}")
  if with_beta:
    parts.append(f"β={run['beta']:g}")
  return ", ".join(parts)


def attack_medians(records):
  """{(mode, layers): {"delta": median objective, "target_nll": median -log p(x^t|z~), "problems": n, "excess":
  median of -log p(x^t|z~) less its floor, "floor": its source (`seatbelt_tf.scores.excess_over_floor`, an output
  attack without the target's own score reading its floors from the sweep's latent attack; None where there is
  none)}}."""
  out = {}
  for key in sorted({(r["mode"], r["layers"]) for r in records}):
    part = [r for r in records if (r["mode"], r["layers"]) == key]
    excess, floor = scores.median_excess(part, scores.latent_reference(records))
    out[key] = {"delta": float(np.median([r["objective"] for r in part])),
                "target_nll": float(np.median([r["target_nll"] for r in part])), "problems": len(part),
                "excess": excess, "floor": floor}
  return out


def _md(text):
  """Text safe inside a markdown table cell."""
  return str(text).replace("|", "\\|")


def _fmt(value, spec=".3g"):
  return "—" if value is None else format(value, spec)


def write_report(workdirs, out_dir):
  """Writes `out_dir/report.md` and its figures (module docstring); returns a summary dict."""
  runs = [load_run(w) for w in find_runs(workdirs)]
  os.makedirs(out_dir, exist_ok=True)
  lines = ["# seatbelt_tf report", "",
           f"{len(runs)} runs: " + ", ".join(f"`{r['name']}`" for r in runs) + ".", ""]
  lines += _training_length_caveat(runs)
  figures = []
  lines += _runs_table(runs)
  lines += _elbo_section(runs, out_dir, figures)
  lines += _attack_section(runs, out_dir, figures)
  lines += _budget_section(runs, out_dir, figures)
  lines += _margin_section(runs, out_dir, figures)
  lines += _defence_section(runs)
  lines += _mig_section(runs, out_dir, figures)
  lines += _noise_section(runs, out_dir, figures)
  lines += _weight_section(runs)
  lines += _grid_section(runs, out_dir, figures)
  io_utils.atomic_write_text(os.path.join(out_dir, "report.md"), "\n".join(lines).rstrip() + "\n")
  return {"report": os.path.join(out_dir, "report.md"), "runs": len(runs), "figures": figures}


MIN_EPOCHS = 10  # runs that saw fewer epochs of their training split get the caveat line


def _training_length_caveat(runs):
  """A caveat line when some run saw fewer than `MIN_EPOCHS` epochs (from results.json's `epochs`)."""
  short = [(r["name"], r["results"]["epochs"]) for r in runs
           if r["results"] and r["results"].get("epochs") is not None and r["results"]["epochs"] < MIN_EPOCHS]
  if not short:
    return []
  least = min(short, key=lambda item: item[1])
  return [f"> **Caveat: {len(short)} of {len(runs)} runs saw fewer than {MIN_EPOCHS} epochs of their training "
          f"data** (the shortest, `{least[0]}`, {least[1]:.2g} epochs). The paper trains to convergence; numbers "
          "from runs this short describe early training and do not test its claims.", ""]


def _runs_table(runs):
  lines = ["## Runs", "",
           "Held-out ELBO without β: from training (`results.json`, one sample per image from the run's seed "
           "stream) and from the evaluation suite (`evaluation.json`, seeded noise; equal on an export).", "",
           "| run | model | β | steps | ELBO | ELBO (fixed noise) | MIG z^L | evaluated | attacked |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in runs:
    res, ev = r["results"] or {}, r["evaluation"] or {}
    mig = ev.get("mig", {}).get("mig")
    lines.append(f"| `{r['name']}` | {_md(_label(r, False))} | {r['beta']:g} | {res.get('step', '—')} | "
                 f"{_fmt(res.get('elbo'), '.2f')} | {_fmt(ev.get('elbo', {}).get('elbo'), '.2f')} | "
                 f"{_fmt(mig, '.3f')} | {'yes' if r['evaluation'] else 'no'} | {'yes' if r['attacks'] else 'no'} |")
  return lines + [""]


def _elbo_section(runs, out_dir, figures):
  groups = collections.defaultdict(list)
  for r in runs:
    if r["results"]:
      groups[_label(r, False)].append((r["beta"], r["results"]["elbo"]))
  if not groups:
    return []
  plots.lines_by_group(os.path.join(out_dir, "elbo_vs_beta.png"), groups, "β", "held-out ELBO without β (nats)",
                       "ELBO against β (paper Figure 3)", log_x=True)
  figures.append("elbo_vs_beta.png")
  return ["## ELBO against β (Figure 3)", "",
          "The true ELBO (β = 1, no free bits) on the held-out split. The paper's claim: it degrades much less with "
          "β for Seatbelt-VAEs (and β-TC DLGMs) than for β-TCVAEs.", "", "![ELBO against beta](elbo_vs_beta.png)",
          ""]


def _attack_section(runs, out_dir, figures):
  attacked = [r for r in runs if r["attacks"]]
  if not attacked:
    return []
  lines = ["## Adversarial attacks (Figures 5-7)", "",
           "Medians over all pairs × λ of each run's sweep (`--mode=attack`): Δ is the attack's final objective "
           "(lower: a stronger attack, a less robust model); −log p(x^t|z̃), z̃ ~ q(z|x*), is how well the adversarial "
           "input's posterior explains the target (higher: more robust). AUDDC is the median over pairs of the area "
           "under the normalised distortion-distance curve (Gondim-Ribeiro et al. 2018, `attacks.measures`): 1 when "
           "no attack moves the reconstruction towards the target, near 0 when a tiny distortion does.", "",
           "The excess is −log p(x^t|z̃) less its pair's floor, the target's own −log p(x^t|z̃) with z̃ ~ q(z|x^t) "
           "(`seatbelt_tf.scores`): it takes each model's reconstruction quality, which −log p(x^t|z̃) reaches "
           "where the attack succeeds, out of the comparison (≈ for older sweeps: each pair's median at the latent "
           "attack's smallest λ, which an output attack reads its floors from; — where there is none).",
           "",
           "| run | attack | problems | median Δ | median −log p(x^t\\|z̃) | median excess | median AUDDC |",
           "|---|---|---|---|---|---|---|"]
  medians = {r["name"]: attack_medians(r["attacks"]) for r in attacked}
  for r in attacked:
    auddc = measures.auddc_per_pair(r["attacks"])
    for (mode, layers), m in medians[r["name"]].items():
      values = [v for k, v in auddc.items() if k[:2] == (mode, layers)]
      lines.append(f"| `{r['name']}` | {mode} ({layers}) | {m['problems']} | {m['delta']:.4g} | "
                   f"{m['target_nll']:.1f} | {'≈ ' if m['floor'] == 'smallest_lambda' else ''}"
                   f"{_fmt(m['excess'], '.1f')} | "
                   f"{_fmt(float(np.median(values)) if values else None, '.3f')} |")
  lines.append("")
  keys = sorted({k for m in medians.values() for k in m})
  metrics = (("delta", "median Δ"), ("target_nll", "median −log p(x^t|z̃)"))
  for mode, layers in keys:
    part = [r for r in attacked if (mode, layers) in medians[r["name"]]]
    # Every run as bars (one scale per metric); heat maps over beta x L for the families with more than one cell,
    # each metric on one colour scale shared by its panels.
    fname = f"attack_{mode}_{layers}_bars.png"
    plots.bars(os.path.join(out_dir, fname), [_label(r) for r in part],
               [(name, [medians[r["name"]][(mode, layers)][metric] for r in part]) for metric, name in metrics],
               f"{mode} attack ({layers} layers): medians over pairs × λ")
    figures.append(fname)
    lines += [f"![{mode} attack medians]({fname})", ""]
    panels, scales = [], []
    for metric, name in metrics:
      grids = []
      for family in sorted({r["family"] for r in part}):
        members = [r for r in part if r["family"] == family]
        betas = sorted({r["beta"] for r in members})
        depths = sorted({r["depth"] for r in members})
        if len(betas) * len(depths) < 2:
          continue
        grid = np.full((len(betas), len(depths)), np.nan)
        for r in members:
          grid[betas.index(r["beta"]), depths.index(r["depth"])] = medians[r["name"]][(mode, layers)][metric]
        grids.append((f"{FAMILY_NAMES.get(family, family)}: {name}", betas, depths, grid))
      if grids:
        values = np.concatenate([g[3][np.isfinite(g[3])] for g in grids])
        panels += grids
        scales += [(float(values.min()), float(values.max()))] * len(grids)
    if panels:
      fname = f"attack_{mode}_{layers}.png"
      plots.heat_maps(os.path.join(out_dir, fname), panels, "β", "L (stochastic layers)",
                      f"{mode} attack ({layers} layers): medians over pairs × λ (one colour scale per metric)",
                      columns=max(1, len(panels) // 2), scales=scales)
      figures.append(fname)
      lines += [f"![{mode} attack heat maps]({fname})", ""]
  return lines


def _budget_section(runs, out_dir, figures):
  """Fixed-budget attacks (--attack_kind=eps_ball): median -log p(x^t|z~) against the L2 radius, one line per run."""
  attacked = [r for r in runs if r["eps_ball"]]
  if not attacked:
    return []
  lines = ["## Fixed-budget attacks (beyond the paper)", "",
           "Each attack maximises its effect within an L2 ball of radius ε around the input, inside the data range "
           "(`--attack_kind=eps_ball`, PGD with an exact projection): models compared at equal distortion. Lower "
           "−log p(x^t|z̃) at a radius: a stronger attack, a less robust model.", ""]
  for mode, layers in sorted({(rec["mode"], rec["layers"]) for r in attacked for rec in r["eps_ball"]}):
    groups = {}
    for r in attacked:
      part = [rec for rec in r["eps_ball"] if (rec["mode"], rec["layers"]) == (mode, layers)]
      if part:
        adaptive = " (through the HMC defence)" if any(rec.get("defence") == "hmc_adaptive" for rec in part) else ""
        groups[f"{r['name']}{adaptive}"] = [
            (e, float(np.median([rec["target_nll"] for rec in part if rec["epsilon"] == e])))
            for e in sorted({rec["epsilon"] for rec in part})]
    fname = f"eps_ball_{mode}_{layers}.png"
    plots.lines_by_group(os.path.join(out_dir, fname), groups, "L2 budget ε", "median −log p(x^t|z̃)",
                         f"{mode} attack ({layers} layers) at fixed budgets: medians over pairs", log_x=True)
    figures.append(fname)
    lines += [f"![{mode} fixed-budget attack]({fname})", ""]
  return lines


def _margin_section(runs, out_dir, figures):
  """r-robustness margins (--attack_kind=margin): a table and bars of the median margin per run."""
  measured = [r for r in runs if r["margins"]]
  if not measured:
    return []
  summaries = {r["name"]: measures.margin_summary(r["margins"]) for r in measured}
  lines = ["## r-robustness margins (beyond the paper)", "",
           "Per input, the smallest L2 radius at which a max-damage attack moves the mean reconstruction by more "
           "than r (`--attack_kind=margin`; an upper bound, since PGD lower-bounds the damage). Censored inputs were "
           "not moved within the largest radius and count at it. Higher: more robust.", "",
           "| run | r | inputs | median margin | quartiles | censored |", "|---|---|---|---|---|---|"]
  for r in measured:
    m = summaries[r["name"]]
    lines.append(f"| `{r['name']}` | {m['r']:.3g} | {m['inputs']} | {m['median_margin']:.3g} | "
                 f"{m['q1_margin']:.3g} – {m['q3_margin']:.3g} | {m['censored']} |")
  fname = "margins.png"
  plots.bars(os.path.join(out_dir, fname), [_label(r) for r in measured],
             [("median margin (L2)", [summaries[r["name"]]["median_margin"] for r in measured]),
              ("censored inputs", [summaries[r["name"]]["censored"] for r in measured])],
             "r-robustness margins: median over inputs")
  figures.append(fname)
  return lines + ["", f"![r-robustness margins]({fname})", ""]


def _defence_section(runs):
  """The HMC defence (--defence=hmc): -log p(x^t|z) on the same adversarial inputs without and with it."""
  defended = [r for r in runs if r["defence"]]
  if not defended:
    return []
  lines = ["## HMC defence (beyond the paper)", "",
           "The adversarial inputs of each run's attack re-scored with codes refined by HMC targeting p(x*|z) p(z) "
           "(Kuzina et al. 2022, `--defence=hmc`). A positive change means the defence pushed the reconstruction "
           "away from the attacker's target. Non-adaptive rows: the attack did not know about the defence, so they "
           "overstate its protection against an attacker who does.", "",
           "| run | attack | evaluation | median without | median with | median change | acceptance |",
           "|---|---|---|---|---|---|---|"]
  for r in defended:
    for part, m in sorted(r["defence"]["summary"].items()):
      lines.append(f"| `{r['name']}` | {part.replace('_', ' (', 1)}) | "
                   f"{'adaptive' if m['adaptive'] else 'non-adaptive'} | {m['median_target_nll_without']:.1f} | "
                   f"{m['median_target_nll_with']:.1f} | {m['median_change']:+.1f} | {m['mean_acceptance']:.2f} |")
  return lines + [""]


def _mig_section(runs, out_dir, figures):
  scored = [r for r in runs if r["evaluation"] and "mig" in r["evaluation"]]
  if not scored:
    return []
  method = scored[0]["evaluation"]["mig"]["method"]
  betas = sorted({r["beta"] for r in scored})
  lines = ["## MIG at z^L (Table J.2)", "",
           f"Protocol: `{method}` on {scored[0]['evaluation']['mig']['num_points']} points of the factor grid "
           "(`seatbelt_tf.metrics.mig`; per-factor gaps in each run's `evaluation/evaluation.json`).", "",
           "| model | " + " | ".join(f"β={b:g}" for b in betas) + " |", "|---|" + "---|" * len(betas)]
  rows = collections.defaultdict(dict)
  for r in scored:
    rows[_label(r, False)][r["beta"]] = r["evaluation"]["mig"]["mig"]
  for label in sorted(rows):
    lines.append(f"| {_md(label)} | " + " | ".join(_fmt(rows[label].get(b), ".3f") for b in betas) + " |")
  lines.append("")
  tc = [r for r in scored if r["family"] == "beta_tcvae"]
  if len({r["latent_dim"] for r in tc}) > 1:
    groups = collections.defaultdict(list)
    for r in tc:
      groups[f"β={r['beta']:g}"].append((r["latent_dim"], r["evaluation"]["mig"]["mig"]))
    plots.lines_by_group(os.path.join(out_dir, "mig_vs_latent_dim.png"), groups, "|z| (latent units)", "MIG",
                         "β-TCVAE: MIG against |z| (Figure J.35)")
    figures.append("mig_vs_latent_dim.png")
    lines += ["![MIG against |z|](mig_vs_latent_dim.png)", ""]
  return lines


def _noise_section(runs, out_dir, figures):
  noisy = [r for r in runs if r["noise"]]
  if not noisy:
    return []
  lines = ["## Robustness to input noise (Figure 8)", "",
           "log p(x|z*) of clean held-out images with z* ~ q(z|x + s·ε), ε ~ N(0, I), the noisy input clipped to the "
           "data range; smoothed histograms per noise scale. Higher and narrower: a better denoiser.", "",
           "| run | " + " | ".join(f"median, s={s:g}" for s in sorted(noisy[0]["noise"])) + " |",
           "|---|" + "---|" * len(noisy[0]["noise"])]
  for r in noisy:
    lines.append(f"| `{r['name']}` | " + " | ".join(f"{np.median(r['noise'][s]):.1f}"
                                                   for s in sorted(noisy[0]["noise"]) if s in r["noise"]) + " |")
  lines.append("")
  for family in sorted({r["family"] for r in noisy}):
    curves = {_label(r): {s: v for s, v in r["noise"].items() if s > 0}
              for r in sorted(noisy, key=lambda r: (r["depth"], r["beta"])) if r["family"] == family}
    fname = f"noise_{family}.png"
    plots.noise_histograms(os.path.join(out_dir, fname), curves,
                           f"{FAMILY_NAMES.get(family, family)}: log p(x|z*) under input noise")
    figures.append(fname)
    lines += [f"![noise robustness, {family}]({fname})", ""]
  return lines


def _weight_section(runs):
  normed = [r for r in runs if r["evaluation"] and "weight_norms" in r["evaluation"]]
  if not normed:
    return []
  groups = collections.defaultdict(list)
  for r in normed:
    groups[_label(r, False)].append(r)
  lines = ["## Weight norms (Table 1)", "",
           "L2 norm of the encoder's and decoder's kernels (biases and BatchNorm excluded), and their relative change "
           "from the smallest to the largest β of each model. The paper: the encoder norm grows and the decoder norm "
           "shrinks with β.", "", "| model | β | encoder L2 | decoder L2 | encoder change | decoder change |",
           "|---|---|---|---|---|---|"]
  for label in sorted(groups):
    members = sorted(groups[label], key=lambda r: r["beta"])
    lo = members[0]["evaluation"]["weight_norms"]
    for r in members:
      w = r["evaluation"]["weight_norms"]
      change = ("", "") if r is members[0] else tuple(f"{100 * (w[k] - lo[k]) / lo[k]:+.1f}%"
                                                       for k in ("encoder", "decoder"))
      lines.append(f"| {_md(label)} | {r['beta']:g} | {w['encoder']:.2f} | {w['decoder']:.2f} | {change[0]} | "
                   f"{change[1]} |")
  return lines + [""]


def _grid_section(runs, out_dir, figures):
  shown = [(r, g) for r in runs for g in r["grids"]]
  if not shown:
    return []
  lines = ["## Attack grids (Figure 1)", "",
           "Per run and attack, each pair at its displayed λ (the first whose objective beats the mean over λ): "
           "input, target, distortion, adversarial input, its reconstruction.", ""]
  for r, path in shown:
    fname = os.path.join("grids", f"{r['name']}_{os.path.basename(path)[len('grid_'):]}")
    os.makedirs(os.path.join(out_dir, "grids"), exist_ok=True)
    io_utils.atomic_copy(path, os.path.join(out_dir, fname))
    figures.append(fname)
    lines += [f"**{_label(r)}** ({os.path.basename(path)[len('grid_'):-4].replace('_', ' ')} attack)", "",
              f"![attack grid {r['name']}]({fname})", ""]
  return lines
