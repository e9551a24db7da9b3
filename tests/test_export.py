"""SavedModel export for TF Serving (seatbelt_tf.serving): endpoints against the live model, saved_model_cli, the
REST row format, input validation, versioning and atomicity, and attacks run on an export."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from seatbelt_tf import attacks, data, models, serving


def _model(name, layers=1):
  keras.utils.set_random_seed(0)
  kw = {"network": "tiny_mlp", "dataset_size": 1000}
  if models.is_hierarchical(name):
    kw.update(layers=layers, z_sizes=(10, 8, 6, 5, 4)[-layers:], h_sizes=(16, 14, 12, 10))
  else:
    kw.update(latent_dim=4)
  model = models.build_model(name, **kw)
  model.build()
  return model


def _images(n=5, seed=0):
  idx = np.random.default_rng(seed).choice(737280, n, replace=False)
  return tf.constant(data.ProceduralDSprites().images(idx), tf.float32)


@pytest.mark.parametrize("name,layers", [("vae", 1), ("beta_tcvae", 1)]
                         + [(name, layers) for name in ("beta_tcdlgm", "seatbelt") for layers in range(1, 6)])
def test_every_endpoint_matches_the_live_model(tmp_path, name, layers):
  model = _model(name, layers)
  path = serving.export_model(model, (0.0, 1.0), str(tmp_path), name)
  assert path == os.path.join(str(tmp_path), name, "1")
  card = json.load(open(os.path.join(path, serving.CARD_NAME)))
  assert card["layer_sizes"] == list(model.layer_sizes) and card["likelihood"] == "bernoulli"
  assert card["data_range"] == [0.0, 1.0] and card["image_shape"] == [64, 64, 1] and card["code_version"]
  loaded = tf.saved_model.load(path)
  assert set(loaded.signatures) == set(serving.SIGNATURES)
  x = _images()
  live = model.posterior_layers(x)
  out = loaded.signatures["serving_default"](images=x)
  np.testing.assert_allclose(out["representation"], live[-1][0], atol=1e-5)
  np.testing.assert_allclose(out["representation_scale"], live[-1][1], atol=1e-5)
  enc = loaded.signatures["encode"](images=x)
  assert len(enc) == 2 * layers
  for i, (loc, scale) in enumerate(live):
    np.testing.assert_allclose(enc[f"loc_{i + 1}"], loc, atol=1e-5)
    np.testing.assert_allclose(enc[f"scale_{i + 1}"], scale, atol=1e-5)
  z = {f"z_{i + 1}": loc for i, (loc, _) in enumerate(live)}
  np.testing.assert_allclose(loaded.signatures["decode"](**z)["reconstruction_params"],
                             serving.decode_layers(model, [loc for loc, _ in live]), atol=1e-5)
  np.testing.assert_allclose(loaded.signatures["reconstruct"](images=x)["reconstruction"], model(x), atol=1e-5)
  noise = [tf.random.stateless_normal([5, d], seed=[1, i]) for i, d in enumerate(model.layer_sizes)]
  terms = loaded.signatures["attack_terms"](images=x, targets=x[::-1],
                                            **{f"noise_{i + 1}": e for i, e in enumerate(noise)})
  live_terms = model.attack_terms(x, x[::-1], noise)
  np.testing.assert_allclose(terms["reconstruction"], live_terms["reconstruction"], rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(terms["kl"], live_terms["kl"], rtol=1e-5, atol=1e-4)
  z_top = tf.random.stateless_normal([5, model.layer_sizes[-1]], seed=[2, 0])
  below = noise[:-1]
  generated = loaded.signatures["generate"](z_top=z_top, **{f"noise_{i + 1}": e for i, e in enumerate(below)})
  np.testing.assert_allclose(generated["images"], model.generate(z_top, below or None), atol=1e-5)
  fns = serving.SavedModelFns(path)  # zero noise below z^L: the conditional means
  np.testing.assert_allclose(fns.generate_fn(z_top), model.generate(z_top), atol=1e-5)


def test_bad_inputs_give_the_documented_errors(tmp_path):
  path = serving.export_model(_model("seatbelt", 2), (0.0, 1.0), str(tmp_path), "m")
  serve = tf.saved_model.load(path).signatures["serving_default"]
  x = _images(2)
  cases = [(x + 2.0, "values in \\[0, 1\\]; got values from"), (x[:, :32], "got shape.*2 32 64 1"),
           (x[0], "got shape.*64 64 1"), (x[..., :0], "got shape"),
           (tf.where(x > 0.5, np.nan, x), "got NaN or Inf")]
  for bad, message in cases:
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
      serve(images=bad)
  with pytest.raises(tf.errors.InvalidArgumentError, match="expected to be a float tensor but is a double"):
    serve(images=tf.cast(x, tf.float64))  # a wrong dtype is refused by the signature itself
  assert serve(images=x[:0])["representation"].shape == (0, model_top(path))  # an empty batch is fine
  with pytest.raises(ValueError, match="not a SavedModel directory"):
    serving.SavedModelFns(str(tmp_path))


def model_top(path):
  return json.load(open(os.path.join(path, serving.CARD_NAME)))["layer_sizes"][-1]


def test_versions_are_never_overwritten_and_a_failed_export_leaves_nothing(tmp_path, monkeypatch):
  model = _model("beta_tcvae")
  first = serving.export_model(model, (0.0, 1.0), str(tmp_path), "m")
  before = {f: os.path.getmtime(os.path.join(first, f)) for f in os.listdir(first)}
  second = serving.export_model(model, (0.0, 1.0), str(tmp_path), "m")
  assert os.path.basename(first) == "1" and os.path.basename(second) == "2"
  assert {f: os.path.getmtime(os.path.join(first, f)) for f in os.listdir(first)} == before

  def crash(*args, **kwargs):
    tmp = args[1]
    os.makedirs(os.path.join(tmp, "variables"))
    open(os.path.join(tmp, "saved_model.pb"), "wb").write(b"partial")
    raise OSError("disk full")
  monkeypatch.setattr(tf.saved_model, "save", crash)
  with pytest.raises(OSError, match="disk full"):
    serving.export_model(model, (0.0, 1.0), str(tmp_path), "m")
  assert sorted(os.listdir(os.path.join(str(tmp_path), "m"))) == ["1", "2"]  # no version 3, no temporary folder
  with pytest.raises(ValueError, match="plain folder name"):
    serving.export_model(model, (0.0, 1.0), str(tmp_path), "../m")


def test_saved_model_cli_and_the_rest_row_format(tmp_path):
  path = serving.export_model(_model("seatbelt", 2), (0.0, 1.0), str(tmp_path), "m")
  cli = [sys.executable, "-c", "import sys; from tensorflow.python.tools import saved_model_cli as c; "
         "sys.argv[0] = 'saved_model_cli'; c.main()"]
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
  shown = subprocess.run(cli + ["show", "--dir", path, "--all"], capture_output=True, text=True, env=env)
  assert shown.returncode == 0, shown.stderr[-2000:]
  for name in serving.SIGNATURES:
    assert f"signature_def['{name}']" in shown.stdout
  x = _images(3)
  np.save(tmp_path / "x.npy", x.numpy())
  run = subprocess.run(cli + ["run", "--dir", path, "--tag_set", "serve", "--signature_def", "serving_default",
                              "--inputs", f"images={tmp_path / 'x.npy'}", "--outdir", str(tmp_path / "out")],
                       capture_output=True, text=True, env=env)
  assert run.returncode == 0, run.stderr[-2000:]
  loaded = tf.saved_model.load(path)
  expected = loaded.signatures["serving_default"](images=x)["representation"].numpy()
  np.testing.assert_allclose(np.load(tmp_path / "out" / "representation.npy"), expected, atol=1e-6)
  # The REST predict body in row format, converted the way TF Serving does (instances stacked per input).
  body = json.loads(serving.to_instances(x.numpy()))
  stacked = np.array([row["images"] for row in body["instances"]], np.float32)
  out = loaded.signatures[body["signature_name"]](images=tf.constant(stacked))
  np.testing.assert_allclose(out["representation"], expected, atol=1e-6)


@pytest.mark.parametrize("mode,draws", [("latent", 1), ("output", 1), ("output", 4)])
def test_an_attack_on_the_export_reproduces_the_live_attack(tmp_path, mode, draws):
  model = _model("seatbelt", 2)
  path = serving.export_model(model, (0.0, 1.0), str(tmp_path), "m")
  x, x_t = _images(2).numpy(), _images(2, seed=1).numpy()
  kwargs = dict(lambdas=attacks.lambda_grid(3), mode=mode, layers="all", max_iterations=15, starts=("input",),
                objective_draws=draws)
  live, live_arrays = attacks.run_attack(attacks.ModelFns(model), x, x_t, **kwargs)
  exported, exported_arrays = attacks.run_attack(serving.SavedModelFns(path), x, x_t, **kwargs)
  # The export's graph rounds differently from the live model (~1e-7). Every record's objective must agree to 1e-5
  # (relative; they are ~1e-7 apart) and its -log p(x^t|z~) to 1e-3. The x*-dependent metrics and x* itself are
  # compared where lambda pins x* down (lambda >= 1): at lambda = 2^-20 the objective is flat along the distortion,
  # so the two runs (15 iterations, not converged) may stop at different x* of equal objective. One exception: at
  # lambda = 1 with the output objective on one draw, the two runs' slopes are 1e-7 apart from iteration 5 and a
  # backtracking step's interpolation amplifies that from iteration 11 on: x* ends 0.4% apart in distortion (2.432
  # against 2.442 on pair 1), the objectives 8e-7 apart (the driver of 2026-12-04; the earlier one happened to stay
  # within 0.1% there), so there only the objective, -log p(x^t|z~) and the iterations are compared. With one draw
  # the iterations agree; with the output objective over 4 draws the stopping test sees the rounding too (one
  # problem at lambda = 1 stopped at iteration 13 on the export and 15 live), so there they are not compared.
  pinned = np.array([r["lambda"] > 1 or (r["lambda"] == 1 and not (mode == "output" and draws == 1)) for r in live])
  for a, b, x_star_fixed in zip(live, exported, pinned):
    keys = attacks.ATTACK_RECORD_KEYS if x_star_fixed else ("mode", "layers", "pair", "lambda", "objective",
                                                             "target_nll", "target_own_nll", "iterations")
    for key in keys:
      if key == "iterations" and draws > 1:
        continue
      if key == "objective":
        assert b[key] == pytest.approx(a[key], rel=1e-5), key
      elif isinstance(a[key], float):
        assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-3), key
      else:
        assert a[key] == b[key], key
  np.testing.assert_allclose(exported_arrays["adversarial"][pinned], live_arrays["adversarial"][pinned], atol=1e-3)


def test_export_mode_on_a_trained_workdir(tmp_path):
  from seatbelt_tf import config as config_lib
  from seatbelt_tf.modes import attack as attack_mode
  from seatbelt_tf.modes import export as export_mode
  from seatbelt_tf.modes import train as train_mode
  from conftest import tiny_config
  config = tiny_config(tmp_path / "w", model="seatbelt", layers=2)
  train_mode.train(config)
  export = config_lib.RunConfig.from_flat({**config.flat(), "mode": "export"}).validate()
  summary = export_mode.export(export)
  assert summary["export_path"] == os.path.join(config.workdir, "export", "seatbelt", "1")
  card = json.load(open(os.path.join(summary["export_path"], serving.CARD_NAME)))
  assert card["model_family"] == "seatbelt" and card["step"] == config.train.train_steps
  assert card["training_metrics"]["elbo"] < 0 and card["config"]["layers"] == 2
  # --mode=attack on the export reproduces the attack on the checkpoint (same pairs, same numbers).
  settings = {"mode": "attack", "attack_pairs": 2, "attack_lambdas": 3, "attack_max_iterations": 15,
              "attack_modes": "latent,output", "attack_starts": "input"}
  attack_mode.attack(config_lib.RunConfig.from_flat({**config.flat(), **settings}).validate())
  other = str(tmp_path / "attack_of_export")
  attack_mode.attack(config_lib.RunConfig.from_flat(
      {**config.flat(), **settings, "workdir": other, "saved_model": summary["export_path"]}).validate())
  live = json.load(open(os.path.join(config.workdir, "attacks", "attack_results.json")))
  exported = json.load(open(os.path.join(other, "attacks", "attack_results.json")))
  assert [(r["mode"], r["pair"], r["lambda"]) for r in live] == [(r["mode"], r["pair"], r["lambda"]) for r in exported]
  np.testing.assert_allclose([r["objective"] for r in exported], [r["objective"] for r in live], rtol=1e-3, atol=1e-3)
  arrays = [np.load(os.path.join(d, "attacks", "adversarial_inputs.npz")) for d in (config.workdir, other)]
  np.testing.assert_array_equal(arrays[0]["inputs"], arrays[1]["inputs"])
  with pytest.raises(ValueError, match="not a SavedModel directory"):
    attack_mode.attack(config_lib.RunConfig.from_flat(
        {**config.flat(), **settings, "workdir": other, "saved_model": str(tmp_path)}).validate())
  again = export_mode.export(config_lib.RunConfig.from_flat(
      {**export.flat(), "export_dir": str(tmp_path / "serving"), "model_name": "robust"}).validate())
  assert again["export_path"] == str(tmp_path / "serving" / "robust" / "1")


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_exports_and_atomic_writes_honour_the_umask_and_fsync_the_folder(tmp_path, monkeypatch, umask):
  """An export's version folder and files, and every atomically written file, get an ordinary write's mode under
  the umask (0755/0644 under 022) instead of tempfile's private 0700/0600; the folder is fsynced after the rename."""
  from seatbelt_tf import io_utils, plotting  # pylint: disable=g-import-not-at-top
  synced = []
  real_fsync_folder = io_utils.fsync_folder
  monkeypatch.setattr(io_utils, "fsync_folder", lambda p: (synced.append(os.path.abspath(p)), real_fsync_folder(p)))
  old = os.umask(umask)
  try:
    path = serving.export_model(_model("beta_tcvae"), (0.0, 1.0), str(tmp_path / "export"), "m")
    io_utils.atomic_write_json(str(tmp_path / "out" / "r.json"), {"a": 1})
    fig = plotting.pyplot().figure()
    plotting.save(fig, str(tmp_path / "out" / "f.png"))
  finally:
    os.umask(old)
  assert os.stat(path).st_mode & 0o777 == 0o777 & ~umask
  for name in ("saved_model.pb", serving.CARD_NAME, "r.json", "f.png"):
    where = path if name in ("saved_model.pb", serving.CARD_NAME) else str(tmp_path / "out")
    assert os.stat(os.path.join(where, name)).st_mode & 0o777 == 0o666 & ~umask, name
  assert os.path.abspath(os.path.dirname(path)) in synced and str(tmp_path / "out") in synced


def test_attack_records_recompute_from_the_export_as_the_exact_delta(tmp_path):
  """Every record's `objective` equals Delta of eqs. 13-15 recomputed from the export's own encode signature and
  the saved adversarial inputs, with the exact ||d||_2 (at lambda = 2^20 and d ~ 0 the optimiser's smoothed norm
  alone would add ~1 nat)."""
  path = serving.export_model(_model("seatbelt", 2), (0.0, 1.0), str(tmp_path), "m")
  fns = serving.SavedModelFns(path)
  x, x_t = _images(2).numpy(), _images(2, seed=1).numpy()
  lambdas = attacks.lambda_grid(4)
  records, arrays = attacks.run_attack(fns, x, x_t, lambdas, "latent", "all", max_iterations=15)
  x_adv = tf.constant(arrays["adversarial"])
  kl = attacks.latent_divergence(fns.encode_fn(x_adv), fns.encode_fn(tf.constant(arrays["targets"])), "all")
  l2 = np.sqrt(((arrays["adversarial"].astype(np.float64) - arrays["inputs"]) ** 2).reshape(len(records), -1).sum(1))
  delta = kl.numpy().astype(np.float64) + np.array([r["lambda"] for r in records]) * l2
  np.testing.assert_allclose([r["objective"] for r in records], delta, rtol=1e-4, atol=1e-4)
  top = max(range(len(records)), key=lambda k: records[k]["lambda"])
  assert records[top]["objective_smoothed"] - records[top]["objective"] > 0.5
