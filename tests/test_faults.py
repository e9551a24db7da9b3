"""Fault injection (issue: reliability): NaN losses, damaged checkpoints, a killed training process, hostile
inputs. Each protection is also switched off inside its test (or in the way the closing note describes) to show the
test would then fail."""

import glob
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from seatbelt_tf import models, runs
from seatbelt_tf.modes import attack as attack_mode
from seatbelt_tf.modes import train as train_mode
from conftest import REPO, tiny_config


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
  with pytest.raises(train_mode.NonFiniteLossError, match=r"by step 5.*ckpt-3: re-running resumes from it"):
    train_mode.train(config)
  folder = os.path.join(config.workdir, "checkpoints")
  latest = tf.train.latest_checkpoint(folder)
  assert latest.endswith("ckpt-3") and _checkpoint_is_finite(latest)
  assert not os.path.exists(os.path.join(config.workdir, "results.json"))  # no results from a diverged state
  # With the protection off, the diverged state would have been saved over it (so this test can fail).
  monkeypatch.setattr(train_mode._CheckpointAndStop, "on_train_batch_end",  # pylint: disable=protected-access
                      lambda self, batch, logs=None: setattr(self.model, "stop_training",
                                                             self._step() >= self.train_steps))
  unprotected = tiny_config(tmp_path / "unprotected", train_steps=9, steps_per_epoch=3)
  train_mode.train(unprotected)
  latest = tf.train.latest_checkpoint(os.path.join(unprotected.workdir, "checkpoints"))
  assert latest.endswith("ckpt-9") and not _checkpoint_is_finite(latest)


# ------------------------------------------------------------------ --on_nonfinite=skip
def _poison_images_at(monkeypatch, steps):
  """NaN images (so NaN activations, BatchNorm statistics, loss and gradients) at the optimizer iterations in
  `steps` (0-based: the value of `iterations` when the step starts)."""
  original = models.BetaTCVAE.loss_terms

  def poisoned(self, x, training):
    if training:
      it = self.optimizer.iterations
      hit = tf.reduce_any(tf.equal(it, tf.constant(sorted(steps), it.dtype)))
      x = x * tf.cast(tf.where(hit, float("nan"), 1.0), x.dtype)
    return original(self, x, training)

  monkeypatch.setattr(models.BetaTCVAE, "loss_terms", poisoned)


def test_skip_mode_leaves_nonfinite_batches_out_and_counts_them(tmp_path, monkeypatch):
  _poison_images_at(monkeypatch, {4, 5})
  config = tiny_config(tmp_path / "w", train_steps=9, steps_per_epoch=3, on_nonfinite="skip")
  with pytest.warns(RuntimeWarning, match=r"2 training batch\(es\) had a NaN"):
    results = train_mode.train(config)
  assert results["step"] == 9 and results["skipped_batches"] == 2
  assert np.isfinite(results["loss"]) and np.isfinite(results["elbo"])
  latest = tf.train.latest_checkpoint(os.path.join(config.workdir, "checkpoints"))
  assert latest.endswith("ckpt-9") and _checkpoint_is_finite(latest)  # weights, Adam slots, BatchNorm moments
  # With the protection off (the update applied whatever the loss), the same run cannot finish.
  monkeypatch.setattr(models.BetaTCVAE, "_apply_if_finite",
                      lambda self, loss, gradients, terms, batch_size, before, grad_norms: (
                          self.optimizer.apply(gradients, self.trainable_variables),
                          self._update_trackers(terms, batch_size, grad_norms))[1])
  with pytest.raises(train_mode.NonFiniteLossError):
    train_mode.train(tiny_config(tmp_path / "unprotected", train_steps=9, steps_per_epoch=3, on_nonfinite="skip"))


# ------------------------------------------------------------------ damaged checkpoints
def _data_file(folder, step):
  return glob.glob(os.path.join(folder, f"ckpt-{step}.data-*"))[0]


def _truncate(path):
  size = os.path.getsize(path)
  with open(path, "r+b") as f:
    f.truncate(size // 2)


def test_a_truncated_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, monkeypatch):
  config = tiny_config(tmp_path / "w", train_steps=6, steps_per_epoch=3)
  train_mode.train(config)
  folder = os.path.join(config.workdir, "checkpoints")
  _truncate(_data_file(folder, 6))
  with pytest.warns(RuntimeWarning, match=r"ckpt-6 \(.*could not be read; restored the previous one, ckpt-3"):
    results = train_mode.train(config)  # resumes at step 3 and redoes 4-6
  assert results["step"] == 6 and _checkpoint_is_finite(os.path.join(folder, "ckpt-6"))  # rewritten whole
  # A garbled `checkpoint` state file hides nothing: the checkpoints on disk are still found.
  with open(os.path.join(folder, "checkpoint"), "w") as f:
    f.write("model_checkpoint_path: \"\x00garbage")
  assert runs.checkpoint_candidates(folder)[0].endswith("ckpt-6")
  # Without the fallback (only the newest tried), the damaged checkpoint would end the run (so this can fail).
  _truncate(_data_file(folder, 6))
  newest_only = runs.checkpoint_candidates
  monkeypatch.setattr(runs, "checkpoint_candidates", lambda f: newest_only(f)[:1])
  with pytest.raises(runs.CorruptCheckpointError, match="ckpt-6"):
    train_mode.train(config)
  monkeypatch.undo()
  # Every checkpoint unreadable: a clear error, never a silent restart from scratch.
  for step in (3, 6):
    _truncate(_data_file(folder, step))
  with pytest.raises(runs.CorruptCheckpointError, match=r"No checkpoint in .* can be read: ckpt-6 .*ckpt-3"):
    train_mode.train(config)


# ------------------------------------------------------------------ SIGKILL and resume
def _checkpoint_steps(folder):
  return sorted(int(f[len("ckpt-"):-len(".index")]) for f in os.listdir(folder) if f.endswith(".index")) \
      if os.path.isdir(folder) else []


def _recorded_step(folder):
  """The step of the newest checkpoint the CheckpointManager has recorded in its (atomically replaced) state file,
  or -1. A checkpoint's files are written before it is recorded, so a kill in between leaves one unrecorded."""
  latest = tf.train.latest_checkpoint(folder) if os.path.isdir(folder) else None
  return int(latest.rsplit("-", 1)[1]) if latest else -1


def _weights(workdir):
  reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints"))
  names = sorted(n for n in reader.get_variable_to_shape_map() if n.startswith(("model/", "optimizer/")))
  return {n: reader.get_tensor(n) for n in names}


def test_a_killed_training_process_resumes_where_its_last_checkpoint_left_off(tmp_path, capsys):
  """SIGKILL a real training process mid-run, resume it: nothing checkpointed is lost (at most one checkpoint
  interval of steps is redone) and the final weights and optimizer state equal an uninterrupted run's."""
  steps, interval = 200, 10
  workdir = tmp_path / "killed"
  flags = [f"--train_steps={steps}", f"--steps_per_epoch={interval}"]
  proc = subprocess.Popen([sys.executable, "-m", "seatbelt_tf.launch", "--flagfile=configs/tiny.cfg",
                           f"--workdir={workdir}", "--verbose=0", *flags], cwd=REPO,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
  folder = str(workdir / "checkpoints")
  deadline = time.time() + 240
  while _recorded_step(folder) < 3 * interval:
    assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read()[-2000:]}"
    assert time.time() < deadline
    time.sleep(0.01)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL
  last = _recorded_step(folder)
  assert 3 * interval <= last < steps  # killed mid-run
  # The kill may land between a checkpoint's files and its record: then that one interval is redone, never more.
  assert _checkpoint_steps(folder)[-1] in (last, last + interval), _checkpoint_steps(folder)
  capsys.readouterr()
  config = tiny_config(workdir, train_steps=steps, steps_per_epoch=interval)
  resumed = train_mode.train(config)
  assert f"ckpt-{last} at step {last}." in capsys.readouterr().out  # no checkpointed step lost
  assert resumed["step"] == steps
  straight = tiny_config(tmp_path / "straight", train_steps=steps, steps_per_epoch=interval)
  train_mode.train(straight)
  a, b = _weights(straight.workdir), _weights(workdir)
  assert a.keys() == b.keys() and len(a) > 10
  for name in a:
    np.testing.assert_allclose(a[name], b[name], rtol=1e-5, atol=1e-6, err_msg=name)


# ------------------------------------------------------------------ hostile inputs
def test_malformed_and_unreadable_flagfiles_are_refused_naming_the_file(tmp_path):
  from absl import app
  from seatbelt_tf import launch
  cases = {"spaces.cfg": (b"--batch_size=8\nbatch_size 16\n", r"malformed line 'batch_size 16'"),
           "binary.cfg": (b"\xff\xfe\x00\x81--model=vae", r"cannot be read as text"),
           "loop.cfg": (b"--flagfile=loop.cfg\n", r"includes itself")}
  for name, (content, message) in cases.items():
    (tmp_path / name).write_bytes(content)
    with pytest.raises(app.UsageError, match=message):
      launch.expand_flagfiles([f"--flagfile={tmp_path / name}"])


def test_contradictory_settings_are_named(tmp_path):
  with pytest.raises(ValueError, match=r"on_nonfinite=skip needs --strategy=default"):
    tiny_config(tmp_path / "w", on_nonfinite="skip", strategy="mirrored")
  with pytest.raises(ValueError, match=r"bad_images='maybe' must be one of fail, skip"):
    tiny_config(tmp_path / "w", bad_images="maybe")


def _image_folder(folder, good=3):
  os.makedirs(folder, exist_ok=True)
  rng = np.random.default_rng(0)
  for i in range(good):
    png = tf.io.encode_png(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).numpy()
    (folder / f"good_{i}.png").write_bytes(png)
  (folder / "garbage.png").write_bytes(b"this is not an image")
  jpeg = tf.io.encode_jpeg(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)).numpy()
  (folder / "truncated.jpg").write_bytes(jpeg[:len(jpeg) // 3])
  return folder


def test_corrupt_image_files_fail_naming_the_file_or_are_skipped_and_counted(tmp_path):
  from seatbelt_tf import data
  folder = _image_folder(tmp_path / "images")
  with pytest.raises(ValueError, match=r"Could not decode .*garbage.png.*--bad_images=skip"):
    data.load_image_folder(str(folder), verbose=False, batch_size=2)
  with pytest.warns(RuntimeWarning, match=r"Skipped 2 of 5 files .*garbage.png, .*truncated.jpg"):
    source = data.load_image_folder(str(folder), verbose=False, batch_size=2, bad_images="skip")
  assert source.num_examples == 3
  for path in glob.glob(str(folder / "*")):
    if "good" not in path:
      os.remove(path)
  good = data.load_image_folder(str(folder), verbose=False)
  np.testing.assert_array_equal(source.tf_images(np.arange(3)).numpy(), good.tf_images(np.arange(3)).numpy())
  bad_only = tmp_path / "bad_only"
  bad_only.mkdir()
  (bad_only / "x.png").write_bytes(b"nope")
  with pytest.raises(ValueError, match="None of the 1 files"):
    data.load_image_folder(str(bad_only), verbose=False, bad_images="skip")


def test_a_folder_that_is_not_a_usable_savedmodel_is_refused(tmp_path):
  from seatbelt_tf import serving
  with pytest.raises(ValueError, match="not a SavedModel directory"):
    serving.SavedModelFns(str(tmp_path))
  model = models.build_model("vae", network="tiny_mlp", latent_dim=3, dataset_size=100)
  model.build()
  path = serving.export_model(model, (0.0, 1.0), str(tmp_path / "export"), "m")
  with open(os.path.join(path, "saved_model.pb"), "r+b") as f:
    f.truncate(100)
  with pytest.raises(ValueError, match=r"(corrupt|cannot be loaded).*export the model again"):
    serving.SavedModelFns(path)


def test_stale_export_folders_of_killed_exporters_are_removed(tmp_path):
  from seatbelt_tf import serving
  dead = subprocess.Popen([sys.executable, "-c", "pass"])
  dead.wait()
  model_dir = tmp_path / "m"
  (model_dir / f".export-{dead.pid}-abc" / "variables").mkdir(parents=True)  # left by a killed exporter
  (model_dir / f".export-{os.getpid()}-def").mkdir()  # one still being written (this process is alive)
  assert serving.remove_stale_exports(str(model_dir)) == [str(model_dir / f".export-{dead.pid}-abc")]
  assert sorted(os.listdir(model_dir)) == [f".export-{os.getpid()}-def"]


def test_attacks_refuse_nonfinite_and_misshapen_arrays():
  from seatbelt_tf import attacks, data
  model = models.build_model("vae", network="tiny_mlp", latent_dim=3, dataset_size=100)
  model.build()
  fns = attacks.ModelFns(model)
  x = data.ProceduralDSprites().images(np.arange(2)).astype(np.float32)
  cases = [(np.where(x > 0, np.nan, x), x, "finite"), (x, np.where(x > 0, np.inf, x), "finite"),
           (x[:, :32], x, "of one shape"), (x[:, :32], x[:, :32], "model's images"),
           (x[..., 0], x[..., 0], "model's images")]
  for inputs, targets, message in cases:
    with pytest.raises(ValueError, match=message):
      attacks.run_attack(fns, inputs, targets, [1.0], "latent")


def _tree_digest(folder):
  import hashlib
  digest = {}
  for root, _, files in os.walk(folder):
    for name in files:
      path = os.path.join(root, name)
      digest[os.path.relpath(path, folder)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
  return digest


def test_hostile_command_lines_get_one_clear_error_and_damage_nothing(tmp_path):
  """Through the real command line: no traceback, a non-zero exit, and every file of the workdir unchanged. (The
  other bad flags and workdirs go through the command line in tests/test_launch.py; these two reach deepest.)"""
  config = tiny_config(tmp_path / "w", train_steps=3, steps_per_epoch=3)
  train_mode.train(config)
  before = _tree_digest(config.workdir)
  images = _image_folder(tmp_path / "images", good=0)
  cases = [
      (["--mode=attack", f"--saved_model={tmp_path}"], "not a SavedModel directory"),
      (["--mode=train", "--dataset=image_folder", f"--data_dir={images}"], "Could not decode"),
  ]
  for args, message in cases:
    proc = subprocess.run([sys.executable, "-m", "seatbelt_tf.launch", "--flagfile=configs/tiny.cfg",
                           f"--workdir={config.workdir}", "--train_steps=3", "--steps_per_epoch=3", *args],
                          cwd=REPO, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode != 0 and message in proc.stderr, (args, proc.stderr[-2000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-2000:]
  assert _tree_digest(config.workdir) == before


def test_rerunning_a_finished_mode_changes_nothing_but_timings(tmp_path):
  from seatbelt_tf import config as config_lib
  config = tiny_config(tmp_path / "w", train_steps=3, steps_per_epoch=3, attack_pairs=1, attack_lambdas=2,
                       attack_modes="latent", attack_max_iterations=5)
  first = train_mode.train(config)
  files = sorted(os.listdir(os.path.join(config.workdir, "checkpoints")))
  again = train_mode.train(config)  # finished: not trained again
  assert sorted(os.listdir(os.path.join(config.workdir, "checkpoints"))) == files
  drop = lambda d: {k: v for k, v in d.items() if k != "wall_time_s"}  # noqa: E731
  assert drop(again) == drop(first)
  attack = config_lib.RunConfig.from_flat({**config.flat(), "mode": "attack"})
  attack_mode.attack(attack)
  results_path = os.path.join(config.workdir, "attacks", "attack_results.json")
  records = open(results_path).read()
  listing = sorted(os.listdir(os.path.join(config.workdir, "attacks")))
  attack_mode.attack(attack)
  assert open(results_path).read() == records
  assert sorted(os.listdir(os.path.join(config.workdir, "attacks"))) == listing  # no stray temporaries
