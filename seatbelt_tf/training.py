"""Wiring of a run: workdir, data, model, checkpoints, the Keras fit loop and results files.

Nothing here reads flags: `train(config)` and `evaluate(config)` take a `seatbelt_tf.config.RunConfig`.

A workdir holds
  config.json        the settings of the run (a later run in the same workdir must agree on `IDENTITY_FIELDS`)
  flags.cfg          a flagfile that relaunches the run
  checkpoints/       model variables (BatchNorm statistics and sampling-seed state included) and optimizer state,
                     every `steps_per_epoch` steps and at the end
  tensorboard/       TensorBoard logs (train/ and validation/)
  attacks/           --mode=attack: attack_results.json (one record per pair x lambda x mode x layer set),
                     adversarial_inputs.npz, and per mode and layer set grid_*.png and distortion_*.png
  results.json       held-out metrics under the tracker names, `kl_units` (mean per-unit KL of each layer),
                     `num_examples_seen`, `step`, `wall_time_s`
A re-run with the same workdir restores the latest checkpoint and continues from its step; since every training
batch is a pure function of (seed, step), the resumed run sees the batches an uninterrupted run would have.
"""

import json
import math
import os
import shutil
import time
import warnings

import keras
import numpy as np
import tensorflow as tf

from seatbelt_tf import config as config_lib
from seatbelt_tf import data as data_lib
from seatbelt_tf import distribute
from seatbelt_tf import health
from seatbelt_tf import io_utils
from seatbelt_tf import models as models_lib
from seatbelt_tf import nn

_EVAL_SEED_OFFSET = 1_000_003  # the held-out evaluation draws its samples from its own seed stream


class WorkdirMismatchError(ValueError):
  """The workdir holds a run with different settings."""


def prepare_workdir(config, record=True):
  """Creates the workdir, refuses one that holds a different run, and (if `record`) records the settings."""
  workdir = config.workdir
  if record:
    os.makedirs(workdir, exist_ok=True)
  path = os.path.join(workdir, "config.json")
  if os.path.exists(path):
    with open(path) as f:
      try:
        saved = config_lib.RunConfig.from_flat({**json.load(f), "workdir": workdir}).identity()
      except (ValueError, TypeError, KeyError) as e:
        raise WorkdirMismatchError(f"{path} is not a seatbelt_tf run config ({e}); use a fresh --workdir.") from e
    current = config.identity()
    diff = {k: (saved.get(k), current[k]) for k in current if saved.get(k) != current[k]}
    if diff:
      details = ", ".join(f"{k}: workdir has {a!r}, requested {b!r}" for k, (a, b) in sorted(diff.items()))
      raise WorkdirMismatchError(f"{workdir} holds a run with different settings ({details}). Use another "
                                 "--workdir, or the workdir's own flags.cfg to resume it.")
  if not record:
    return
  io_utils.atomic_write_text(path, config.to_json())
  io_utils.atomic_write_text(os.path.join(workdir, "flags.cfg"), config.to_flagfile())


def build_source(config):
  d = config.data
  source = data_lib.build_dataset(d.dataset, data_dir=d.data_dir, manual_dir=d.manual_dir, grayscale=d.grayscale,
                                  bad_images=d.bad_images)
  data_lib.pipeline.check_split(source.num_examples, config.data.eval_examples, config.train.batch_size)
  return source


def build_model(config, source, strategy=None):
  """The model of `config`, built (variables created) and compiled (under `strategy`'s scope when given)."""
  if strategy is not None:
    with strategy.scope():
      return build_model(config, source)
  m, t = config.model, config.train
  keras.utils.set_random_seed(t.seed)  # weight initialisation follows the run's seed
  model = models_lib.build_model(
      m.model, network=m.network, image_shape=source.image_shape, likelihood=source.likelihood, beta=m.beta,
      dataset_size=source.num_examples - config.data.eval_examples, estimator=m.estimator, free_bits=m.free_bits,
      seed=t.seed, **_shape_kwargs(config, source))
  model.build((None,) + tuple(source.image_shape))
  jit = m.network in nn.XLA_BY_DEFAULT if t.jit_compile == "auto" else t.jit_compile == "true"
  optimizer = keras.optimizers.Adam(t.learning_rate, global_clipnorm=t.clip_grad_norm or None)
  model.compile(optimizer=optimizer, steps_per_execution=t.steps_per_execution,
                jit_compile=jit)
  model.optimizer.build(model.trainable_variables)
  return model


def _shape_kwargs(config, source):
  """latent_dim for the single-layer models; layers, z_sizes (default: the dataset's) and h_sizes for hierarchies."""
  m = config.model
  if models_lib.is_hierarchical(m.model):
    z_sizes = m.z_sizes or getattr(source, "z_sizes", models_lib.DEFAULT_Z_SIZES)
    return {"layers": m.layers, "z_sizes": z_sizes, "h_sizes": m.h_sizes}
  if m.layers != 1:
    hierarchical = ", ".join(sorted(n for n in models_lib.MODELS if models_lib.is_hierarchical(n)))
    raise ValueError(f"--layers={m.layers} needs a hierarchical model ({hierarchical}); --model={m.model} has one "
                     "stochastic layer of --latent_dim units.")
  return {"latent_dim": m.latent_dim}


def _checkpoint_manager(config, model, directory=None):
  """Checkpoints every model variable (weights, BatchNorm statistics, sampling-seed state) and optimizer slot.

  Keras 3 models are not tf.train.Checkpoint children themselves, so the variables are listed in their (fixed)
  creation order; their paths are not stable (Keras numbers repeated names within a process).
  """
  checkpoint = tf.train.Checkpoint(model=list(model.variables), optimizer=list(model.optimizer.variables))
  return tf.train.CheckpointManager(checkpoint, directory or os.path.join(config.workdir, "checkpoints"),
                                    max_to_keep=config.train.keep_checkpoints)


class CorruptCheckpointError(ValueError):
  """No checkpoint in a workdir's folder could be read back."""


def checkpoint_candidates(folder):
  """Checkpoint prefixes in `folder`, newest first: those the `checkpoint` state file lists, and any other
  `ckpt-N.index` on disk (so a lost or damaged state file does not hide them)."""
  paths = set()
  try:
    state = tf.train.get_checkpoint_state(folder)
  except Exception:  # pylint: disable=broad-except  (an unparsable state file: the files themselves still count)
    state = None
  if state is not None:
    paths.update(os.path.join(folder, os.path.basename(p)) for p in state.all_model_checkpoint_paths)
  if os.path.isdir(folder):
    paths.update(os.path.join(folder, f[:-len(".index")]) for f in os.listdir(folder)
                 if f.startswith("ckpt-") and f.endswith(".index"))

  def number(path):
    tail = os.path.basename(path)[len("ckpt-"):]
    return int(tail) if tail.isdigit() else -1
  return sorted(paths, key=number, reverse=True)


def _restore(manager, folder):
  """Restores the newest readable checkpoint in `folder` into `manager`'s objects; returns its path or None.

  A checkpoint that cannot be read back (truncated or corrupt files, e.g. from a full disk or a copy cut short)
  is skipped with a warning naming it, and the previous one is tried; if checkpoints exist but none is readable,
  `CorruptCheckpointError` says so rather than silently training from scratch.
  """
  candidates = checkpoint_candidates(folder)
  failures = []
  for path in candidates:
    try:
      manager.checkpoint.restore(path).assert_existing_objects_matched()
    except Exception as e:  # pylint: disable=broad-except  (TF raises OpError, IndexError, ValueError, ...)
      failures.append(f"{os.path.basename(path)} ({type(e).__name__}: {str(e).splitlines()[0][:200]})")
      continue
    if failures:
      warnings.warn(f"Checkpoint(s) {', '.join(failures)} in {folder} could not be read; restored the previous "
                    f"one, {os.path.basename(path)}. The unreadable files are left in place and the next save "
                    "replaces them.", RuntimeWarning, stacklevel=2)
    return path
  if failures:
    raise CorruptCheckpointError(
        f"No checkpoint in {folder} can be read: {'; '.join(failures)}. Restore the folder from a backup, or move "
        "it away to train from scratch.")
  return None


class NonFiniteLossError(FloatingPointError):
  """Training produced a NaN or infinite loss; the state after it was not checkpointed."""


class _CheckpointAndStop(keras.callbacks.Callback):
  """Saves a checkpoint at every epoch end; stops exactly at `train_steps`; stops at the first non-finite loss
  and from then on saves nothing, so the last good checkpoint is never replaced by a NaN state."""

  def __init__(self, manager, train_steps):
    super().__init__()
    self.manager = manager
    self.train_steps = train_steps
    self.saved_step = None
    self.nonfinite_step = None
    self.skipped_batches = 0  # --on_nonfinite=skip: batches skipped in this process

  def _step(self):
    return int(self.model.optimizer.iterations.numpy())

  def on_train_batch_end(self, batch, logs=None):
    loss = (logs or {}).get("loss")
    if loss is not None and not np.all(np.isfinite(np.asarray(loss, np.float64))):
      self.nonfinite_step = self._step()
      self.model.stop_training = True
    elif self._step() >= self.train_steps:
      self.model.stop_training = True

  def on_epoch_end(self, epoch, logs=None):
    self.skipped_batches += int(round(float(np.ravel((logs or {}).get("skipped_batches", 0))[0])))
    self.save()

  def save(self):
    """Checkpoints the current step unless it is already saved or training diverged."""
    step = self._step()
    if self.nonfinite_step is None and step != self.saved_step:
      self.manager.save(checkpoint_number=step)
      self.saved_step = step


def mean_unit_kls(model, dataset):
  """Per-unit KL averaged over a dataset of image batches: {"1": [d_1 floats], ..., "L": [d_L floats]}.

  The data behind KL-activation plots (which units and layers carry information; paper Appendix F).
  """
  unit_kls = tf.function(model.unit_kls)
  sums, count = None, 0
  for x in dataset:
    batch = [k.numpy().astype("float64").sum(axis=0) for k in unit_kls(x)]
    sums = batch if sums is None else [a + b for a, b in zip(sums, batch)]
    count += int(x.shape[0])
  return {str(i + 1): (s / count).tolist() for i, s in enumerate(sums)}


def _evaluate_model(config, model, source, unit_kls=True):
  """Held-out metrics under the tracker names and (if `unit_kls`) the mean per-unit KLs (`kl_units`), with a fixed
  seed that leaves the training stream untouched."""
  state = model.seed_generator.state
  saved = state.numpy()
  state.assign([config.train.seed + _EVAL_SEED_OFFSET, 0])
  try:
    ds = data_lib.eval_dataset(source, config.train.eval_batch_size, config.data.eval_examples, config.train.seed)
    metrics = {k: float(v) for k, v in model.evaluate(ds, verbose=0, return_dict=True).items()}
    if unit_kls:
      metrics["kl_units"] = mean_unit_kls(model, ds)
  finally:
    state.assign(saved)
  return metrics


def _open_run(config, record, strategy=None, output_dir=None):
  """Validates, checks (and if `record`, records) the workdir, builds data and model, restores the latest checkpoint.

  Args:
    strategy: build the model under this tf.distribute strategy.
    output_dir: where this process writes checkpoints (a non-chief worker's own folder); it still restores the
      workdir's (the chief's) latest checkpoint.

  Returns:
    (source, model, checkpoint manager, path of the restored checkpoint or None).
  """
  config.validate()
  source = build_source(config)
  prepare_workdir(config, record=record)
  model = build_model(config, source, strategy)
  manager = _checkpoint_manager(config, model, output_dir and os.path.join(output_dir, "checkpoints"))
  return source, model, manager, _restore(manager, os.path.join(config.workdir, "checkpoints"))


def _open_trained_run(config):
  """`_open_run` for the modes that read a trained workdir: (source, model), or FileNotFoundError."""
  # record=False: the workdir's flags.cfg keeps relaunching the training run.
  source, model, _, restored = _open_run(config, record=False)
  if not restored:
    raise FileNotFoundError(f"No checkpoint in {os.path.join(config.workdir, 'checkpoints')}: run --mode=train "
                            "with this --workdir first.")
  return source, model


def _evaluate_and_record(config, model, source, start, record=True, extra=None):
  """Evaluates on the held-out split and (if `record`) writes `results.json` (wall time counted from `start`;
  `extra` entries added)."""
  model.skip_nonfinite = False  # (evaluation logs only the trackers)
  metrics = {**_evaluate_model(config, model, source), **(extra or {})}
  step = int(model.optimizer.iterations.numpy())
  results = {**metrics, "step": step, "num_examples_seen": step * config.train.batch_size,
             "wall_time_s": time.time() - start, "mode": config.mode, "eval_examples": config.data.eval_examples}
  if record:
    io_utils.atomic_write_json(os.path.join(config.workdir, "results.json"), results)
  return results


def train(config):
  """Trains (or resumes) the run of `config`, then evaluates it on the held-out split.

  Returns:
    the results dict written to `<workdir>/results.json`.
  """
  start = time.time()
  strategy = distribute.build_strategy(config.train.strategy, config.train.devices)  # before TF initialises
  chief, output_dir = distribute.worker_role(strategy)
  output_dir = None if chief else os.path.join(config.workdir, "workers", output_dir)
  source, model, manager, restored = _open_run(config, record=chief, strategy=strategy, output_dir=output_dir)
  t = config.train
  start_step = int(model.optimizer.iterations.numpy())
  if restored:
    print(f"Resuming from {restored} at step {start_step}.")
  remaining = t.train_steps - start_step
  if remaining > 0:
    initial_epoch = start_step // t.steps_per_epoch
    model.skip_nonfinite = t.on_nonfinite == "skip"
    checkpointer = _CheckpointAndStop(manager, t.train_steps)
    model.fit(
        data_lib.train_dataset(source, t.batch_size, config.data.eval_examples, t.seed, start_step=start_step),
        steps_per_epoch=t.steps_per_epoch, initial_epoch=initial_epoch,
        epochs=initial_epoch + math.ceil(remaining / t.steps_per_epoch), shuffle=False, verbose=t.verbose,
        callbacks=[checkpointer, health.HealthCallback(),
                   keras.callbacks.TensorBoard(os.path.join(output_dir or config.workdir, "tensorboard"))])
    checkpointer.save()  # normally a no-op: the last epoch end (also when stopped mid-epoch) saved already
    if checkpointer.nonfinite_step is not None:
      last = manager.latest_checkpoint
      raise NonFiniteLossError(
          f"The training loss became NaN or infinite by step {checkpointer.nonfinite_step}; training stopped and "
          "that state was not saved. The last good checkpoint is "
          + (f"{last}: re-running resumes from it" if last else "none (it diverged in the first epoch)")
          + ". Lower --learning_rate, or use free bits (--free_bits) or a smaller --beta if it recurs.")
    if checkpointer.skipped_batches:
      warnings.warn(f"{checkpointer.skipped_batches} training batch(es) had a NaN or infinite loss or gradient "
                    "and were skipped (--on_nonfinite=skip); results.json counts them as skipped_batches.",
                    RuntimeWarning, stacklevel=2)
    extra = {"skipped_batches": checkpointer.skipped_batches} if model.skip_nonfinite else {}
  else:
    print(f"{config.workdir} is already trained to step {start_step} >= train_steps={t.train_steps}.")
    extra = {}
  results = _evaluate_and_record(config, model, source, start, record=chief, extra=extra)
  if output_dir:  # a non-chief worker's checkpoints only served the collective saves
    shutil.rmtree(output_dir, ignore_errors=True)
  return results


def _title(config):
  m = config.model
  return f"{m.model} (beta={m.beta:g}, L={m.layers})"


def _heldout_indices(config, source, run):
  """The held-out split of the training run (`run`: an export card's recorded settings, else this config's)."""
  return data_lib.pipeline.eval_indices(source.num_examples, run.get("eval_examples", config.data.eval_examples),
                                        run.get("seed", config.train.seed)).numpy()


def _open_export(config):
  """(source, `serving.SavedModelFns`, the export's recorded run settings) for --saved_model modes."""
  from seatbelt_tf import serving  # pylint: disable=g-import-not-at-top
  config.validate()
  source = build_source(config)
  fns = serving.SavedModelFns(config.export.saved_model)
  if fns.image_shape != tuple(source.image_shape) or fns.data_range != tuple(source.data_range):
    raise ValueError(f"{config.export.saved_model} takes images {fns.image_shape} in {fns.data_range}; "
                     f"--dataset={config.data.dataset} gives {tuple(source.image_shape)} in "
                     f"{tuple(source.data_range)}. Pass the dataset the model was trained on.")
  os.makedirs(config.workdir, exist_ok=True)
  return source, fns, fns.card.get("config", {})


def evaluate(config):
  """Evaluates the workdir's latest checkpoint (or, with --saved_model, an export).

  A checkpoint: held-out metrics to `results.json` (as after training), then the evaluation suite
  (`evaluation.run_suite`) to `<workdir>/evaluation/`. An export: the suite alone (no weight norms or per-unit
  KLs), on the same held-out images and seeds, so its numbers match the checkpoint's.
  """
  from seatbelt_tf import attacks as attacks_lib  # pylint: disable=g-import-not-at-top
  from seatbelt_tf import evaluation  # pylint: disable=g-import-not-at-top
  start = time.time()
  if config.export.saved_model:
    source, fns, run = _open_export(config)
    model, title = None, f"{fns.card.get('model_family', fns.card['model'])} (SavedModel)"
    results = {"mode": "evaluate", "saved_model": config.export.saved_model, "step": fns.card.get("step")}
  else:
    source, model = _open_trained_run(config)
    fns, run, title = attacks_lib.ModelFns(model), {}, _title(config)
    results = _evaluate_and_record(config, model, source, start)
  suite = evaluation.run_suite(
      fns, source, _heldout_indices(config, source, run), config.evaluation,
      os.path.join(config.workdir, "evaluation"), title, model=model, kl_units=results.get("kl_units"),
      seed=run.get("seed", config.train.seed), batch_size=config.train.eval_batch_size,
      verbose=config.train.verbose > 0)
  summary = {"elbo_fixed_noise": suite["elbo"]["elbo"],
             "noise_median": {k: v["median"] for k, v in suite["noise"].items()}}
  if "mig" in suite:
    summary["mig"] = suite["mig"]["mig"]
  return {**results, "evaluation": summary, "wall_time_s": time.time() - start}


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
  from seatbelt_tf import attacks as attacks_lib  # pylint: disable=g-import-not-at-top
  start = time.time()
  if config.export.saved_model:  # an export: the same callables from its signatures, no checkpoint needed
    source, fns, run = _open_export(config)
    step, title = fns.card.get("step", 0), f"{fns.card.get('model_family', fns.card['model'])} (SavedModel)"
  else:
    source, model = _open_trained_run(config)
    fns = attacks_lib.ModelFns(model)
    step, title, run = int(model.optimizer.iterations.numpy()), _title(config), {}
  a = config.attack
  candidates = _heldout_indices(config, source, run)
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
  from seatbelt_tf.attacks import plots  # pylint: disable=g-import-not-at-top
  adversarial = arrays["adversarial"]
  shown = [i for i, r in enumerate(records) if r["display"]]
  recons = np.zeros_like(adversarial)
  recons[shown] = fns.recon_fn(tf.constant(adversarial[shown])).numpy()
  title = f"{title}: {name.replace('_', ' ')} attack"
  out = os.path.join(workdir, "attacks")
  plots.attack_grid(os.path.join(out, f"grid_{name}.png"), records, arrays, recons, data_range, title)
  plots.distortion_curve(os.path.join(out, f"distortion_{name}.png"), records, title)


def export(config):
  """Exports the workdir's latest checkpoint as a new SavedModel version for TF Serving (`seatbelt_tf.serving`).

  Writes `<export_dir>/<model_name>/<version>/` atomically (default export_dir `<workdir>/export`, model_name the
  model family), with `model_card.json` holding the run's settings and its held-out `results.json` metrics.
  """
  from seatbelt_tf import serving  # pylint: disable=g-import-not-at-top
  start = time.time()
  source, model = _open_trained_run(config)
  export_dir = config.export.export_dir or os.path.join(config.workdir, "export")
  model_name = config.export.model_name or config.model.model
  metrics = None
  results_path = os.path.join(config.workdir, "results.json")
  if os.path.isfile(results_path):
    with open(results_path) as f:
      metrics = json.load(f)
  step = int(model.optimizer.iterations.numpy())
  card = serving.model_card(model, source.data_range, config=config, metrics=metrics, step=step)
  path = serving.export_model(model, source.data_range, export_dir, model_name, card)
  return {"export_path": path, "version": int(os.path.basename(path)), "step": step,
          "wall_time_s": time.time() - start, "mode": "export"}


def report(config):
  """Aggregates the runs of --workdirs into `<workdir>/report.md` and figures (`evaluation.write_report`)."""
  from seatbelt_tf import evaluation  # pylint: disable=g-import-not-at-top
  config.validate()
  start = time.time()
  summary = evaluation.write_report(config.evaluation.workdirs, config.workdir)
  return {**summary, "mode": "report", "wall_time_s": time.time() - start}


def tune(config):
  """Runs (or resumes) a Keras Tuner search from the settings of `config` (`seatbelt_tf.tuning`)."""
  from seatbelt_tf import tuning  # pylint: disable=g-import-not-at-top
  start = time.time()
  config.validate()
  source = build_source(config)
  os.makedirs(config.workdir, exist_ok=True)
  summary = tuning.run_search(config, source)
  return {**summary, "mode": "tune", "wall_time_s": time.time() - start}


MODE_FNS = {"train": train, "evaluate": evaluate, "attack": attack, "export": export, "report": report,
            "tune": tune}
