"""Attacks (paper Section 4): the objectives on live models, and the batched box-constrained L-BFGS driver against
scipy's L-BFGS-B and closed-form optima."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seatbelt_tf import attacks, data, models


def _images(n, seed=0):
  idx = np.random.default_rng(seed).choice(737280, n, replace=False)
  return tf.constant(data.ProceduralDSprites().images(idx), tf.float32)


def _model(name, **kw):
  keras.utils.set_random_seed(0)
  kw = {"network": "tiny_mlp", "dataset_size": 1000, **kw}
  kw.update({"layers": 3, "z_sizes": (8, 6, 4), "h_sizes": (16, 12)} if models.is_hierarchical(name)
            else {"latent_dim": 4})
  model = models.build_model(name, **kw)
  model.build()
  return model


# ------------------------------------------------------------------ objectives
@pytest.mark.parametrize("name", ["vae", "seatbelt", "beta_tcdlgm"])
def test_latent_objective_is_zero_on_the_target_and_counts_the_chosen_layers(name):
  model = _model(name)
  encode_fn = attacks.ModelFns(model).encode_fn
  x, x_t = _images(3), _images(3, seed=1)
  target = encode_fn(x_t)
  zero = attacks.latent_objective(encode_fn, x_t, x_t, target, tf.zeros(3), "all")
  np.testing.assert_allclose(zero.numpy(), 0.0, atol=1e-4)
  per_layer = [attacks.latent_divergence(encode_fn(x), target, layers).numpy() for layers in attacks.LAYER_SETS]
  num_layers = len(model.layer_sizes)
  if num_layers == 1:
    np.testing.assert_allclose(per_layer[0], per_layer[1], rtol=1e-6)
  else:
    assert (per_layer[0] > per_layer[1]).all() and (per_layer[0] > per_layer[2]).all()
  d = attacks.latent_objective(encode_fn, x, x_t, target, tf.fill([3], 2.0), "all")
  norm = np.sqrt(((x.numpy() - x_t.numpy()) ** 2).reshape(3, -1).sum(1))
  np.testing.assert_allclose(d.numpy(), per_layer[0] + 2.0 * norm, rtol=1e-5)
  with pytest.raises(ValueError, match="all, first, top"):
    attacks.select_layers(2, "middle")


@pytest.mark.parametrize("name", ["beta_tcvae", "seatbelt"])
def test_output_objective_is_the_negative_elbo_of_the_target(name):
  """With x* = x^t and lambda = 0 the output objective is the model's own (beta-free) ELBO of x^t, negated."""
  model = _model(name, beta=4.0)
  elbo_fn = attacks.ModelFns(model).elbo_fn
  x_t = _images(4, seed=2)
  noise = [tf.random.stateless_normal([4, d], seed=[1, i]) for i, d in enumerate(model.layer_sizes)]
  value = attacks.output_objective(elbo_fn, x_t, x_t, x_t, noise, tf.zeros(4))
  np.testing.assert_allclose(value.numpy(), -model.attack_elbo(x_t, x_t, noise).numpy(), rtol=1e-6)
  again = attacks.output_objective(elbo_fn, x_t, x_t, x_t, noise, tf.zeros(4))
  np.testing.assert_array_equal(value.numpy(), again.numpy())  # fixed noise: deterministic for the optimiser
  if name == "beta_tcvae":  # single layer: log p(x|z) - KL with z = loc + scale * noise, written out
    loc, scale = model.encode(x_t)
    z = loc + scale * noise[0]
    expected = model.log_likelihood(x_t, model.decode(z)) - tf.reduce_sum(
        0.5 * (scale ** 2 + loc ** 2 - 1.0) - tf.math.log(scale), axis=1)
    np.testing.assert_allclose(-value.numpy(), expected.numpy(), rtol=1e-5)


# ------------------------------------------------------------------ the optimiser
def _box_quadratic(n=12, dim=20, seed=0):
  """min_{0 <= x <= 1} sum_j a_kj (x_j - c_kj)^2: the optimum is clip(c_k, 0, 1), often on a bound."""
  rng = np.random.default_rng(seed)
  a = tf.constant(rng.uniform(0.5, 5.0, size=(n, dim)), tf.float32)
  c = tf.constant(rng.uniform(-0.5, 1.5, size=(n, dim)), tf.float32)

  def objective(x, idx):
    return tf.reduce_sum(tf.gather(a, idx) * tf.square(x - tf.gather(c, idx)), axis=1)
  x0 = rng.integers(0, 2, size=(n, dim)).astype(np.float32)  # start on the corners, like binary images
  return objective, x0, np.clip(c.numpy(), 0.0, 1.0)


@pytest.mark.parametrize("optimizer", sorted(attacks.OPTIMIZERS))
def test_box_constrained_optimum_is_reached_including_on_the_boundary(optimizer):
  objective, x0, optimum = _box_quadratic()
  result = attacks.OPTIMIZERS[optimizer](objective, x0, 0.0, 1.0, max_iterations=200)
  assert result.x.min() >= 0.0 and result.x.max() <= 1.0
  np.testing.assert_allclose(result.x, optimum, atol=2e-3)
  assert (np.isclose(optimum, 0.0) | np.isclose(optimum, 1.0)).mean() > 0.3  # many optima sit on a bound
  assert (result.evaluations > 0).all()
  if optimizer == "lbfgs":  # (scipy may end with a line-search warning on float32 gradients, at the optimum)
    assert result.converged.all()


def test_scipy_runs_on_one_blas_thread_and_gives_the_threads_back(monkeypatch):
  """scipy's L-BFGS-B runs with numpy's BLAS on one thread (on OpenBLAS's threads its small calls took 4-38x as
  long with another job on the machine: benchmarks/scipy_blas_threads.py), and the caller's setting is back after."""
  import scipy.optimize
  import threadpoolctl

  def blas_threads():
    return {i["num_threads"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"}
  seen, minimize = [], scipy.optimize.minimize
  monkeypatch.setattr(scipy.optimize, "minimize", lambda *a, **kw: seen.append(blas_threads()) or minimize(*a, **kw))
  objective, x0, optimum = _box_quadratic(n=3)
  with threadpoolctl.threadpool_limits(2, user_api="blas"):
    before = blas_threads()
    if before != {2}:
      pytest.skip(f"numpy's BLAS cannot run 2 threads here ({before})")
    result = attacks.minimize_scipy(objective, x0, 0.0, 1.0, max_iterations=200)
    assert blas_threads() == before
  assert seen == [{1}] * 3
  np.testing.assert_allclose(result.x, optimum, atol=2e-3)


def _bfgs_matrix(pairs, theta, dim):
  """Dense BFGS Hessian approximation from theta I, updated with the pairs oldest first (the brute-force reference)."""
  B = theta * np.eye(dim)
  for s, y in pairs:
    Bs = B @ s
    B = B - np.outer(Bs, Bs) / (s @ Bs) + np.outer(y, y) / (y @ s)
  return B


def test_subspace_direction_equals_the_dense_reduced_newton_step():
  """reduced_direction (compact form, Byrd et al. 1995 eq. 5.11) equals -(Z^T B Z)^-1 g_F with B built densely by
  the BFGS recursion, for a ring buffer whose oldest slot is not slot 0, pairs missing in some rows, and a free set
  that differs per row; a singular system (duplicated pairs) gives a finite descent direction."""
  from seatbelt_tf.attacks import lbfgs
  rng = np.random.default_rng(0)
  a, m, dim, slot = 5, 4, 12, 2  # slot 2 is the oldest pair, slot 1 the newest
  A = rng.standard_normal((dim, dim))
  hessian = A @ A.T + dim * np.eye(dim)  # a convex quadratic: every pair has s.y > 0
  S = rng.standard_normal((a, m, dim)).astype(np.float32)
  Y = np.einsum("ij,amj->ami", hessian, S).astype(np.float32)
  stored = np.ones((a, m), bool)
  stored[1, 0] = stored[3, :] = False  # row 1 misses one pair, row 3 has none
  free = (rng.random((a, dim)) > 0.3).astype(np.float32)
  free[0] = 1.0
  g = (rng.standard_normal((a, dim)) * free).astype(np.float32)
  SY, YY = np.matmul(S, np.swapaxes(Y, 1, 2)), np.einsum("amd,amd->am", Y, Y)
  age = lbfgs.ring_ages(m, slot)
  chronological = [2, 3, 0, 1]  # the next write goes to slot 2, so it holds the oldest pair
  grams = lbfgs.free_set_grams(S, Y, free)
  d, has_pair = lbfgs.reduced_direction(g, S, Y, SY, YY, grams, stored, free, age, chunk=2)
  np.testing.assert_array_equal(has_pair, [True, True, True, False, True])
  for row in range(a):
    order = [j for j in chronological if stored[row, j]]
    pairs = [(S[row, j].astype(np.float64), Y[row, j].astype(np.float64)) for j in order]
    theta = pairs[-1][1] @ pairs[-1][1] / (pairs[-1][0] @ pairs[-1][1]) if pairs else 1.0
    B = _bfgs_matrix(pairs, theta, dim)
    F = free[row] > 0
    expected = np.zeros(dim)
    expected[F] = -np.linalg.solve(B[np.ix_(F, F)], g[row, F])
    np.testing.assert_allclose(d[row], expected, rtol=2e-3, atol=2e-4 * np.abs(expected).max())
  S[:, 1], Y[:, 1] = S[:, 0], Y[:, 0]  # a duplicated pair
  SY, YY = np.matmul(S, np.swapaxes(Y, 1, 2)), np.einsum("amd,amd->am", Y, Y)
  d, _ = lbfgs.reduced_direction(g, S, Y, SY, YY, lbfgs.free_set_grams(S, Y, free), stored, free, age)
  assert np.isfinite(d).all() and (np.einsum("ad,ad->a", d, g)[g.any(axis=1)] < 0).all()


def test_free_set_products_kept_up_to_date_equal_a_direct_recomputation():
  """The driver's running products over the free set (new pairs written into the ring buffer, coordinates changing
  sides a few at a time or en masse, rows without pairs skipped) equal free_set_grams computed from scratch on
  every entry between two stored pairs, and a row's values do not depend on the other rows of the batch."""
  from seatbelt_tf.attacks import lbfgs
  rng = np.random.default_rng(1)
  a, m, dim = 6, 3, 200
  S, Y = np.zeros((2, a, m, dim), np.float32)
  SY, YY = np.zeros((a, m, m), np.float32), np.zeros((a, m), np.float32)
  grams = tuple(np.zeros((a, m, m)) for _ in range(3))
  free = np.ones((a, dim), bool)
  stored = np.zeros((a, m), bool)
  checked = 0
  for step in range(9):
    slot = step % m
    write = rng.random(a) > 0.2
    S[write, slot] = rng.standard_normal((write.sum(), dim))
    Y[write, slot] = rng.standard_normal((write.sum(), dim))
    stored[:, slot] = write
    stored[0] = False  # row 0 never keeps a pair: its products are skipped, never used
    lbfgs._update_products(S, Y, SY, YY, grams, free.astype(np.float32), slot)  # pylint: disable=protected-access
    new_free = free.copy()
    flips = rng.random((a, dim)) < (0.5 if step == 4 else 0.03)  # step 4: most rows recomputed directly
    new_free[flips] = ~new_free[flips]
    before, old_free = tuple(p.copy() for p in grams), free
    lbfgs.update_free_set_grams(grams, S, Y, stored, old_free, new_free)
    free = new_free
    expected = lbfgs.free_set_grams(S, Y, free)
    used = stored[:, :, None] & stored[:, None, :]  # entries between stored pairs: the ones reduced_direction reads
    checked += used[1:].sum()
    for got, want in zip(grams, expected):
      np.testing.assert_allclose(got[used], want[used], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(SY, np.matmul(S, np.swapaxes(Y, 1, 2)), rtol=1e-5, atol=1e-4)
    alone = tuple(p[3:].copy() for p in before)  # the same update on rows 3..5 alone: the same bits
    lbfgs.update_free_set_grams(alone, S[3:], Y[3:], stored[3:], old_free[3:], free[3:], group=2)
    for got, want in zip(alone, grams):
      np.testing.assert_array_equal(got, want[3:])
  assert checked > 100


def _kinked_valleys(n=16, dim=50, seed=0):
  """n problems 10 |w.(x - c)| + ||x - p||^2 / 2 over [0, 1]^dim: a smooth bowl cut by one kink (what a ReLU
  contributes), whose optimum lies on the kink, at p's projection onto the plane w.(x - c) = 0 (inside the box
  here). Returns (objective, x0, optimal values `[n]`)."""
  rng = np.random.default_rng(seed)
  w = rng.normal(size=(n, dim)).astype(np.float32)
  c = np.full((n, dim), 0.5, np.float32)
  p = rng.uniform(0.3, 0.7, size=(n, dim)).astype(np.float32)
  optimum = p - ((w * (p - c)).sum(1) / (w * w).sum(1))[:, None] * w
  assert optimum.min() >= 0.0 and optimum.max() <= 1.0
  W, C, P = (tf.constant(v) for v in (w, c, p))

  def objective(x, idx):
    kink = tf.abs(tf.reduce_sum(tf.gather(W, idx) * (x - tf.gather(C, idx)), axis=1))
    return 10.0 * kink + 0.5 * tf.reduce_sum(tf.square(x - tf.gather(P, idx)), axis=1)
  x0 = rng.uniform(0, 1, size=(n, dim)).astype(np.float32)
  return objective, x0, 0.5 * ((optimum - p) ** 2).sum(1)


@pytest.mark.parametrize("backend", ["numpy", "tf"])
def test_a_failed_search_across_a_kink_continues_along_it(backend):
  """On kinked valleys (a ReLU's kink through a quadratic bowl) descent ends on the kink, where the gradient points
  across it and no step along it lowers f by the decrease floor. The driver then searches along the minimum-norm
  combination of the gradients on the two sides, which runs along the kink: every problem reaches its optimum.
  Without it (kink_retries=0) 4-5 of the 16 stall on the kink, Delta ~2 above the optimum; scipy's L-BFGS-B stalls
  on 12 (docs/BENCHMARKS.md, seventh measurement)."""
  objective, x0, best = _kinked_valleys()
  gaps = {}
  for retries in (0, attacks.lbfgs.KINK_RETRIES):
    result = attacks.minimize_batched(objective, x0, 0.0, 1.0, max_iterations=1000, backend=backend,
                                      kink_retries=retries)
    assert result.x.min() >= 0.0 and result.x.max() <= 1.0
    gaps[retries] = result.objective - best
  assert (gaps[0] > 1.0).sum() >= 3, gaps[0]  # the problem this test is about (4-5 of 16 stall)
  assert np.abs(gaps[attacks.lbfgs.KINK_RETRIES]).max() < 1e-3, gaps[attacks.lbfgs.KINK_RETRIES]
  with pytest.raises(ValueError, match="kink_retries must be >= 0"):
    attacks.minimize_batched(objective, x0, 0.0, 1.0, kink_retries=-1)


def test_problems_leave_the_batch_when_done():
  """An easy problem (already optimal) stops costing evaluations while a hard one continues."""
  objective, x0, optimum = _box_quadratic(n=4)
  x0[0] = optimum[0]
  result = attacks.minimize_batched(objective, x0, 0.0, 1.0, max_iterations=300)
  assert result.evaluations[0] < result.evaluations[1:].max()
  np.testing.assert_allclose(result.x, optimum, atol=2e-3)


def test_latent_attack_stays_in_range_and_huge_lambda_leaves_the_input_alone():
  model = _model("seatbelt")
  encode_fn = attacks.ModelFns(model).encode_fn
  x, x_t = _images(2), _images(2, seed=5)
  lam = tf.constant([2.0 ** -20, 2.0 ** 20])
  target = encode_fn(x_t)

  def objective(x_adv, idx):
    return attacks.latent_objective(encode_fn, x_adv, tf.gather(x, idx),
                                    [(tf.gather(l, idx), tf.gather(s, idx)) for l, s in target],
                                    tf.gather(lam, idx))
  result = attacks.minimize_batched(objective, x.numpy(), 0.0, 1.0, max_iterations=200)
  assert result.x.min() >= 0.0 and result.x.max() <= 1.0  # inside the data range, exactly
  distortion = np.sqrt(((result.x - x.numpy()) ** 2).reshape(2, -1).sum(1))
  assert distortion[1] < 1e-2  # lambda = 2^20: d returns to ~0 from the start margin
  start = objective(x, tf.range(2)).numpy()
  assert result.objective[0] < 0.5 * start[0]  # lambda ~ 0: the attack moves the posterior towards the target


def _pinned_problems(n=6, dim=30, seed=0):
  """Problems pinned to their binary starts by lambda = 2^20 on the smoothed norm (as the attacks' largest
  lambda pins d to 0), whose float32 values carry a round-off-sized offset (-1, 0 or +1 ulp) that changes from call
  to call and row to row, as the networks' kernels' round-off changes with the rows that share a call."""
  rng = np.random.default_rng(seed)
  x0 = rng.integers(0, 2, size=(n, dim)).astype(np.float32)
  start = tf.constant(x0)
  w = tf.constant(rng.standard_normal((n, dim)) * 1e-3, tf.float32)
  calls = tf.Variable(0, dtype=tf.int32)

  def objective(x, idx):
    d = x - tf.gather(start, idx)
    f = 0.02 + tf.reduce_sum(tf.gather(w, idx) * d, axis=1) + 2.0 ** 20 * tf.sqrt(
        tf.reduce_sum(tf.square(d), axis=1) + attacks.NORM_EPSILON)
    ulp = tf.math.nextafter(f, tf.fill(tf.shape(f), np.float32(np.inf))) - f
    shift = tf.cast((tf.range(tf.shape(x)[0]) + calls.assign_add(1)) % 3 - 1, tf.float32)
    return f + tf.stop_gradient(shift * ulp)
  return objective, x0


@pytest.mark.parametrize("backend", ["numpy", "tf"])
def test_a_pinned_problem_stays_at_its_start_whatever_the_round_off(backend, monkeypatch):
  """The driver's decrease floor (lbfgs.DECREASE_ULPS): a problem at its optimum must not take a step on a
  round-off 'decrease', so its path is the same alone and batched with others. Without the floor the same problems
  move by ~1e-10 or not depending on the round-off (checked below: the test can fail)."""
  def solve(together):
    objective, x0 = _pinned_problems()
    if together:
      return [attacks.minimize_batched(objective, x0, 0.0, 1.0, max_iterations=20, backend=backend)]
    return [attacks.minimize_batched(lambda x, idx, k=k: objective(x, idx + k), x0[k:k + 1], 0.0, 1.0,
                                     max_iterations=20, backend=backend) for k in range(len(x0))]

  _, x0 = _pinned_problems()
  batched, alone = solve(True)[0], solve(False)
  np.testing.assert_array_equal(batched.x, x0)
  np.testing.assert_array_equal(np.concatenate([r.x for r in alone]), x0)
  assert batched.iterations.tolist() == [int(r.iterations[0]) for r in alone]
  assert batched.evaluations.tolist() == [int(r.evaluations[0]) for r in alone]
  assert batched.converged.all()
  monkeypatch.setattr(attacks.lbfgs, "DECREASE_ULPS", 0)  # the old acceptance: any float32 decrease
  batched, alone = solve(True)[0], solve(False)
  moved = np.concatenate([batched.x, *[r.x for r in alone]]) != np.concatenate([x0, x0])
  assert moved.any() or batched.iterations.tolist() != [int(r.iterations[0]) for r in alone]


# ------------------------------------------------------------------ the protocol
def test_lambda_grid_and_pairs():
  grid = attacks.lambda_grid()
  assert len(grid) == 50 and grid[0] == 2.0 ** -20 and grid[-1] == 2.0 ** 20
  np.testing.assert_allclose(grid[1:] / grid[:-1], grid[1] / grid[0])
  pairs = attacks.choose_pairs(np.arange(100, 200), 10, seed=3)
  assert pairs.shape == (10, 2) and len(set(pairs.ravel())) == 20 and pairs.min() >= 100
  np.testing.assert_array_equal(pairs, attacks.choose_pairs(np.arange(100, 200), 10, seed=3))
  with pytest.raises(ValueError, match="need 8 distinct"):
    attacks.choose_pairs(np.arange(5), 4, seed=0)


@pytest.mark.parametrize("mode,layers,draws", [("latent", "all", 4), ("latent", "first", 4), ("output", "all", 1),
                                               ("output", "all", 3)])
def test_sweep_records_are_complete_consistent_and_reproducible_from_the_saved_arrays(tmp_path, mode, layers, draws):
  from seatbelt_tf import io_utils
  model = _model("seatbelt")
  fns = attacks.ModelFns(model)
  inputs, targets = _images(2).numpy(), _images(2, seed=7).numpy()
  lambdas = attacks.lambda_grid(4)
  records, arrays = attacks.run_attack(fns, inputs, targets, lambdas, mode, layers, max_iterations=30,
                                       objective_draws=draws)
  assert len(records) == 8 and all(set(attacks.ATTACK_RECORD_KEYS) <= set(r) for r in records)
  assert all(r.get("objective_draws") == (draws if mode == "output" else None) for r in records)
  assert all(r["driver_version"] == attacks.lbfgs.DRIVER_VERSION for r in records)  # (collect_reproduction)
  assert [r["pair"] for r in records] == [0, 0, 0, 0, 1, 1, 1, 1]
  assert sum(r["display"] for r in records) == 2  # one displayed lambda per pair
  x_adv = arrays["adversarial"]
  assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0  # inside the data range, exactly
  np.testing.assert_allclose(arrays["inputs"] + arrays["distortions"], x_adv, atol=1e-6)
  np.testing.assert_allclose([r["distortion_l2"] for r in records],
                             np.sqrt((arrays["distortions"] ** 2).reshape(8, -1).sum(1)), rtol=1e-5)
  assert records[-1]["distortion_l2"] < 0.1  # lambda = 2^20
  path = tmp_path / "adversarial_inputs.npz"
  io_utils.atomic_save_npz(str(path), **arrays)
  saved = np.load(path)
  # Recompute the objective of every record from the saved arrays alone.
  x, x_t = tf.constant(saved["inputs"]), tf.constant(saved["targets"])
  lam = tf.constant([r["lambda"] for r in records], tf.float32)
  x_adv = tf.constant(saved["adversarial"])
  if mode == "latent":
    value = attacks.latent_objective(fns.encode_fn, x_adv, x, fns.encode_fn(x_t), lam, layers)
    effect = attacks.latent_divergence(fns.encode_fn(x_adv), fns.encode_fn(x_t), layers)
  else:  # eq. 12 averaged over the fixed draws: draw k of layer i is seeded [attack seed, 1000 k + i]
    draws_noise = [[tf.random.stateless_normal([8, d], seed=[0, 1000 * k + i]) for i, d in enumerate(fns.layer_sizes)]
                   for k in range(draws)]
    value = tf.add_n([attacks.output_objective(fns.elbo_fn, x_adv, x, x_t, noise, lam) for noise in draws_noise]) / draws
    effect = tf.add_n([-fns.elbo_fn(x_adv, x_t, noise) for noise in draws_noise]) / draws
  np.testing.assert_allclose(value.numpy(), [r["objective_smoothed"] for r in records], rtol=1e-4, atol=1e-3)
  # The recorded objective is Delta with the exact norm (eqs. 12-15), not the optimiser's smoothed one.
  l2 = np.sqrt(((saved["adversarial"].astype(np.float64) - saved["inputs"]) ** 2).reshape(8, -1).sum(1))
  exact = effect.numpy().astype(np.float64) + lam.numpy().astype(np.float64) * l2
  np.testing.assert_allclose(exact, [r["objective"] for r in records], rtol=1e-4, atol=1e-4)
  smoothing = lam.numpy().astype(np.float64) * (np.sqrt(l2 ** 2 + attacks.NORM_EPSILON) - l2)
  assert smoothing[-1] > 0.1  # lambda = 2^20 with d ~ 0: the smoothing alone is ~1 nat there
  np.testing.assert_allclose(np.array([r["objective_smoothed"] - r["objective"] for r in records]), smoothing,
                             rtol=1e-3, atol=2e-3)
  # -log p(x^t|z~) with z~ from x* and, the floor, from x^t itself, on the score's 8 draws (seed 1: draw k of layer
  # i seeded [1, 1000 k + i]), both recomputed from the saved arrays.
  score_noise = [[tf.random.stateless_normal([8, d], seed=[1, 1000 * k + i]) for i, d in enumerate(fns.layer_sizes)]
                 for k in range(8)]
  nll = -tf.add_n([fns.terms_fn(x_adv, x_t, noise)["reconstruction"] for noise in score_noise]).numpy() / 8
  own = -tf.add_n([fns.terms_fn(x_t, x_t, noise)["reconstruction"] for noise in score_noise]).numpy() / 8
  np.testing.assert_allclose([r["target_nll"] for r in records], nll, rtol=1e-4)
  np.testing.assert_allclose([r["target_own_nll"] for r in records], own, rtol=1e-5)
  if mode == "latent":  # lambda = 2^-20: the attack reaches q(z|x^t), so its score reaches the floor, draw by draw
    for k in (0, 4):
      assert records[k]["target_nll"] == pytest.approx(records[k]["target_own_nll"], abs=1e-2)


def test_single_factor_pairs_differ_in_that_factor_only():
  source = data.ProceduralDSprites()
  pairs = attacks.choose_factor_pairs(source, "orientation", {"shape": 2, "scale": 5}, 6, seed=1)
  f_in, f_t = source.factors(pairs[:, 0]), source.factors(pairs[:, 1])
  assert (f_in[:, 0] == 2).all() and (f_t[:, 0] == 2).all() and (f_in[:, 1] == 5).all()  # hearts, largest scale
  assert (f_in[:, 2] != f_t[:, 2]).all()
  np.testing.assert_array_equal(np.delete(f_in, 2, axis=1), np.delete(f_t, 2, axis=1))
  assert len(set(f_in[:, 3])) > 1  # positions vary between pairs
  np.testing.assert_array_equal(
      pairs, attacks.choose_factor_pairs(source, "orientation", {"shape": 2, "scale": 5}, 6, seed=1))
  with pytest.raises(ValueError, match="Unknown factor.*colour"):
    attacks.choose_factor_pairs(source, "colour", {}, 2, 0)
  with pytest.raises(ValueError, match="shape=3 is out of range"):
    attacks.choose_factor_pairs(source, "orientation", {"shape": 3}, 2, 0)
  with pytest.raises(ValueError, match="leaves free"):
    attacks.choose_factor_pairs(source, "shape", {"shape": 1}, 2, 0)


def test_bad_attack_inputs_are_refused():
  fns = attacks.ModelFns(_model("vae"))
  x = _images(1).numpy()
  with pytest.raises(ValueError, match="data range"):
    attacks.run_attack(fns, x + 2.0, x, [1.0], "latent")
  with pytest.raises(ValueError, match="Unknown attack mode"):
    attacks.run_attack(fns, x, x, [1.0], "pixel")
  with pytest.raises(ValueError, match="finite arrays of one shape"):
    attacks.run_attack(fns, x, x[:, :32], [1.0], "latent")
  with pytest.raises(ValueError, match="neighbour_rounds must be >= 0"):
    attacks.run_attack(fns, x, x, [1.0], "latent", neighbour_rounds=-1)
  with pytest.raises(ValueError, match="objective_draws must be >= 1"):
    attacks.run_attack(fns, x, x, [1.0], "output", objective_draws=0)
  from seatbelt_tf import config as config_lib
  with pytest.raises(ValueError, match="attack_objective_draws=0 must be >= 1"):
    config_lib.RunConfig(workdir="w", attack=config_lib.AttackConfig(attack_objective_draws=0)).validate()


def test_lambda_neighbours_follow_the_lambda_order_within_each_pair():
  from seatbelt_tf.attacks import protocol
  got = protocol._lambda_neighbours(2, np.array([4.0, 1.0, 2.0]))  # pylint: disable=protected-access
  # pair 0 is problems 0..2 (lambdas 4, 1, 2), pair 1 is 3..5; the ends of the grid are their own neighbours
  np.testing.assert_array_equal(got, [[2, 1, 1, 5, 4, 4], [0, 2, 0, 3, 5, 3]])


@pytest.mark.parametrize("optimizer", ["lbfgs", "scipy"])
def test_neighbour_round_restarts_a_problem_from_a_better_neighbour_end_point(optimizer):
  """Two basins, at 0.2 (value 0) and at 0.8 (value c_k): problem 0 ended at 0.2 although 0.8 is better for it;
  its neighbour's end point (0.8) scores better at its lambda, so it restarts from there and keeps the better
  basin. Problem 1 (already at its best) and problem 2 (its neighbour's point is worse for it) are left alone."""
  from seatbelt_tf.attacks import protocol
  c = tf.constant([-0.1, -0.1, 0.05])

  def objective(x_adv, idx):
    flat = tf.reshape(x_adv, [tf.shape(x_adv)[0], -1])
    a = tf.reduce_sum((flat - 0.2) ** 2, axis=1)
    b = tf.reduce_sum((flat - 0.8) ** 2, axis=1) + tf.gather(c, idx)
    return tf.minimum(a, b)
  x = np.stack([np.full((2, 2, 1), v, np.float32) for v in (0.2, 0.8, 0.2)])
  best = {"x": x.copy(), "objective": np.array([0.0, -0.1, 0.0]), "iterations": np.array([5, 5, 5]),
          "evaluations": np.array([9, 9, 9]), "restarts": np.zeros(3, np.int64)}
  neighbours = protocol._lambda_neighbours(1, np.array([1.0, 2.0, 3.0]))  # pylint: disable=protected-access
  minimize = attacks.OPTIMIZERS[optimizer]
  neighbour_round = protocol._neighbour_round  # pylint: disable=protected-access
  assert neighbour_round(objective, minimize, best, neighbours, 0.0, 1.0, 100)
  np.testing.assert_array_equal(best["restarts"], [1, 0, 0])
  np.testing.assert_allclose(best["x"][0], 0.8, atol=1e-4)
  np.testing.assert_allclose(best["objective"], [-0.1, -0.1, 0.0], atol=1e-6)
  np.testing.assert_array_equal(best["x"][1:], x[1:])
  assert best["evaluations"][0] > 11 and list(best["evaluations"][1:]) == [11, 11]  # 2 scores each, + the run
  # A second round finds nothing to restart.
  assert not neighbour_round(objective, minimize, best, neighbours, 0.0, 1.0, 100)


def test_attack_mode_on_a_trained_workdir_writes_records_and_arrays(tmp_path):
  import json
  import os
  from seatbelt_tf import config as config_lib
  from seatbelt_tf import runs
  from seatbelt_tf.modes import attack as attack_mode
  from seatbelt_tf.modes import train as train_mode
  from conftest import tiny_config
  config = tiny_config(tmp_path / "w", model="seatbelt", layers=2)
  train_mode.train(config)
  attack = config_lib.RunConfig.from_flat({
      **config.flat(), "mode": "attack", "attack_pairs": 2, "attack_lambdas": 3, "attack_max_iterations": 15,
      "attack_layers": "all,first", "attack_starts": "input"}).validate()
  summary = attack_mode.attack(attack)
  assert set(summary["attacks"]) == {"latent_all", "latent_first", "output_all"} and summary["records"] == 18
  folder = os.path.join(config.workdir, "attacks")
  figures = [f"{kind}_{part}.png" for kind in ("distortion", "grid") for part in ("latent_all", "latent_first",
                                                                               "output_all")]
  assert sorted(os.listdir(folder)) == sorted(["adversarial_inputs.npz", "attack_results.json", *figures])
  for figure in figures:
    assert os.path.getsize(os.path.join(folder, figure)) > 5000
  records = json.load(open(os.path.join(folder, "attack_results.json")))
  arrays = np.load(os.path.join(folder, "adversarial_inputs.npz"))
  assert len(records) == 18 and arrays["inputs"].shape == arrays["distortions"].shape == (18, 64, 64, 1)
  assert arrays["adversarial"].min() >= 0.0 and arrays["adversarial"].max() <= 1.0
  assert {(r["mode"], r["layers"]) for r in records} == {("latent", "all"), ("latent", "first"), ("output", "all")}
  assert all(np.isfinite([r[k] for k in attacks.ATTACK_RECORD_KEYS[3:]]).all() for r in records)
  with pytest.raises(ValueError, match="attack_layers=middle"):
    config_lib.RunConfig.from_flat({**attack.flat(), "attack_layers": "middle"}).validate()
  # The single-factor config (Appendix H.1) on the same workdir: pairs are hearts that differ only in orientation.
  from seatbelt_tf import launch
  from conftest import REPO
  heart = dict(arg.lstrip("-").split("=", 1) for arg in launch.expand_flagfiles(
      [f"--flagfile={os.path.join(REPO, 'configs', 'attack_heart_rotation.cfg')}"]))
  single = config_lib.RunConfig.from_flat({
      **attack.flat(), "attack_vary": heart["attack_vary"], "attack_fix": heart["attack_fix"],
      "attack_modes": "latent", "attack_layers": "all", "attack_lambdas": 2}).validate()
  assert attack_mode.attack(single)["records"] == 4
  arrays = np.load(os.path.join(folder, "adversarial_inputs.npz"))
  source = data.ProceduralDSprites()
  pairs = attacks.choose_factor_pairs(source, "orientation", {"shape": 2, "scale": 5}, 2, single.attack.attack_seed)
  np.testing.assert_array_equal(arrays["inputs"], np.repeat(source.images(pairs[:, 0]), 2, axis=0))
  np.testing.assert_array_equal(arrays["targets"], np.repeat(source.images(pairs[:, 1]), 2, axis=0))
  with pytest.raises(ValueError, match="needs --attack_vary"):
    config_lib.RunConfig.from_flat({**attack.flat(), "attack_fix": "shape=2"}).validate()
  with pytest.raises(ValueError, match="must be name=class"):
    config_lib.RunConfig.from_flat({**attack.flat(), "attack_vary": "orientation", "attack_fix": "shape"}).validate()


def test_batched_driver_matches_scipy_on_a_trained_model(tmp_path):
  """On the same problems (a tiny trained Seatbelt-VAE, latent attack on all layers, both starts and the neighbour
  restarts, run to convergence) the batched driver's final objectives match scipy's L-BFGS-B: median ratio within 1%
  and none worse by more than 5%. A driver that is weaker across the board fails the median bound; one that ends
  single problems in worse basins fails the per-problem bound.

  The problems run to convergence (1,000 iterations; they stop after 2-900) because unconverged problems are
  chaotic: at 100 iterations scipy against itself, with its gradient multiplied by 1 + 1e-7 N(0, 1) (float32
  rounding size), moves up to 8-10% per problem. Converged small-lambda problems can be as well: scipy is also run
  with the target posteriors encoded one image at a time (`attacks.RowWiseTargets`, a ~5e-7 change), and on a
  problem where those two scipy runs are more than 5% apart the bound is 5% above the worse of them (the
  reference's own spread) instead of 5% above scipy. On this model that is problem 3 (lambda = 0.138): scipy ends
  at 0.138 and at 1.171x that; the batched driver before 2026-12-04 stopped on a ReLU kink at 1.337x (the bound
  there is 1.229x) and now ends at 1.153x. Elsewhere the two scipy runs agree to 0.1% and the bound is scipy's 5%.
  docs/BENCHMARKS.md (seventh measurement) has the same table for models of training seeds 0-3."""
  from seatbelt_tf import runs
  from seatbelt_tf.modes import attack as attack_mode
  from seatbelt_tf.modes import train as train_mode
  from conftest import tiny_config
  config = tiny_config(tmp_path / "w", model="seatbelt", layers=2, train_steps=60)
  train_mode.train(config)
  _, source, model = runs.open_trained_run(config)
  pairs = attacks.choose_pairs(np.arange(source.num_examples), 2, seed=3)
  inputs, targets = source.tf_images(pairs[:, 0]).numpy(), source.tf_images(pairs[:, 1]).numpy()
  fns = attacks.ModelFns(model)
  lambdas = attacks.lambda_grid(8)

  def solve(optimizer, fns=fns):
    records, arrays = attacks.run_attack(fns, inputs, targets, lambdas, "latent", "all", optimizer=optimizer,
                                         max_iterations=1000)
    assert arrays["adversarial"].min() >= 0.0 and arrays["adversarial"].max() <= 1.0
    return np.array([r["objective"] for r in records])
  batched, reference = solve("lbfgs"), solve("scipy")
  rerounded = solve("scipy", attacks.RowWiseTargets(fns, len(inputs) * len(lambdas)))
  keep = reference > 1e-2  # ratios of near-zero objectives say nothing
  assert keep.sum() >= 8
  ratio = batched[keep] / reference[keep]
  assert np.median(ratio) <= 1.01, ratio
  spread = np.maximum(reference, rerounded)[keep] / reference[keep]
  bound = np.where(spread > 1.05, 1.05 * spread, 1.05)
  assert (spread > 1.05).sum() <= 1, spread  # the reference is reproducible on (nearly) every problem
  assert (ratio <= bound).all(), (ratio, bound)


def test_tfp_path_reaches_box_optima_of_negative_objectives_and_runs_the_protocol():
  """TFP's relative function tolerance misfires on objectives near or below zero (it is switched off): a box
  quadratic shifted to negative values still reaches its optimum; and the whole protocol (both starts, neighbour
  restarts, records) runs with --attack_optimizer=tfp."""
  objective, x0, optimum = _box_quadratic()
  result = attacks.minimize_tfp(lambda x, idx: objective(x, idx) - 100.0, x0, 0.0, 1.0, max_iterations=200)
  np.testing.assert_allclose(result.x, optimum, atol=2e-3)
  assert result.x.min() >= 0.0 and result.x.max() <= 1.0 and (result.objective < -90).all()
  # In chunks (12 problems as 5 + 5 + 2 rows per objective call, to bound memory): the same optimisation.
  rows = []
  counted = lambda x, idx: rows.append(int(x.shape[0])) or objective(x, idx) - 100.0  # noqa: E731
  chunked = attacks.minimize_tfp(counted, x0, 0.0, 1.0, max_iterations=200, chunk=5)
  assert max(rows) == 12 and set(rows[:-1]) == {5, 2}  # traced in chunks; the final values through objective_values
  np.testing.assert_allclose(chunked.x, result.x, atol=1e-6)
  np.testing.assert_allclose(chunked.objective, result.objective, rtol=1e-6)
  assert chunked.iterations[0] == result.iterations[0]
  model = _model("seatbelt")
  x, x_t = _images(2).numpy(), _images(2, seed=1).numpy()
  records, arrays = attacks.run_attack(attacks.ModelFns(model), x, x_t, attacks.lambda_grid(3), "latent",
                                       optimizer="tfp", max_iterations=20, neighbour_rounds=1)
  assert len(records) == 6 and arrays["adversarial"].min() >= 0.0 and arrays["adversarial"].max() <= 1.0
  assert all(np.isfinite([r[k] for k in attacks.ATTACK_RECORD_KEYS[3:]]).all() for r in records)
  # At lambda = 2^20 the best attack is no attack.
  assert max(r["distortion_l2"] for r in records if r["lambda"] > 1e5) < 1e-3
