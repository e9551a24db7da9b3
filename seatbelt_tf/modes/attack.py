"""--mode=attack: the paper's attack protocol on the latest checkpoint (or an export), into <workdir>/attacks/."""

import os
import time

import numpy as np
import tensorflow as tf

from seatbelt_tf import attacks as attacks_lib
from seatbelt_tf import io_utils
from seatbelt_tf import runs
from seatbelt_tf.attacks import plots


def attack(config):
  """Attacks the workdir's latest checkpoint (or, with --saved_model, an export) with the paper's protocol; writes
  `<workdir>/attacks/`.

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
  parts = [(mode, layers) for mode in a.attack_modes for layers in (a.attack_layers if mode == "latent" else ("all",))]
  if a.attack_merge:  # the shards' outputs (--attack_shards) -> one sweep, as one process would have written it
    shard_dirs = [os.path.join(out, "shards", f"{i}_of_{a.attack_shards}") for i in range(a.attack_shards)]
    records, arrays = attacks_lib.merge_shards(shard_dirs, parts, len(pairs))
  else:
    ids = np.arange(len(pairs))[a.attack_shard_index::a.attack_shards]  # this process's share of the pairs
    records, arrays = [], {"inputs": [], "targets": [], "distortions": [], "adversarial": []}
    inputs, targets = source.tf_images(pairs[ids, 0]).numpy(), source.tf_images(pairs[ids, 1]).numpy()
    for mode, layers in parts:
      shard = f" (shard {a.attack_shard_index} of {a.attack_shards})" if a.attack_shards > 1 else ""
      print(f"Attacking: {mode} attack on layers {layers}, {len(ids)} pairs x {len(lambdas)} lambdas{shard} "
            f"({a.attack_optimizer}, starts {', '.join(a.attack_starts)})...")
      part, part_arrays = attacks_lib.run_attack(
          fns, inputs, targets, lambdas, mode, layers, data_range=source.data_range,
          optimizer=a.attack_optimizer, starts=a.attack_starts, max_iterations=a.attack_max_iterations,
          neighbour_rounds=a.attack_neighbour_rounds, seed=a.attack_seed, verbose=config.train.verbose > 0,
          pair_ids=ids)
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
  summary = {}
  for mode, layers in parts:
    chosen = [i for i, r in enumerate(records) if (r["mode"], r["layers"]) == (mode, layers)]
    part = [records[i] for i in chosen]
    _attack_figures(config.workdir, title, fns, part, {k: v[chosen] for k, v in arrays.items()},
                    source.data_range, f"{mode}_{layers}")
    summary[f"{mode}_{layers}"] = {"median_objective": float(np.median([r["objective"] for r in part])),
                                   "median_target_nll": float(np.median([r["target_nll"] for r in part]))}
  io_utils.atomic_save_npz(os.path.join(out, "adversarial_inputs.npz"), **arrays)
  io_utils.atomic_write_json(os.path.join(out, "attack_results.json"), records)
  return {"attacks": summary, "records": len(records), "step": step,
          "wall_time_s": time.time() - start, "mode": "attack"}


def _attack_figures(workdir, title, fns, records, arrays, data_range, name):
  """attacks/grid_<mode>_<layers>.png and attacks/distortion_<mode>_<layers>.png for one part of a sweep."""
  adversarial = arrays["adversarial"]
  shown = [i for i, r in enumerate(records) if r["display"]]
  recons = np.zeros_like(adversarial)
  recons[shown] = fns.recon_fn(tf.constant(adversarial[shown])).numpy()
  title = f"{title}: {name.replace('_', ' ')} attack"
  out = os.path.join(workdir, "attacks")
  plots.attack_grid(os.path.join(out, f"grid_{name}.png"), records, arrays, recons, data_range, title)
  plots.distortion_curve(os.path.join(out, f"distortion_{name}.png"), records, title)
