"""The run plumbing every mode shares: the workdir, data and model of a config, checkpoints, opening a trained run
(or an export) and the held-out evaluation. Each mode lives in `seatbelt_tf.modes`; nothing here reads flags.

A workdir holds
  config.json        the settings of the run (a later run in the same workdir must agree on `IDENTITY_FIELDS`)
  flags.cfg          a flagfile that relaunches the run
  checkpoints/       model variables (BatchNorm statistics and sampling-seed state included) and optimizer state,
                     every `steps_per_epoch` steps and at the end
  tensorboard/       TensorBoard logs (train/ and validation/)
  attacks/           --mode=attack: attack_results.json (one record per pair x lambda x mode x layer set),
                     adversarial_inputs.npz, and per mode and layer set grid_*.png and distortion_*.png
  results.json       held-out metrics under the tracker names, `kl_units` (mean per-unit KL of each layer),
                     `num_examples_seen`, `step`, `wall_time_s`, and after training `train_images_per_s` (the
                     training loop's speed in this process, first epoch left out; null under two epochs; a later
                     --mode=evaluate of the same step keeps it) and
                     `health_spikes` (how many times the training-health guard flagged a quantity over the whole
                     run, resumptions included: `seatbelt_tf.health`)
A re-run with the same workdir restores the latest checkpoint and continues from its step; since every training
batch is a pure function of (seed, step), the resumed run sees the batches an uninterrupted run would have.
"""

import dataclasses
import json
import os
import time
import warnings

import keras
import tensorflow as tf

from seatbelt_tf import config as config_lib
from seatbelt_tf import data as data_lib
from seatbelt_tf import io_utils
from seatbelt_tf import models as models_lib
from seatbelt_tf import nn
from seatbelt_tf import serving

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
        diff = config.identity_differences(json.load(f))
      except (ValueError, TypeError, KeyError) as e:
        raise WorkdirMismatchError(f"{path} is not a seatbelt_tf run config ({e}); use a fresh --workdir.") from e
    if diff:
      details = ", ".join(f"{k}: workdir has {a!r}, requested {b!r}" for k, (a, b) in sorted(diff.items()))
      raise WorkdirMismatchError(f"{workdir} holds a run with different settings ({details}). Use another "
                                 "--workdir, or the workdir's own flags.cfg to resume it.")
  if not record:
    return
  io_utils.atomic_write_text(path, config.to_json())
  io_utils.atomic_write_text(os.path.join(workdir, "flags.cfg"), config.to_flagfile())


HELDOUT_CAP = 0.1  # a held-out split that would not fit is capped at this fraction of the dataset


def build_source(config):
  """The dataset source of `config` (no split check: see `open_source`)."""
  d = config.data
  return data_lib.build_dataset(d.dataset, data_dir=d.data_dir, manual_dir=d.manual_dir, grayscale=d.grayscale,
                                bad_images=d.bad_images)


def fit_split(config, num_examples):
  """`config`, with --eval_examples capped at `HELDOUT_CAP` of the dataset (and a warning) when the requested
  held-out split would leave less than one training batch (e.g. the default 10,000 on a folder of 2,000 images);
  otherwise unchanged. Raises the split's ValueError when even the cap leaves no batch."""
  t, requested = config.train, config.data.eval_examples
  if num_examples - requested < t.batch_size and requested >= 1:
    capped = max(1, int(num_examples * HELDOUT_CAP))
    if num_examples - capped >= t.batch_size and capped < requested:
      warnings.warn(f"--eval_examples={requested} would leave fewer than one batch of the dataset's "
                    f"{num_examples} examples; holding out {capped} ({HELDOUT_CAP:.0%}) instead. Pass "
                    "--eval_examples to choose.", RuntimeWarning, stacklevel=2)
      config = dataclasses.replace(config, data=dataclasses.replace(config.data, eval_examples=capped))
  data_lib.pipeline.check_split(num_examples, config.data.eval_examples, t.batch_size)
  return config


def open_source(config):
  """(the config the run uses, its dataset source): `build_source` then `fit_split`."""
  source = build_source(config)
  return fit_split(config, source.num_examples), source


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
      beta_warmup_steps=m.beta_warmup_steps, seed=t.seed, **_shape_kwargs(config, source))
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


def checkpoint_manager(config, model, directory=None):
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


def restore(manager, folder):
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


def mean_unit_kls(model, dataset):
  """Per-unit KL averaged over a dataset of image batches: {"1": [d_1 floats], ..., "L": [d_L floats]}.

  The data behind KL-activation plots (which units and layers carry information; paper Appendix F).
  """
  unit_kls = tf.function(model.unit_kls, autograph=False)
  sums, count = None, 0
  for x in dataset:
    batch = [k.numpy().astype("float64").sum(axis=0) for k in unit_kls(x)]
    sums = batch if sums is None else [a + b for a, b in zip(sums, batch)]
    count += int(x.shape[0])
  return {str(i + 1): (s / count).tolist() for i, s in enumerate(sums)}


def evaluate_model(config, model, source, unit_kls=True):
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


def open_run(config, record, strategy=None, output_dir=None):
  """Validates the settings, checks the workdir, builds data and model, then (if `record`) records the settings
  in the workdir and restores its latest checkpoint. Nothing is written before every check has passed.

  Args:
    strategy: build the model under this tf.distribute strategy.
    output_dir: where this process writes checkpoints (a non-chief worker's own folder); it still restores the
      workdir's (the chief's) latest checkpoint.

  Returns:
    (the config the run uses (`fit_split`), source, model, checkpoint manager, path of the restored checkpoint or
    None).
  """
  config.validate()
  config, source = open_source(config)
  prepare_workdir(config, record=False)  # refuses a workdir of another run, writing nothing
  # Settings only the data and model can check (a depth beyond the dataset's layer widths, say) fail here,
  # before the first write: a rejected run leaves no workdir behind.
  model = build_model(config, source, strategy)
  prepare_workdir(config, record=record)
  manager = checkpoint_manager(config, model, output_dir and os.path.join(output_dir, "checkpoints"))
  return config, source, model, manager, restore(manager, os.path.join(config.workdir, "checkpoints"))


def open_trained_run(config):
  """`open_run` for the modes that read a trained workdir: (config, source, model), or FileNotFoundError."""
  # record=False: the workdir's flags.cfg keeps relaunching the training run.
  config, source, model, _, restored = open_run(config, record=False)
  if not restored:
    raise FileNotFoundError(f"No checkpoint in {os.path.join(config.workdir, 'checkpoints')}: run --mode=train "
                            "with this --workdir first.")
  return config, source, model


def read_results(workdir):
  """The run's results.json as a dict, or {} when there is none (or it cannot be read)."""
  try:
    with open(os.path.join(workdir, "results.json")) as f:
      return json.load(f)
  except (OSError, ValueError):
    return {}


# What only the training loop knows (its speed, the batches it skipped): a later evaluation of the same step keeps them.
TRAINING_RECORDS = ("train_images_per_s", "skipped_batches")


def training_records(workdir, step):
  """The training's own entries of the workdir's results.json (`TRAINING_RECORDS`), when it was written at `step`
  (records of an earlier step describe a training that has since gone on); else {}."""
  previous = read_results(workdir)
  if previous.get("step") != step:
    return {}
  return {k: previous[k] for k in TRAINING_RECORDS if k in previous}


def epochs_seen(config, source, step):
  """Epochs of the training split (the source less the held-out images) that `step` steps of the run's batch
  have seen."""
  return step * config.train.batch_size / (source.num_examples - config.data.eval_examples)


def evaluate_and_record(config, model, source, start, extra, record=True):
  """Evaluates on the held-out split and (if `record`) writes `results.json` (wall time counted from `start`;
  `extra`, the training's own records, added: the loop's just measured, or `training_records` of this step when
  nothing was trained, as in --mode=evaluate)."""
  model.skip_nonfinite = False  # (evaluation logs only the trackers)
  step = int(model.optimizer.iterations.numpy())
  metrics = {**evaluate_model(config, model, source), **extra}
  # The training-health guard's spike count lives in the checkpoint, so it covers the whole run across resumptions
  # and a later --mode=evaluate keeps it (the warnings themselves go to the log of the process that saw them).
  metrics["health_spikes"] = int(model.health.spikes.numpy())
  results = {**metrics, "step": step, "num_examples_seen": step * config.train.batch_size,
             "epochs": epochs_seen(config, source, step),
             "wall_time_s": time.time() - start, "mode": config.mode, "eval_examples": config.data.eval_examples}
  if record:
    io_utils.atomic_write_json(os.path.join(config.workdir, "results.json"), results)
  return results


def run_title(config):
  m = config.model
  return f"{m.model} (beta={m.beta:g}, L={m.layers})"


def heldout_indices(config, source, run):
  """The held-out split of the training run (`run`: an export card's recorded settings, else this config's)."""
  return data_lib.pipeline.eval_indices(source.num_examples, run.get("eval_examples", config.data.eval_examples),
                                        run.get("seed", config.train.seed)).numpy()


def open_export(config):
  """(config, source, `serving.SavedModelFns`, the export's recorded run settings) for --saved_model modes."""
  config.validate()
  config, source = open_source(config)
  fns = serving.SavedModelFns(config.export.saved_model)
  if fns.image_shape != tuple(source.image_shape) or fns.data_range != tuple(source.data_range):
    raise ValueError(f"{config.export.saved_model} takes images {fns.image_shape} in {fns.data_range}; "
                     f"--dataset={config.data.dataset} gives {tuple(source.image_shape)} in "
                     f"{tuple(source.data_range)}. Pass the dataset the model was trained on.")
  os.makedirs(config.workdir, exist_ok=True)
  return config, source, fns, fns.card.get("config", {})
