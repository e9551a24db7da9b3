"""Fault injection (issue: reliability): a NaN loss stops training without replacing the last good checkpoint."""

import os

import numpy as np
import pytest
import tensorflow as tf

from seatbelt_tf import models, training
from conftest import tiny_config


def _poison_from_step(monkeypatch, step):
  """Makes the loss (and so the gradients and weights) NaN from optimizer iteration `step` on."""
  original = models.BetaTCVAE.loss_terms

  def poisoned(self, x, training):
    terms = dict(original(self, x, training))
    if training:
      factor = tf.where(self.optimizer.iterations >= step, float("nan"), 1.0)
      terms["loss"] = terms["loss"] * tf.cast(factor, terms["loss"].dtype)
    return terms

  monkeypatch.setattr(models.BetaTCVAE, "loss_terms", poisoned)


def _checkpoint_is_finite(path):
  reader = tf.train.load_checkpoint(path)
  for name, _ in tf.train.list_variables(path):
    value = reader.get_tensor(name)
    if np.issubdtype(np.asarray(value).dtype, np.floating) and not np.all(np.isfinite(value)):
      return False
  return True


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
  config = tiny_config(tmp_path / "w", train_steps=9, steps_per_epoch=3)
  _poison_from_step(monkeypatch, 4)  # steps 1-4 are finite: the epoch-end checkpoint at step 3 is good
  with pytest.raises(training.NonFiniteLossError, match=r"by step 5.*ckpt-3: re-running resumes from it"):
    training.train(config)
  folder = os.path.join(config.workdir, "checkpoints")
  latest = tf.train.latest_checkpoint(folder)
  assert latest.endswith("ckpt-3") and _checkpoint_is_finite(latest)
  assert not os.path.exists(os.path.join(config.workdir, "results.json"))  # no results from a diverged state
  # With the protection off, the diverged state would have been saved over it (so this test can fail).
  monkeypatch.setattr(training._CheckpointAndStop, "on_train_batch_end",  # pylint: disable=protected-access
                      lambda self, batch, logs=None: setattr(self.model, "stop_training",
                                                             self._step() >= self.train_steps))
  unprotected = tiny_config(tmp_path / "unprotected", train_steps=9, steps_per_epoch=3)
  training.train(unprotected)
  latest = tf.train.latest_checkpoint(os.path.join(unprotected.workdir, "checkpoints"))
  assert latest.endswith("ckpt-9") and not _checkpoint_is_finite(latest)
