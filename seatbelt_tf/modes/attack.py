"""--mode=attack: the paper's attack protocol (or a fixed-budget attack, or r-robustness margins, optionally with
the HMC defence) on the latest checkpoint or an export, into <workdir>/attacks/."""

import os
import time

import numpy as np
import tensorflow as tf

from seatbelt_tf import attacks as attacks_lib
from seatbelt_tf import io_utils
from seatbelt_tf import runs
from seatbelt_tf import scores
from seatbelt_tf.attacks import budget
from seatbelt_tf.attacks import defence
from seatbelt_tf.attacks import lbfgs
from seatbelt_tf.attacks import measures
from seatbelt_tf.attacks import plots


def attack(config):
  """Attacks the workdir's latest checkpoint (or, with --saved_model, an export); writes `<workdir>/attacks/`.

  `--attack_kind=lambda_sweep` (default) runs the paper's protocol as below; `eps_ball` runs fixed-budget PGD
  attacks at each L2 radius (`attacks.budget`) into `eps_ball_results.json`, `eps_ball_inputs.npz` and
  `eps_ball_<mode>_<layers>.png` (-log p(x^t|z~) against the radius); `margin` estimates r-robustness margins of
  the pairs' inputs (`attacks.measures`) into `margin_results.json` and `margins.png`. With `--defence=hmc` the
  adversarial inputs of the sweep or of the fixed-budget attack are re-scored through the HMC defence
  (`attacks.defence`) into `defence_hmc.json`.

  Pairs are drawn from the held-out split, or, with --attack_vary, from the factor grid as pairs that differ only in
  that factor (`attacks.choose_factor_pairs`). For each attack mode (and, for latent attacks, each layer set) all
  pairs x lambdas run as one batch of problems (`seatbelt_tf.attacks.run_attack`). Writes, atomically,
  `attacks/attack_results.json` (a list of records, `attacks.ATTACK_RECORD_KEYS` plus `display` and
  `evaluations`) and `attacks/adversarial_inputs.npz` (`inputs`, `targets`, `distortions`, `adversarial`,
  indexed like the records), and returns a summary: the median objective and -log p(x^t|z~) per mode and layer set.
  """
  start = time.time()
  if config.export.saved_model:  # an export: the same callables from its signatures, no checkpoint needed
    config, source, fns, run = runs.open_export(config)
    step, title = fns.card.get("step", 0), f"{fns.card.get('model_family', fns.card['model'])} (SavedModel)"
  else:
    config, source, model = runs.open_trained_run(config)
    fns = attacks_lib.ModelFns(model)
    step, title, run = int(model.optimizer.iterations.numpy()), runs.run_title(config), {}
  a = config.attack
  candidates = runs.heldout_indices(config, source, run)
  if a.attack_vary:  # single-factor attack (Appendix H.1)
    fixed = {k: int(v) for k, v in (item.split("=", 1) for item in a.attack_fix)}
    pairs = attacks_lib.choose_factor_pairs(source, a.attack_vary, fixed, a.attack_pairs, a.attack_seed)
  else:
    pairs = attacks_lib.choose_pairs(candidates, a.attack_pairs, a.attack_seed)
  lambdas = attacks_lib.lambda_grid(a.attack_lambdas)
  out = os.path.join(config.workdir, "attacks")
  if a.attack_kind == "margin":
    return _margins(config, fns, source, pairs, title, step, start)
  parts = [(mode, layers) for mode in a.attack_modes for layers in (a.attack_layers if mode == "latent" else ("all",))]
  if a.attack_kind == "eps_ball":
    records, arrays = _eps_ball(config, fns, source, pairs, parts)
    names = ("eps_ball_results.json", "eps_ball_inputs.npz", "eps_ball_")
  elif a.attack_merge:  # the shards' outputs (--attack_shards) -> one sweep, as one process would have written it
    shard_dirs = [os.path.join(out, "shards", f"{i}_of_{a.attack_shards}") for i in range(a.attack_shards)]
    records, arrays = attacks_lib.merge_shards(shard_dirs, parts, len(pairs))
    names = ("attack_results.json", "adversarial_inputs.npz", "")
  else:
    ids = np.arange(len(pairs))[a.attack_shard_index::a.attack_shards]  # this process's share of the pairs
    records, arrays = [], {"inputs": [], "targets": [], "distortions": [], "adversarial": []}
    inputs, targets = source.tf_images(pairs[ids, 0]).numpy(), source.tf_images(pairs[ids, 1]).numpy()
    backend = f", {lbfgs.resolve_backend(a.attack_backend)} backend" if a.attack_optimizer == "lbfgs" else ""
    for mode, layers in parts:
      shard = f" (shard {a.attack_shard_index} of {a.attack_shards})" if a.attack_shards > 1 else ""
      print(f"Attacking: {mode} attack on layers {layers}, {len(ids)} pairs x {len(lambdas)} lambdas{shard} "
            f"({a.attack_optimizer}{backend}, starts {', '.join(a.attack_starts)}"
            f"{f', objective over {a.attack_objective_draws} noise draws' if mode == 'output' else ''})...")
      part, part_arrays = attacks_lib.run_attack(
          fns, inputs, targets, lambdas, mode, layers, data_range=source.data_range,
          optimizer=a.attack_optimizer, backend=a.attack_backend, starts=a.attack_starts,
          max_iterations=a.attack_max_iterations, neighbour_rounds=a.attack_neighbour_rounds, seed=a.attack_seed,
          verbose=config.train.verbose > 0, pair_ids=ids, objective_draws=a.attack_objective_draws)
      records += part
      for key in arrays:
        arrays[key].append(part_arrays[key])
    arrays = {k: np.concatenate(v) for k, v in arrays.items()}
    if a.attack_shards > 1:  # a shard writes its share; --attack_merge assembles the sweep and draws the figures
      folder = os.path.join(out, "shards", f"{a.attack_shard_index}_of_{a.attack_shards}")
      io_utils.atomic_save_npz(os.path.join(folder, "adversarial_inputs.npz"), **arrays)
      io_utils.atomic_write_json(os.path.join(folder, "attack_results.json"), records)
      return {"records": len(records), "shard": folder, "step": step, "wall_time_s": time.time() - start,
              "mode": "attack"}
    names = ("attack_results.json", "adversarial_inputs.npz", "")
  results_name, arrays_name, prefix = names
  summary = {}
  auddc = measures.auddc_per_pair(records) if a.attack_kind == "lambda_sweep" else {}
  for mode, layers in parts:
    chosen = [i for i, r in enumerate(records) if (r["mode"], r["layers"]) == (mode, layers)]
    part = [records[i] for i in chosen]
    _attack_figures(config.workdir, title, fns, part, {k: v[chosen] for k, v in arrays.items()},
                    source.data_range, f"{prefix}{mode}_{layers}")
    summary[f"{mode}_{layers}"] = _part_summary(part, {k[2]: v for k, v in auddc.items() if k[:2] == (mode, layers)})
  io_utils.atomic_save_npz(os.path.join(out, arrays_name), **arrays)
  io_utils.atomic_write_json(os.path.join(out, results_name), records)
  result = {"attacks": summary, "records": len(records), "step": step, "kind": a.attack_kind, "mode": "attack"}
  if a.defence == "hmc":
    result["defence"] = _defence(config, fns, records, arrays, parts)
  return {**result, "wall_time_s": time.time() - start}


def _part_summary(part, auddc):
  """Medians of one (mode, layers) part (-log p(x^t|z~), its floor the target's own, and the excess over the floor:
  `seatbelt_tf.scores`); a sweep adds AUDDC per pair, a fixed-budget attack medians per radius."""
  out = {"median_objective": float(np.median([r["objective"] for r in part])),
         "median_target_nll": float(np.median([r["target_nll"] for r in part]))}
  excess, floor = scores.excess_over_floor(part)
  if floor == "own":  # (every record of a sweep run now has the target's own score: attacks/protocol.py)
    out["median_target_own_nll"] = float(np.median([r["target_own_nll"] for r in part]))
    out["median_excess_nll"] = float(np.median(excess))
  if auddc:
    out["auddc"] = {str(pair): value for pair, value in sorted(auddc.items())}
    out["median_auddc"] = float(np.median(list(auddc.values())))
  if part and "epsilon" in part[0]:
    epsilons = sorted({r["epsilon"] for r in part})
    out["epsilons"] = epsilons
    for key in ("target_nll", "objective", "distortion_l2"):
      out[f"median_{key}_per_epsilon"] = [float(np.median([r[key] for r in part if r["epsilon"] == e]))
                                          for e in epsilons]
  return out


def _eps_ball(config, fns, source, pairs, parts):
  """Fixed-budget attacks (`attacks.budget`) of every part: records and arrays like the sweep's."""
  a = config.attack
  epsilons = (np.asarray(a.attack_epsilons, np.float32) if a.attack_epsilons
              else budget.epsilon_grid(source.data_range, fns.image_shape))
  inputs, targets = source.tf_images(pairs[:, 0]).numpy(), source.tf_images(pairs[:, 1]).numpy()
  records, arrays = [], {"inputs": [], "targets": [], "distortions": [], "adversarial": []}
  for mode, layers in parts:
    factory = None
    if a.defence_adaptive and mode == "output":
      def factory(x_t, noise):
        return defence.defended_output_effect(fns, x_t, noise, a.defence_steps, a.defence_step_size,
                                              a.defence_leapfrog_steps, a.attack_seed)
    print(f"Attacking: {mode} attack on layers {layers}, {len(pairs)} pairs x {len(epsilons)} L2 radii "
          f"({', '.join(f'{e:.3g}' for e in epsilons)}), PGD {a.attack_pgd_steps} steps from "
          f"{len(a.attack_starts) + a.attack_random_starts} starts{' through the HMC defence' if factory else ''}...")
    part, part_arrays = budget.run_budget_attack(
        fns, inputs, targets, epsilons, mode, layers, data_range=source.data_range, starts=a.attack_starts,
        random_starts=a.attack_random_starts, steps=a.attack_pgd_steps, seed=a.attack_seed,
        verbose=config.train.verbose > 0, effect_factory=factory, objective_draws=a.attack_objective_draws)
    if factory:
      for r in part:
        r["defence"] = "hmc_adaptive"
    records += part
    for key in arrays:
      arrays[key].append(part_arrays[key])
  return records, {k: np.concatenate(v) for k, v in arrays.items()}


def _margins(config, fns, source, pairs, title, step, start):
  """r-robustness margins (`attacks.measures.robustness_margins`) of the pairs' inputs: attacks/margin_results.json
  and attacks/margins.png."""
  a = config.attack
  diagonal = budget.box_diagonal(source.data_range, fns.image_shape)
  r = a.attack_margin_r or diagonal / 10.0
  epsilon_max = a.attack_margin_epsilon_max or diagonal / 4.0
  inputs = source.tf_images(pairs[:, 0]).numpy()
  print(f"Margins: {len(inputs)} inputs, r = {r:.3g}, radii up to {epsilon_max:.3g}, {a.attack_margin_bisections} "
        f"bisection steps of PGD ({a.attack_pgd_steps} steps, {1 + a.attack_random_starts} starts)...")
  found = measures.robustness_margins(fns.recon_fn, inputs, r, epsilon_max, source.data_range,
                                      a.attack_margin_bisections, a.attack_pgd_steps, a.attack_random_starts,
                                      a.attack_seed, verbose=config.train.verbose > 0)
  records = [{"kind": "margin", "pair": i, "margin": float(found["margin"][i]), "lower": float(found["lower"][i]),
              "censored": bool(found["censored"][i]), "damage_at_max": float(found["damage_at_max"][i]), "r": r,
              "epsilon_max": epsilon_max} for i in range(len(inputs))]
  out = os.path.join(config.workdir, "attacks")
  io_utils.atomic_write_json(os.path.join(out, "margin_results.json"), records)
  plots.margin_histogram(os.path.join(out, "margins.png"), records, f"{title}: r-robustness margins (r = {r:.3g})")
  summary = measures.margin_summary(records)
  return {"margins": summary, "records": len(records), "step": step, "kind": "margin",
          "wall_time_s": time.time() - start, "mode": "attack"}


def _defence(config, fns, records, arrays, parts):
  """Re-scores the adversarial inputs with and without the HMC defence: attacks/defence_hmc.json; returns its
  summary per part."""
  a = config.attack
  print(f"Defence: re-scoring {len(records)} adversarial inputs through HMC ({a.defence_steps} transitions x "
        f"{a.defence_leapfrog_steps} leapfrog steps of size {a.defence_step_size})...")
  scores = defence.defended_target_nll(fns, arrays["adversarial"], arrays["targets"], num_steps=a.defence_steps,
                                       step_size=a.defence_step_size, num_leapfrog_steps=a.defence_leapfrog_steps,
                                       seed=a.attack_seed)
  adaptive = any(r.get("defence") == "hmc_adaptive" for r in records)
  rows = []
  for i, r in enumerate(records):
    rows.append({key: r[key] for key in ("kind", "mode", "layers", "pair", "lambda", "epsilon") if key in r})
    rows[-1].update({name: float(values[i]) for name, values in scores.items()})
    rows[-1]["change"] = rows[-1]["target_nll_with"] - rows[-1]["target_nll_without"]
    rows[-1]["adaptive"] = r.get("defence") == "hmc_adaptive"
  summary = {}
  for mode, layers in parts:
    part = [row for row in rows if (row["mode"], row["layers"]) == (mode, layers)]
    summary[f"{mode}_{layers}"] = {
        "median_target_nll_without": float(np.median([row["target_nll_without"] for row in part])),
        "median_target_nll_with": float(np.median([row["target_nll_with"] for row in part])),
        "median_change": float(np.median([row["change"] for row in part])),
        "mean_acceptance": float(np.mean([row["acceptance"] for row in part])),
        "adaptive": any(row["adaptive"] for row in part)}
  note = ("adaptive for the output attack (its objective ran through the chain with fixed randomness); "
          "non-adaptive for the rest" if adaptive else
          "non-adaptive: the attack did not know about the defence; an adaptive attacker may do better")
  settings = {"steps": a.defence_steps, "leapfrog_steps": a.defence_leapfrog_steps, "step_size": a.defence_step_size,
              "layers_refined": "all", "seed": a.attack_seed}
  io_utils.atomic_write_json(os.path.join(config.workdir, "attacks", "defence_hmc.json"),
                             {"defence": "hmc", "evaluation": note, "settings": settings, "summary": summary,
                              "records": rows})
  return summary


def _attack_figures(workdir, title, fns, records, arrays, data_range, name):
  """attacks/grid_<mode>_<layers>.png and attacks/distortion_<mode>_<layers>.png for one part of a sweep."""
  adversarial = arrays["adversarial"]
  shown = [i for i, r in enumerate(records) if r["display"]]
  recons = np.zeros_like(adversarial)
  recons[shown] = fns.recon_fn(tf.constant(adversarial[shown])).numpy()
  title = f"{title}: {name.replace('_', ' ')} attack"
  out = os.path.join(workdir, "attacks")
  plots.attack_grid(os.path.join(out, f"grid_{name}.png"), records, arrays, recons, data_range, title)
  if records and "epsilon" in records[0]:
    plots.budget_curve(os.path.join(out, f"{name}.png"), records, title)
  else:
    plots.distortion_curve(os.path.join(out, f"distortion_{name}.png"), records, title)
