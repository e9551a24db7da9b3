"""Hierarchical models (paper eqs. 6-11, A.16, B.15): float64 brute force of every term, the L = 1 reduction to
the beta-TCVAE, the beta = 1 reduction to the plain hierarchical ELBO, and tiny end-to-end runs of every L."""

import math

import keras
import numpy as np
import pytest
import scipy.special
import scipy.stats
import tensorflow as tf

from seatbelt_tf import data, models, objectives
from seatbelt_tf.modes import train as train_mode

from conftest import tiny_config

Z_SIZES = (9, 7, 5, 4, 3)  # small widths, same shape of list as eq. C.1
H_SIZES = (16, 14, 12, 10, 8)
HIERARCHICAL = ("beta_tcdlgm", "seatbelt")


@pytest.fixture
def float64():
  """Models built inside compute in float64 (Keras caches the global policy, so set both)."""
  keras.config.set_floatx("float64")
  keras.config.set_dtype_policy("float64")
  try:
    yield
  finally:
    keras.config.set_floatx("float32")
    keras.config.set_dtype_policy("float32")


def _images(n, seed=0):
  idx = np.random.default_rng(seed).choice(737280, n, replace=False)
  return tf.constant(data.ProceduralDSprites().images(idx), keras.config.floatx())


def _model(name, **kw):
  kw = {"network": "tiny_mlp", "dataset_size": 1000, "beta": 3.0, **kw}
  if models.is_hierarchical(name):
    kw = {"layers": 3, "z_sizes": Z_SIZES, "h_sizes": H_SIZES, **kw}
  keras.utils.set_random_seed(0)
  model = models.build_model(name, **kw)
  model.build()
  return model


def _with_seed(model, fn, state=(11, 0)):
  model.seed_generator.state.assign(state)
  return fn()


# ------------------------------------------------------------------ numpy references
def _np_kl(q_loc, q_scale, p_loc, p_scale):
  return np.log(p_scale / q_scale) + (q_scale ** 2 + (q_loc - p_loc) ** 2) / (2 * p_scale ** 2) - 0.5


def _np_log_normal(z, loc, scale):
  return scipy.stats.norm.logpdf(z, loc, scale).sum(axis=-1)


def _np_mixture(z, loc, scale, log_weights):
  """log q(z_k) and log prod_d q(z_kd) with explicit loops: q(z_k) = sum_j w_kj q(z_k | component j)."""
  b, d = z.shape
  log_qz, log_prod = np.empty(b), np.empty(b)
  for k in range(b):
    comp = scipy.stats.norm.logpdf(z[k][None, :], loc, scale)  # [j, d]
    log_qz[k] = scipy.special.logsumexp(comp.sum(axis=1) + log_weights[k])
    log_prod[k] = sum(scipy.special.logsumexp(comp[:, c] + log_weights[k]) for c in range(d))
  return log_qz, log_prod


def _np_weights(b, n, method):
  w = np.full((b, b), 1.0 / (n * b))
  if method == "mss":
    m = b - 1
    w = np.full((b, b), 1.0 / m)
    for i in range(b):
      w[i, i] = 1.0 / n
      w[i, (i + 1) % b] = (n - m) / (n * m)
  return np.log(w)


def _np_terms(z, q_loc, q_scale, p_loc, p_scale, n, method):
  """Every KL term of eq. (9) by brute force, in float64."""
  num_layers = len(z)
  kl_units = [scipy.stats.norm.logpdf(z[i], q_loc[i], q_scale[i]) - scipy.stats.norm.logpdf(z[i], p_loc[i], p_scale[i])
              for i in range(num_layers - 1)]  # single-sample terms below the top (R_a, R_b)
  kl_units.append(_np_kl(q_loc[-1], q_scale[-1], 0.0, 1.0))  # analytic top layer (T)
  log_q_top = _np_log_normal(z[-1], q_loc[-1], q_scale[-1])
  log_p_top = _np_log_normal(z[-1], 0.0, 1.0)
  log_qz, log_prod = _np_mixture(z[-1], q_loc[-1], q_scale[-1], _np_weights(len(z[-1]), n, method))
  return {"kl_units": kl_units, "top_log_ratio": log_q_top - log_p_top, "mi": log_q_top - log_qz,
          "tc": log_qz - log_prod, "dim_kl": log_prod - log_p_top}


def _close(actual, expected, rtol=1e-5):
  np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=rtol, atol=1e-9)


# ------------------------------------------------------------------ the pure function
@pytest.mark.parametrize("method", ["mws", "mss"])
@pytest.mark.parametrize("num_layers", [1, 2, 4])
def test_hierarchy_terms_match_float64_brute_force(method, num_layers):
  rng = np.random.default_rng(num_layers)
  b, widths = 7, [6, 5, 4, 3][:num_layers]
  q_loc = [rng.normal(size=(b, d)) for d in widths]
  q_scale = [np.exp(rng.normal(scale=0.5, size=(b, d))) for d in widths]
  z = [l + s * rng.normal(size=l.shape) for l, s in zip(q_loc, q_scale)]
  p_loc = [rng.normal(size=(b, d)) for d in widths[:-1]]
  p_scale = [np.exp(rng.normal(scale=0.5, size=(b, d))) for d in widths[:-1]]
  got = objectives.hierarchy_kl_terms(*(list(map(tf.constant, a)) for a in (z, q_loc, q_scale, p_loc, p_scale)),
                                      dataset_size=500, method=method)
  want = _np_terms(z, q_loc, q_scale, p_loc, p_scale, 500, method)
  for i in range(num_layers):
    _close(got["kl_units"][i], want["kl_units"][i], 1e-10)
    _close(got["kl"][i], want["kl_units"][i].sum(axis=1), 1e-10)
  for name in ("top_log_ratio", "mi", "tc", "dim_kl"):
    _close(got[name], want[name], 1e-10)
  with pytest.raises(ValueError, match="3 inference and 2 generative"):
    objectives.hierarchy_kl_terms(z[:1] * 3, q_loc[:1] * 3, q_scale[:1] * 3, [], [], 500)


def test_beta_tc_loss_floors_each_layer_and_weights_tc():
  rng = np.random.default_rng(0)
  rec = tf.constant(rng.normal(size=5))
  kls = [tf.constant(rng.uniform(0, 0.2, size=(5, 3))), tf.constant(rng.uniform(0, 2.0, size=(5, 2)))]
  tc = tf.constant(rng.uniform(size=5))
  loss = objectives.beta_tc_loss(rec, kls, tc, beta=4.0, free_bits=0.5)
  floored = sum(np.maximum(k.numpy().mean(axis=0), 0.5).sum() for k in kls)
  assert float(loss) == pytest.approx(-rec.numpy().mean() + floored + 3.0 * tc.numpy().mean(), rel=1e-12)
  plain = objectives.beta_tc_loss(rec, kls, tc, beta=1.0)
  assert float(plain) == pytest.approx(-rec.numpy().mean() + sum(k.numpy().sum(axis=1).mean() for k in kls))


# ------------------------------------------------------------------ the models
@pytest.mark.parametrize("name", HIERARCHICAL)
@pytest.mark.parametrize("estimator", ["mws", "mss"])
def test_model_terms_match_float64_brute_force_of_eq_9(float64, name, estimator):
  """Every term the model tracks, recomputed by numpy loops from the model's own samples and parameters."""
  beta, free_bits, n = 5.0, 0.3, 1000
  model = _model(name, layers=4, beta=beta, free_bits=free_bits, estimator=estimator, dataset_size=n)
  x = _images(6)
  f = _with_seed(model, lambda: model.forward(x, training=False))
  tracked = _with_seed(model, lambda: model.loss_terms(x, training=False))
  f = tf.nest.map_structure(lambda t: t.numpy(), f)
  assert all(t.dtype == np.float64 for t in f["z"])
  want = _np_terms(f["z"], f["q_loc"], f["q_scale"], f["p_loc"], f["p_scale"], n, estimator)
  logits, xs = f["params"].reshape(6, -1), x.numpy().reshape(6, -1)
  reconstruction = (xs * logits - np.logaddexp(0.0, logits)).sum(axis=1)  # Bernoulli log p(x|z), eq. 8 / 6
  _close(f["reconstruction"], reconstruction)
  layer_kls = [k.sum(axis=1).mean() for k in want["kl_units"]]
  floored = sum(np.maximum(k.mean(axis=0), free_bits).sum() for k in want["kl_units"])
  expected = {
      "loss": -reconstruction.mean() + floored + (beta - 1.0) * want["tc"].mean(),  # eq. 9 as a loss
      "elbo": reconstruction.mean() - sum(layer_kls),                                # eq. 10/11 with beta = 1
      "reconstruction": reconstruction.mean(), "kl": sum(layer_kls),
      "mi_raw": want["mi"].mean(), "tc_raw": want["tc"].mean(), "dim_kl_raw": want["dim_kl"].mean(),
      # offset-free: MWS normalises by N M (eq. B.15), the batch mixture by M; MSS has no offset
      "mi": want["mi"].mean() - (np.log(n) if estimator == "mws" else 0.0),
      "tc": want["tc"].mean() - (Z_SIZES[-1] - 1) * (np.log(n) if estimator == "mws" else 0.0),
      "dim_kl": want["dim_kl"].mean() + Z_SIZES[-1] * (np.log(n) if estimator == "mws" else 0.0),
      **{f"kl_{i + 1}": v for i, v in enumerate(layer_kls)},
  }
  assert set(tracked) == set(expected) == set(model.tracker_names)
  for key, value in expected.items():
    if key in ("mi", "tc", "dim_kl"):  # raw minus ~log N per unit: held to the raw terms' precision
      np.testing.assert_allclose(float(tracked[key]), value, rtol=0, atol=1e-5 * (1 + abs(expected[key + "_raw"])))
    else:
      _close(float(tracked[key]), value)
  # The per-sample decomposition of the top layer adds up to its single-sample log-ratio (eq. A.16).
  _close(f["mi"] + f["tc"] + f["dim_kl"], want["top_log_ratio"])


@pytest.mark.parametrize("name", HIERARCHICAL)
@pytest.mark.parametrize("training_mode", [False, True])
def test_one_layer_is_exactly_the_beta_tcvae(name, training_mode):
  """L = 1: the same weights and noise give the beta-TCVAE's objective and trackers (paper Section 3)."""
  for kw in ({"beta": 6.0}, {"beta": 2.0, "free_bits": 0.4, "estimator": "mss"}):
    reference = _model("beta_tcvae", latent_dim=Z_SIZES[-1], network="tiny_conv", **kw)
    model = _model(name, layers=1, network="tiny_conv", **kw)
    assert model.layer_sizes == (Z_SIZES[-1],)
    model.set_weights(reference.get_weights())
    x = _images(8)
    want = _with_seed(reference, lambda: reference.loss_terms(x, training=training_mode))
    got = _with_seed(model, lambda: model.loss_terms(x, training=training_mode))
    for key in reference.tracker_names:
      assert float(got[key]) == pytest.approx(float(want[key]), rel=1e-6, abs=1e-6), key
    assert float(got["kl_1"]) == pytest.approx(float(want["kl"]), rel=1e-6)
    np.testing.assert_allclose(model(x).numpy(), reference(x).numpy(), rtol=1e-6)


@pytest.mark.parametrize("name", HIERARCHICAL)
def test_beta_one_decomposition_is_the_plain_hierarchical_elbo(float64, name):
  """With beta = 1 the decomposed objective (eq. 9) is the plain ELBO (eq. 5) on the same samples.

  The batch is the whole tiny dataset (N = B), so the exact aggregate posterior of the top layer over the
  dataset's draws, q(z^L) = 1/N sum_j q(z^L|z^{L-1}_j), can be computed directly; the MWS estimate (eq. B.15)
  differs from it only by its log N normalisation, which the test checks term by term.
  """
  n = 8
  model = _model(name, layers=3, beta=1.0, dataset_size=n)
  x = _images(n, seed=3)
  f = tf.nest.map_structure(lambda t: t.numpy(), _with_seed(model, lambda: model.forward(x, training=False)))
  z, q_loc, q_scale, p_loc, p_scale = f["z"], f["q_loc"], f["q_scale"], f["p_loc"], f["p_scale"]
  # Eq. 5 on these samples: log p(x|z) + log p(z) - log q(z|x), written out layer by layer.
  log_p = _np_log_normal(z[-1], 0.0, 1.0) + sum(_np_log_normal(z[i], p_loc[i], p_scale[i]) for i in range(2))
  log_q = sum(_np_log_normal(z[i], q_loc[i], q_scale[i]) for i in range(3))
  plain_elbo = f["reconstruction"] + log_p - log_q
  # Eq. 9 with beta = 1: R_a + R_b (single-sample) + T_a + T_b + T_c.
  decomposed = f["reconstruction"] - f["kl"][0] - f["kl"][1] - f["mi"] - f["tc"] - f["dim_kl"]
  _close(decomposed, plain_elbo, 1e-10)
  # The exact mixture over the whole dataset, and the MWS estimate's offsets from it (M = N here).
  log_qz, log_prod = _np_mixture(z[-1], q_loc[-1], q_scale[-1], np.full((n, n), -math.log(n)))
  exact = {"mi": _np_log_normal(z[-1], q_loc[-1], q_scale[-1]) - log_qz, "tc": log_qz - log_prod,
           "dim_kl": log_prod - _np_log_normal(z[-1], 0.0, 1.0)}
  d, log_n = z[-1].shape[1], math.log(n)
  _close(f["mi"], exact["mi"] + log_n, 1e-10)
  _close(f["tc"], exact["tc"] + (d - 1) * log_n, 1e-10)
  _close(f["dim_kl"], exact["dim_kl"] - d * log_n, 1e-10)
  offsets = objectives.estimator_offsets(d, n, "mws")  # what the trackers subtract: the same offsets
  for key in ("mi", "tc", "dim_kl"):
    _close(f[key] - offsets[key], exact[key], 1e-10)
  assert objectives.estimator_offsets(d, n, "mss") == {"mi": 0.0, "tc": 0.0, "dim_kl": 0.0}
  exact_decomposed = f["reconstruction"] - f["kl"][0] - f["kl"][1] - exact["mi"] - exact["tc"] - exact["dim_kl"]
  _close(exact_decomposed, plain_elbo, 1e-10)
  # The model's loss at beta = 1 (no free bits) is the negative of its tracked ELBO, which uses analytic KLs.
  tracked = _with_seed(model, lambda: model.loss_terms(x, training=False))
  assert float(tracked["loss"]) == pytest.approx(-float(tracked["elbo"]), rel=1e-12)


@pytest.mark.parametrize("name", HIERARCHICAL)
def test_tracked_elbo_is_unbiased_for_eq_5(name):
  """The tracked ELBO (analytic top-layer KL) has the expectation of the single-sample eq. (5), log p(x, z) -
  log q(z|x): the top layer's analytic KL is the mean of its log-ratio."""
  model = _model(name, layers=3)
  x = tf.repeat(_images(1), 4000, axis=0)
  f = tf.nest.map_structure(lambda t: t.numpy(), _with_seed(model, lambda: model.forward(x, training=False)))
  diff = f["top_log_ratio"] - f["kl"][-1]
  assert abs(diff.mean()) < 4 * diff.std() / math.sqrt(len(diff))


def test_seatbelt_decoder_sees_every_layer_and_the_dlgm_only_the_bottom():
  seatbelt, dlgm = _model("seatbelt", layers=4), _model("beta_tcdlgm", layers=4)
  assert seatbelt.layer_sizes == dlgm.layer_sizes == Z_SIZES[1:]
  first_kernel = lambda m: next(v for v in m.decoder.trainable_variables if len(v.shape) == 2)
  assert first_kernel(seatbelt).shape[0] == sum(Z_SIZES[1:])
  assert first_kernel(dlgm).shape[0] == Z_SIZES[1]
  # Hidden widths follow h_sizes aligned with z_sizes (eqs. C.6-C.8): between z_sizes[k] and z_sizes[k+1], h[k].
  assert [m.hidden for m in seatbelt.up] == [m.hidden for m in seatbelt.down] == list(H_SIZES[1:4])
  x = _images(2)
  for model in (seatbelt, dlgm):
    params = model.posterior_layers(x)
    assert [p[0].shape[1] for p in params] == list(Z_SIZES[1:])
    assert model(x).shape == x.shape


def test_paper_widths_and_mlp_structure():
  model = models.build_model("seatbelt", layers=5, network="tiny_conv", dataset_size=1000)
  model.build()
  assert model.layer_sizes == (96, 48, 24, 12, 6)
  assert [m.hidden for m in model.up] == [1024, 512, 256, 128]
  q2 = model.up[0]  # q(z^2|z^1): 96 -> 1024 -> 1024 -> 2 * 48, BatchNorm after each hidden Dense
  kinds = [type(layer).__name__ for layer in q2.blocks]
  assert kinds == ["Dense", "FusedBatchNormalization", "LeakyReLU"] * 2  # (Keras's layer on the fused kernel)
  assert q2.count_params() == (96 * 1024 + 1024) + 4 * 1024 + (1024 * 1024 + 1024) + 4 * 1024 + (1024 * 96 + 96)


@pytest.mark.parametrize("name", HIERARCHICAL)
def test_get_config_round_trip(name):
  model = _model(name, layers=4, estimator="mss", free_bits=0.2, seed=4, beta_warmup_steps=9)
  config = model.get_config()
  clone = models.MODELS[name].from_config(config)
  clone.build()
  assert clone.get_config() == config and clone.layer_sizes == model.layer_sizes
  clone.set_weights(model.get_weights())
  x = _images(3)
  np.testing.assert_allclose(clone(x).numpy(), model(x).numpy(), rtol=1e-6)
  again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
  assert type(again) is type(model) and again.get_config() == config


def test_invalid_hierarchies_are_refused():
  with pytest.raises(ValueError, match="between 1 and len"):
    models.build_model("seatbelt", layers=6)
  with pytest.raises(ValueError, match="not latent_dim"):
    models.build_model("seatbelt", latent_dim=4)
  with pytest.raises(ValueError, match="h_sizes"):
    models.build_model("beta_tcdlgm", layers=2, z_sizes=(8, 4, 2), h_sizes=(16,))


@pytest.mark.parametrize("name", HIERARCHICAL)
@pytest.mark.parametrize("num_layers", [1, 2, 3, 4, 5])
def test_every_depth_trains_end_to_end_on_the_tiny_config(tmp_path, name, num_layers):
  config = tiny_config(tmp_path / "w", model=name, layers=num_layers, free_bits=0.05)
  results = train_mode.train(config)
  scalars = {k: v for k, v in results.items() if isinstance(v, float)}
  assert np.isfinite(list(scalars.values())).all(), scalars
  assert [f"kl_{i + 1}" in results for i in range(num_layers)] == [True] * num_layers
  assert [len(results["kl_units"][str(i + 1)]) for i in range(num_layers)] == list((96, 48, 24, 12, 6)[-num_layers:])
  assert results["elbo"] == pytest.approx(results["reconstruction"] - results["kl"], rel=1e-4)
  assert results["kl"] == pytest.approx(sum(results[f"kl_{i + 1}"] for i in range(num_layers)), rel=1e-4)
