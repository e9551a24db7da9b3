"""--mode=train: trains (or resumes) the run of a config, then evaluates it on the held-out split."""

import math
import os
import shutil
import time
import warnings

import keras
import numpy as np

from seatbelt_tf import data as data_lib
from seatbelt_tf import distribute
from seatbelt_tf import health
from seatbelt_tf import runs


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


class Throughput(keras.callbacks.Callback):
  """The training loop's own speed: images per second between this process's first and last epoch ends, so the
  first epoch (tracing, pipeline start-up) is left out and everything a run does per step and per epoch is in
  (input pipeline, callbacks, checkpoint saves). `images_per_s()` is None before two epoch ends. Placed last among
  the callbacks, so each epoch's time includes the others' epoch-end work."""

  def __init__(self, batch_size):
    super().__init__()
    self.batch_size = batch_size
    self.marks = []  # (time, step) at each epoch end

  def on_epoch_end(self, epoch, logs=None):
    self.marks.append((time.perf_counter(), int(self.model.optimizer.iterations.numpy())))

  def images_per_s(self):
    if len(self.marks) < 2 or self.marks[-1][1] == self.marks[0][1]:
      return None
    (t0, s0), (t1, s1) = self.marks[0], self.marks[-1]
    return (s1 - s0) * self.batch_size / (t1 - t0)


class _StepProgbar(keras.callbacks.ProgbarLogger):
  """Keras's progress bar, with each epoch's target the steps it will actually run: a last epoch cut short by
  --train_steps (or a first one after a mid-epoch resume) shows 100/100, not 100/200 finalised as 200/200."""

  def __init__(self, train_steps):
    super().__init__()
    self.train_steps = train_steps
    self.steps_per_epoch = None

  def set_params(self, params):
    super().set_params(params)
    self.steps_per_epoch = self.target

  def on_epoch_begin(self, epoch, logs=None):
    done = int(self.model.optimizer.iterations.numpy())
    self.target = max(1, min(self.steps_per_epoch, self.train_steps - done))
    super().on_epoch_begin(epoch, logs)


def train(config):
  """Trains (or resumes) the run of `config`, then evaluates it on the held-out split.

  Returns:
    the results dict written to `<workdir>/results.json`.
  """
  start = time.time()
  strategy = distribute.build_strategy(config.train.strategy, config.train.devices)  # before TF initialises
  chief, output_dir = distribute.worker_role(strategy)
  output_dir = None if chief else os.path.join(config.workdir, "workers", output_dir)
  config, source, model, manager, restored = runs.open_run(config, record=chief, strategy=strategy, output_dir=output_dir)
  t = config.train
  start_step = int(model.optimizer.iterations.numpy())
  if restored:
    print(f"Resuming from {restored} at step {start_step}.")
  remaining = t.train_steps - start_step
  if remaining > 0:
    initial_epoch = start_step // t.steps_per_epoch
    model.skip_nonfinite = t.on_nonfinite == "skip"
    checkpointer = _CheckpointAndStop(manager, t.train_steps)
    throughput = Throughput(t.batch_size)
    model.fit(
        data_lib.train_dataset(source, t.batch_size, config.data.eval_examples, t.seed, start_step=start_step),
        steps_per_epoch=t.steps_per_epoch, initial_epoch=initial_epoch,
        epochs=initial_epoch + math.ceil(remaining / t.steps_per_epoch), shuffle=False, verbose=t.verbose,
        callbacks=[checkpointer, health.HealthCallback(), _StepProgbar(t.train_steps),
                   keras.callbacks.TensorBoard(os.path.join(output_dir or config.workdir, "tensorboard")),
                   throughput])
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
    extra["train_images_per_s"] = throughput.images_per_s()  # None when this process saw fewer than 2 epoch ends
  else:
    print(f"{config.workdir} is already trained to step {start_step} >= train_steps={t.train_steps}.")
    # Not trained again: the training's own records (its loop speed, skipped batches) stay as they were.
    extra = runs.training_records(config.workdir, start_step) if chief else {}
  results = runs.evaluate_and_record(config, model, source, start, extra, record=chief)
  if output_dir:  # a non-chief worker's checkpoints only served the collective saves
    shutil.rmtree(output_dir, ignore_errors=True)
  return results
