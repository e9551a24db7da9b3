"""Models: config round trips, shapes of the Chen et al. networks, objective identities and the trackers."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seatbelt_tf import data, models, nn, objectives


def _batch(n=8, seed=0):
  idx = np.random.default_rng(seed).integers(0, 737280, n)
  return tf.constant(data.ProceduralDSprites().images(idx), tf.float32)


def _model(name="beta_tcvae", **kw):
  kw = {"network": "tiny_conv", "dataset_size": 1000, "beta": 3.0, **kw}
  if models.is_hierarchical(name):
    kw = {"layers": 2, "z_sizes": (6, 4), "h_sizes": (8,), **kw}
  else:
    kw = {"latent_dim": 4, **kw}
  model = models.build_model(name, **kw)
  model.build()
  return model


@pytest.mark.parametrize("name", sorted(models.MODELS))
@pytest.mark.parametrize("network", sorted(nn.NETWORKS))
def test_get_config_round_trip_gives_the_same_model(name, network):
  model = _model(name, network=network, estimator="mss", free_bits=0.1, seed=3, beta_warmup_steps=7)
  config = model.get_config()
  clone = models.MODELS[name].from_config(config)
  clone.build()
  assert clone.get_config() == config
  clone.set_weights(model.get_weights())
  x = _batch(4)
  np.testing.assert_allclose(clone(x).numpy(), model(x).numpy(), rtol=1e-6)
  # Through Keras' own serialisation too (registered classes).
  again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(model))
  assert type(again) is type(model) and again.get_config() == config


@pytest.mark.parametrize("layer", [nn.ConvEncoder(6), nn.ConvDecoder(1), nn.MLPEncoder(6), nn.MLPDecoder(1)])
def test_network_layers_round_trip(layer):
  clone = type(layer).from_config(layer.get_config())
  assert clone.get_config() == layer.get_config()


def test_chen_conv_networks_have_the_published_shapes_and_sizes():
  encoder, decoder = nn.build_networks("conv", 20, 1)
  assert encoder(tf.zeros([2, 64, 64, 1])).shape == (2, 20)
  assert decoder(tf.zeros([2, 10])).shape == (2, 64, 64, 1)
  conv = lambda k, cin, cout: k * k * cin * cout + cout
  bn = lambda c: 4 * c
  expected_enc = (conv(4, 1, 32) + bn(32) + conv(4, 32, 32) + bn(32) + conv(4, 32, 64) + bn(64)
                  + conv(4, 64, 64) + bn(64) + conv(4, 64, 512) + bn(512) + conv(1, 512, 20))
  assert encoder.count_params() == expected_enc
  expected_dec = (conv(1, 10, 512) + bn(512) + conv(4, 512, 64) + bn(64) + conv(4, 64, 64) + bn(64)
                  + conv(4, 64, 32) + bn(32) + conv(4, 32, 32) + bn(32) + conv(4, 32, 1))
  assert decoder.count_params() == expected_dec
  mlp_enc, mlp_dec = nn.build_networks("mlp", 20, 1)
  assert mlp_enc(tf.zeros([2, 64, 64, 1])).shape == (2, 20)
  assert mlp_enc.count_params() == 4096 * 1200 + 1200 + 1200 * 1200 + 1200 + 1200 * 20 + 20
  assert mlp_dec(tf.zeros([2, 10])).shape == (2, 64, 64, 1)
  assert mlp_dec.count_params() == 10 * 1200 + 2 * 1200 * 1200 + 3 * 1200 + 1200 * 4096 + 4096
  with pytest.raises(ValueError, match="64x64"):
    encoder(tf.zeros([1, 32, 32, 1]))


def _terms(model, x, seed_state=(5, 0)):
  model.seed_generator.state.assign(seed_state)
  return {k: float(v) for k, v in model.loss_terms(x, training=False).items()}


def test_beta_tcvae_objective_is_elbo_minus_weighted_tc():
  x = _batch()
  tc_model = _model("beta_tcvae", beta=1.0)
  vae = _model("vae", beta=1.0)
  vae.set_weights(tc_model.get_weights())
  a, b = _terms(tc_model, x), _terms(vae, x)
  assert a == pytest.approx(b, rel=1e-6)                  # beta = 1: both are the negative ELBO
  assert a["loss"] == pytest.approx(-a["elbo"], rel=1e-6)
  strong = _model("beta_tcvae", beta=7.0)
  strong.set_weights(tc_model.get_weights())
  c = _terms(strong, x)
  assert c["loss"] == pytest.approx(-c["elbo"] + 6.0 * c["tc_raw"], rel=1e-5)  # eq. 4 = ELBO - (beta - 1) TC
  log_n = np.log(strong.dataset_size)  # MWS: the plain names are the batch mixture's terms (offset-free)
  assert c["tc"] == pytest.approx(c["tc_raw"] - (strong.latent_dim - 1) * log_n, rel=1e-5, abs=1e-3)
  assert c["mi"] + c["tc"] + c["dim_kl"] == pytest.approx(c["mi_raw"] + c["tc_raw"] + c["dim_kl_raw"], abs=1e-3)
  assert c["elbo"] == pytest.approx(a["elbo"], rel=1e-6)  # the tracked ELBO never includes beta
  beta_vae = _model("vae", beta=4.0)
  beta_vae.set_weights(tc_model.get_weights())
  d = _terms(beta_vae, x)
  assert d["loss"] == pytest.approx(-d["reconstruction"] + 4.0 * d["kl"], rel=1e-5)


def _penalised(terms, beta, vae):
  """The loss of eqs. (4), (9)-(11) at `beta` from a model's own batch means (free bits off)."""
  if vae:
    return -terms["reconstruction"] + beta * terms["kl"]
  return -terms["elbo"] + (beta - 1.0) * terms["tc_raw"]


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_beta_warmup_rises_from_the_plain_elbo_to_beta_with_the_optimizer_s_step(name):
  x = _batch()
  model = _model(name, beta=5.0, beta_warmup_steps=4)
  terms = lambda training: {k: float(v) for k, v in model.loss_terms(x, training=training).items()}
  assert float(model.loss_beta(True)) == 5.0  # no optimizer yet (a model used outside fit): beta itself
  model.compile(optimizer=keras.optimizers.Adam(1e-3))
  model.optimizer.build(model.trainable_variables)
  for step, beta_t in [(0, 1.0), (1, 2.0), (3, 4.0), (4, 5.0), (40, 5.0)]:
    model.optimizer.iterations.assign(step)
    assert float(model.loss_beta(True)) == pytest.approx(beta_t)
    t = terms(True)
    assert t["loss"] == pytest.approx(_penalised(t, beta_t, name == "vae"), rel=1e-5, abs=1e-3)
  model.optimizer.iterations.assign(1)
  t = terms(False)  # evaluation scores the full objective whatever the step
  assert t["loss"] == pytest.approx(_penalised(t, 5.0, name == "vae"), rel=1e-5, abs=1e-3)
  assert abs(t["loss"] - _penalised(t, 2.0, name == "vae")) > 0.1  # (its tolerance above is ~0.03)
  reference = np.array([1 + 4 * min(1, s / 4) for s in range(8)], np.float32)  # the schedule, brute force
  np.testing.assert_allclose([float(objectives.warmup_beta(5.0, s, 4)) for s in range(8)], reference)
  np.testing.assert_allclose(float(objectives.warmup_beta(0.5, 1, 2)), 0.75)  # beta < 1 falls from 1
  with pytest.raises(ValueError, match="warmup_steps=0"):
    objectives.warmup_beta(5.0, 0, 0)
  with pytest.raises(ValueError, match="beta_warmup_steps >= 0"):
    _model(name, beta_warmup_steps=-1)


@pytest.mark.parametrize("jit", [False, True])
def test_the_compiled_train_step_follows_the_warmup(jit):
  """Inside fit (graph or XLA), a warm-up run's update at step s is a constant-beta run's at beta_t(s): the
  first with beta = 1, one past the warm-up with beta itself."""
  x = _batch(16)
  data = tf.data.Dataset.from_tensor_slices(x).batch(16)

  def one_step(start, **kw):
    m = _model("beta_tcvae", network="tiny_mlp", seed=1, **kw)
    m.set_weights(base.get_weights())
    m.compile(optimizer=keras.optimizers.Adam(1e-2), jit_compile=jit)
    m.optimizer.build(m.trainable_variables)
    m.optimizer.iterations.assign(start)
    m.fit(data, epochs=1, verbose=0, shuffle=False)
    return m.get_weights()

  base = _model("beta_tcvae", network="tiny_mlp", seed=1)
  warm_first, plain = one_step(0, beta=6.0, beta_warmup_steps=3), one_step(0, beta=1.0)
  warm_past, full = one_step(3, beta=6.0, beta_warmup_steps=3), one_step(3, beta=6.0)
  for a, b in zip(warm_first, plain):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  for a, b in zip(warm_past, full):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert not all(np.allclose(a, b) for a, b in zip(warm_first, full))  # beta matters at all on this batch


def test_free_bits_floor_the_kl_term():
  x = _batch()
  plain = _model("vae", beta=1.0)
  floored = _model("vae", beta=1.0, free_bits=50.0)  # above any unit's KL at initialisation
  floored.set_weights(plain.get_weights())
  a, b = _terms(plain, x), _terms(floored, x)
  assert b["loss"] == pytest.approx(-a["reconstruction"] + 4 * 50.0, rel=1e-5)


def test_sampling_is_seeded():
  x = _batch()
  m = _model()
  assert _terms(m, x, (9, 0)) == _terms(m, x, (9, 0))
  assert _terms(m, x, (9, 0))["reconstruction"] != _terms(m, x, (10, 0))["reconstruction"]


def test_fit_logs_every_tracker_and_a_real_loss():
  m = _model("vae", network="tiny_mlp")
  assert [t.name for t in m.metrics] == list(m.tracker_names) + list(m.grad_norm_names)
  assert m.grad_norm_names == ("grad_norm", "grad_norm_encoder", "grad_norm_decoder")
  m.compile(optimizer=keras.optimizers.Adam(1e-3))
  x = _batch(32)
  history = m.fit(tf.data.Dataset.from_tensor_slices(x).batch(8), epochs=2, verbose=0, shuffle=False)
  for name in m.tracker_names + m.grad_norm_names:
    assert len(history.history[name]) == 2 and np.isfinite(history.history[name]).all()
  assert history.history["loss"][0] > 100  # the model's own loss, not Keras' 0.0 placeholder
  assert history.history["loss"][-1] < history.history["loss"][0]
  evaluated = m.evaluate(x, batch_size=5, verbose=0, return_dict=True)  # 32 = 6 * 5 + 2: weighted by examples
  assert set(evaluated) == set(m.tracker_names)


def test_gaussian_likelihood_for_continuous_data():
  m = _model("beta_tcvae", likelihood="gaussian", network="tiny_mlp")
  x = 2.0 * _batch(8) - 1.0
  terms = _terms(m, x)
  assert np.isfinite(list(terms.values())).all()
  assert "likelihood_log_scale" in [v.name for v in m.trainable_variables]


def test_invalid_model_arguments_are_refused():
  with pytest.raises(ValueError, match="likelihood"):
    models.build_model("vae", latent_dim=2, likelihood="poisson")
  with pytest.raises(ValueError, match="estimator"):
    models.build_model("vae", latent_dim=2, estimator="exact")
  with pytest.raises(ValueError, match="beta >= 0"):
    models.build_model("vae", latent_dim=2, beta=-1)
  with pytest.raises(ValueError, match="beta_tcdlgm, beta_tcvae, seatbelt, vae"):
    models.build_model("seatbelt_xl", latent_dim=2)
  with pytest.raises(ValueError, match="conv"):
    nn.build_networks("resnet", 2, 1)
