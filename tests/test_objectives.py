"""Estimators against float64 brute force, MSS unbiasedness by Monte Carlo, and the closed-form terms."""

import math

import numpy as np
import pytest
import scipy.special
import scipy.stats
import tensorflow as tf

import seatbelt_tf
from seatbelt_tf import objectives


def _random_batch(rng, batch, dim, dtype=np.float64):
  loc = rng.normal(size=(batch, dim))
  scale = np.exp(rng.normal(scale=0.5, size=(batch, dim)))
  z = loc + scale * rng.normal(size=(batch, dim))
  return z.astype(dtype), loc.astype(dtype), scale.astype(dtype)


def _brute_force(z, loc, scale, n, method):
  """Loops over i, j with the weights written out one by one, in float64."""
  z, loc, scale = (np.asarray(a, np.float64) for a in (z, loc, scale))
  b, d = z.shape
  m = b - 1
  weights = np.empty((b, b))
  for i in range(b):
    for j in range(b):
      if method == "mws":
        weights[i, j] = 1.0 / (n * b)
      elif j == i:
        weights[i, j] = 1.0 / n
      elif j == (i + 1) % b:
        weights[i, j] = (n - m) / (n * m)
      else:
        weights[i, j] = 1.0 / m
  log_qz = np.empty(b)
  log_prod = np.empty(b)
  for i in range(b):
    comp = scipy.stats.norm.logpdf(z[i][None, :], loc, scale)  # [j, d]
    log_qz[i] = scipy.special.logsumexp(comp.sum(axis=1), b=weights[i])
    log_prod[i] = sum(scipy.special.logsumexp(comp[:, k], b=weights[i]) for k in range(d))
  return log_qz, log_prod


@pytest.mark.parametrize("method", ["mws", "mss"])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-9), (np.float32, 1e-4)])
def test_log_qz_minibatch_matches_brute_force(method, dtype, rtol):
  rng = np.random.default_rng(0)
  for batch, dim, n in [(7, 3, 50), (16, 10, 737280), (2, 1, 2)]:
    z, loc, scale = _random_batch(rng, batch, dim, dtype)
    log_qz, log_prod = seatbelt_tf.log_qz_minibatch(z, loc, scale, n, method=method)
    assert log_qz.dtype == tf.as_dtype(dtype) and log_qz.shape == (batch,) and log_prod.shape == (batch,)
    ref_qz, ref_prod = _brute_force(z, loc, scale, n, method)
    np.testing.assert_allclose(log_qz.numpy(), ref_qz, rtol=rtol)
    np.testing.assert_allclose(log_prod.numpy(), ref_prod, rtol=rtol)


def _dense_estimates(z, loc, scale, log_w):
  """The `[B, M, D]` tensor written out and differentiated by TensorFlow: the reference for the blocked form."""
  log_density = objectives.gaussian_log_density_matrix(z, loc, scale)
  log_w = tf.broadcast_to(log_w, [tf.shape(z)[0], tf.shape(loc)[0]])
  return (tf.reduce_logsumexp(tf.reduce_sum(log_density, axis=2) + log_w, axis=1),
          tf.reduce_sum(tf.reduce_logsumexp(log_density + log_w[:, :, None], axis=1), axis=1))


@pytest.mark.parametrize("method", ["mws", "mss"])
@pytest.mark.parametrize("mode", ["eager", "graph", "xla", "graph_unknown_batch"])
def test_blocked_estimates_and_their_written_out_gradient_match_the_dense_autodiff(method, mode):
  """Row blocks (sizes that do and do not divide the batch), global components, uneven upstream gradients, float64."""
  estimators = objectives.estimators
  rng = np.random.default_rng(5)
  for batch, components, dim, rows in [(7, 7, 3, 3), (130, 130, 4, 64), (64, 64, 2, 64), (5, 12, 3, 2)]:
    z, loc, scale = (tf.Variable(a) for a in _random_batch(rng, components, dim))
    z = tf.Variable(z[:batch])
    offset = 4 if components > batch else 0
    upstream = [tf.constant(rng.normal(size=batch)) for _ in range(2)]

    def run(form, z=z):
      with tf.GradientTape() as tape:
        tape.watch(z)
        global_params = (loc, scale, offset) if components > batch else None
        _, _, log_w, _ = estimators._components_and_weights(z, loc, scale, 1000, method, global_params)
        log_qz, log_product = form(z, loc, scale, log_w)
        loss = tf.reduce_sum(log_qz * upstream[0] + log_product * upstream[1])
      return [log_qz, log_product, *tape.gradient(loss, [z, loc, scale])]

    blocked = lambda *a: estimators._mixture_estimates(*a, block_rows=rows)
    expected = run(_dense_estimates)
    if mode == "eager":
      got = run(blocked)
    elif mode == "graph_unknown_batch":
      got = tf.function(lambda v: run(blocked, v), input_signature=[tf.TensorSpec([None, dim], tf.float64)])(z)
    else:
      got = tf.function(lambda: run(blocked), jit_compile=mode == "xla")()
    for name, g, e in zip(["log_qz", "log_qz_product", "d/dz", "d/dloc", "d/dscale"], got, expected):
      assert g.shape == e.shape, name
      np.testing.assert_allclose(g, e, rtol=1e-10, atol=1e-10, err_msg=f"{name}, B={batch}, M={components}")


def test_mss_weights_rows_sum_to_one_and_sit_on_the_diagonal():
  n, b = 100, 6
  w = np.exp(objectives.log_importance_weights(b, n, "mss", dtype=tf.float64).numpy())
  np.testing.assert_allclose(w.sum(axis=1), 1.0, rtol=1e-12)
  np.testing.assert_allclose(np.diag(w), 1.0 / n)
  m = b - 1
  for i in range(b):
    assert np.isclose(w[i, (i + 1) % b], (n - m) / (n * m))
    assert np.isclose(w[i], 1.0 / m).sum() == b - 2
  # The widely copied reference matrix (W.view(-1)[::M+1] strides by B, down the first column) fails this check.
  ref = np.full((b, b), 1.0 / m)
  ref.reshape(-1)[::m + 1] = 1.0 / n
  ref.reshape(-1)[1::m + 1] = (n - m) / (n * m)
  ref[m - 1, 0] = (n - m) / (n * m)
  assert not np.allclose(ref.sum(axis=1), 1.0)


def test_mws_weights_are_uniform():
  w = np.exp(objectives.log_importance_weights(5, 40, "mws", dtype=tf.float64).numpy())
  np.testing.assert_allclose(w, 1.0 / (40 * 5))


def test_mss_inner_estimate_is_unbiased_for_the_exact_mixture():
  """Monte Carlo over minibatches drawn without replacement from a small dataset: E[sum_j W_ij q(z|x_j)] = q(z)."""
  rng = np.random.default_rng(1)
  n, b, d, trials = 12, 5, 2, 20000
  loc = rng.normal(size=(n, d))
  scale = np.exp(rng.normal(scale=0.3, size=(n, d)))
  z0 = np.array([0.3, -0.2])
  exact = np.mean(np.prod(scipy.stats.norm.pdf(z0[None], loc, scale), axis=1))
  batches = np.stack([rng.choice(n, size=b, replace=False) for _ in range(trials)])  # [T, B]
  z = np.broadcast_to(z0, (trials, b, d))

  @tf.function
  def estimates(z, loc, scale, method):
    return tf.map_fn(lambda a: seatbelt_tf.log_qz_minibatch(a[0], a[1], a[2], n, method=method)[0],
                     (z, loc, scale), fn_output_signature=tf.float64)

  args = (tf.constant(z), tf.constant(loc[batches]), tf.constant(scale[batches]))
  mss = np.exp(estimates(*args, "mss").numpy()).ravel()
  stderr = mss.std() / math.sqrt(mss.size)
  assert abs(mss.mean() - exact) < 4 * stderr + 1e-12, (mss.mean(), exact, stderr)
  assert abs(mss.mean() / exact - 1) < 0.02
  # The MWS inner estimate (1/(N B)) sum_j q(z|x_j) is the biased one of eq. B.7: same data, clearly off.
  mws = np.exp(estimates(*args, "mws").numpy()).ravel()
  assert abs(mws.mean() - exact) > 20 * mws.std() / math.sqrt(mws.size)


def test_decomposition_adds_up_to_log_q_minus_log_p():
  rng = np.random.default_rng(2)
  z, loc, scale = _random_batch(rng, 8, 4)
  for method in objectives.ESTIMATORS:
    t = objectives.decompose_kl(z, loc, scale, 1000, method)
    log_q = scipy.stats.norm.logpdf(z, loc, scale).sum(axis=1)
    log_p = scipy.stats.norm.logpdf(z).sum(axis=1)
    np.testing.assert_allclose((t["mi"] + t["tc"] + t["dim_kl"]).numpy(), log_q - log_p, rtol=1e-10)
    np.testing.assert_allclose(t["log_qz_given_x"].numpy(), log_q, rtol=1e-12)


def test_unknown_estimator_is_refused():
  z = np.zeros((3, 2))
  with pytest.raises(ValueError, match="mws, mss"):
    seatbelt_tf.log_qz_minibatch(z, z, z + 1, 10, method="mcmc")


def test_gaussian_kl_closed_form_and_free_bits():
  rng = np.random.default_rng(3)
  loc = rng.normal(size=(6, 3))
  scale = np.exp(rng.normal(size=(6, 3)))
  kl = objectives.gaussian_kl(loc, scale).numpy()
  np.testing.assert_allclose(kl, 0.5 * (scale**2 + loc**2 - 1) - np.log(scale), rtol=1e-10)
  assert np.all(kl >= 0)
  np.testing.assert_allclose(objectives.free_bits_kl(kl, 0.0).numpy(), kl.sum(axis=1).mean())
  floor = kl.mean(axis=0).max() + 1.0  # every unit below the floor: the penalty is the floor times the units
  np.testing.assert_allclose(objectives.free_bits_kl(kl, floor).numpy(), 3 * floor)
  np.testing.assert_allclose(objectives.free_bits_kl(kl, 0.5).numpy(), np.maximum(kl.mean(axis=0), 0.5).sum())


def test_likelihoods_match_scipy():
  rng = np.random.default_rng(4)
  x = (rng.random((4, 5, 5, 1)) < 0.3).astype(np.float64)
  logits = rng.normal(size=x.shape)
  p = scipy.special.expit(logits)
  ref = scipy.stats.bernoulli.logpmf(x, p).reshape(4, -1).sum(axis=1)
  np.testing.assert_allclose(objectives.bernoulli_log_likelihood(x, tf.constant(logits)).numpy(), ref, rtol=1e-8)
  y = rng.uniform(-1, 1, size=x.shape)
  loc = rng.normal(size=x.shape)
  ref = scipy.stats.norm.logpdf(y, loc, 0.3).reshape(4, -1).sum(axis=1)
  np.testing.assert_allclose(objectives.gaussian_log_likelihood(y, tf.constant(loc), 0.3).numpy(), ref, rtol=1e-10)
