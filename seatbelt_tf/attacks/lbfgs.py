"""Box-constrained L-BFGS for many independent attack problems at once, and a scipy reference.

`minimize_batched` is a projected L-BFGS (in the spirit of L-BFGS-B, Byrd et al. 1995, and of the projected
quasi-Newton method of Kim, Sra and Dhillon 2010) run on a whole batch of independent problems
min_{lo <= x <= hi} f_k(x). Every iteration, for every problem still running:

1. the *binding* coordinates are those on a bound whose gradient points out of the box; they are held fixed;
2. the two-loop recursion over the problem's last `num_correction_pairs` (s, y) pairs, each restricted to the free
   coordinates (a pair whose reduced curvature s_F.y_F is not positive is skipped), gives the direction d: an
   L-BFGS step of the reduced problem (steepest descent when no pair is usable or d is not a descent direction);
3. a backtracking Armijo line search along the projected path x(t) = clip(x + t d, lo, hi) picks the step - so an
   optimum on the boundary (common here: dSprites pixels are 0 or 1, and a large lambda pins d to 0) is reached
   exactly, and a coordinate leaves a bound as soon as its gradient points inwards;
4. the pair (s, y) of the accepted step is stored.

A problem stops on scipy's L-BFGS-B criteria: projected gradient max-norm <= `tolerance`, relative decrease
(f_old - f_new) / max(|f_old|, |f_new|, 1) <= `f_relative_tolerance`, or `max_iterations`. The objective and its
gradient are evaluated for all running problems in one call; a problem that has stopped leaves the batch at once
(its rows of the state are dropped once enough problems have stopped), and problems whose line search already
accepted a step are not evaluated again, so finished work stops costing compute. The algebra runs in numpy on float32 state; the objective in TF.

`minimize_scipy` runs scipy's L-BFGS-B one problem at a time on the same objective, bounds handled natively: the
fidelity reference.
"""

import time

import numpy as np
import scipy.optimize
import tensorflow as tf

ARMIJO = 1e-4  # sufficient-decrease constant of the line search (the c1 of L-BFGS-B's line search)
CURVATURE_EPS = 2.2e-16  # a pair is stored only if s.y > eps * y.y (as L-BFGS-B)


class Result(dict):
  """x `[n, ...]`, objective `[n]`, iterations `[n]`, evaluations `[n]`, converged `[n]`, wall_time_s."""

  __getattr__ = dict.__getitem__


def _value_and_gradient_fn(objective, shape, dim, chunk):
  """(x `[m, dim]` float32, idx `[m]`) -> (values `[m]`, gradients `[m, dim]`) as numpy, in chunks of `chunk` rows."""

  @tf.function(autograph=False, input_signature=[tf.TensorSpec([None, dim], tf.float32), tf.TensorSpec([None], tf.int32)])
  def value_and_gradient(x_flat, idx):
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(x_flat)
      value = objective(tf.reshape(x_flat, tf.concat([[-1], shape], 0)), idx)
    return value, tape.gradient(value, x_flat)

  def call(x, idx):
    values, grads = [], []
    for s in range(0, len(idx), chunk):
      v, g = value_and_gradient(tf.constant(x[s:s + chunk], tf.float32), tf.constant(idx[s:s + chunk], tf.int32))
      values.append(v.numpy().astype(np.float64))
      grads.append(g.numpy())
    return np.concatenate(values), np.concatenate(grads)
  return call


def lbfgs_direction(g, s_hist, y_hist, stored, free, order):
  """The L-BFGS two-loop recursion (Nocedal and Wright, Algorithm 7.4) on the free subspace: -H_F g_F, `[a, dim]`.

  Every stored pair is restricted to the free coordinates (s_F, y_F), so the recursion builds the inverse Hessian
  of the reduced problem; a pair whose reduced curvature s_F.y_F is not positive is skipped, and the initial scale
  is s_F.y_F / y_F.y_F of the newest pair kept (1 when none is).

  Args:
    g: `[a, dim]` gradients, zero on the binding coordinates.
    s_hist, y_hist: `[m, a, dim]` stored pairs, slot-major.
    stored: bool `[m, a]`, which slots hold a pair.
    free: `[a, dim]` float 0/1 mask of the free coordinates.
    order: slot indices, newest first.

  Returns:
    (d `[a, dim]`, zero on the binding coordinates; has_pair `[a]`, whether any pair was used).

  Every operation is row by row with a summation order that does not depend on the other rows, so a problem's
  path is bit-identical whatever else is in the batch (a sharded sweep equals the single-process one exactly). A
  rewrite that masked each y once instead (1.4x faster in isolation) broke that and made no measurable difference
  to a sweep's wall time, so it was not kept.
  """
  rho, gamma = {}, np.zeros(len(g), np.float32)
  for j in reversed(order):  # oldest to newest: gamma ends as the newest kept pair's
    sy = np.einsum("ad,ad,ad->a", s_hist[j], y_hist[j], free)
    yy = np.einsum("ad,ad,ad->a", y_hist[j], y_hist[j], free)
    keep = stored[j] & np.isfinite(sy) & np.isfinite(yy) & (sy > 0) & (sy > CURVATURE_EPS * yy)
    rho[j] = np.where(keep, 1.0 / np.where(keep, sy, 1.0), 0.0).astype(np.float32)
    gamma = np.where(keep, sy / np.where(keep, yy, 1.0), gamma).astype(np.float32)
  has_pair = gamma > 0
  q = g.copy()
  alphas = {}
  for j in order:
    alphas[j] = rho[j] * _rowdot(s_hist[j], q)
    q -= alphas[j][:, None] * y_hist[j]
    q *= free
  q *= np.where(has_pair, gamma, 1.0)[:, None]
  for j in reversed(order):
    beta = rho[j] * _rowdot(y_hist[j], q)
    q += (alphas[j] - beta)[:, None] * s_hist[j]
    q *= free
  return np.negative(q, out=q), has_pair


def _rowdot(a, b):
  return np.einsum("ad,ad->a", a, b)


def minimize_batched(objective, x0, lo, hi, max_iterations=200, tolerance=1e-5, f_relative_tolerance=2.2e-9,
                     num_correction_pairs=10, max_line_search=20, chunk=1024, compact_below=0.75,
                     verbose=False, callback=None):
  """Minimises n independent objectives over boxes with batched projected L-BFGS (see the module docstring).

  Args:
    objective: (x `[m, ...]` float32, idx int32 `[m]`) -> `[m]` values, where idx names which of the n problems
      each row is (constants such as targets and lambdas are gathered by it). Problem k's value may depend only on
      row k.
    x0: `[n, ...]` starting points (clipped into [lo, hi]).
    lo, hi: scalar bounds.
    max_iterations: L-BFGS iterations per problem, at most.
    tolerance: stop when the projected gradient's max-norm is at most this (L-BFGS-B's pgtol).
    f_relative_tolerance: stop when an iteration's relative decrease is at most this (L-BFGS-B's factr * eps).
    num_correction_pairs: L-BFGS memory m.
    max_line_search: halvings of the step before a line search gives up (the history is then dropped and the
      next iteration tries steepest descent; a problem whose steepest-descent search also fails stops).
    chunk: most rows per objective call (bounds memory).
    compact_below: stopped problems are not evaluated again at once; their rows of the state (history included)
      are dropped once fewer than this fraction of the stored rows still run.
    verbose: show a progress bar of finished problems.
    callback: called as callback(iteration, objective) after every iteration, objective `[n]` the current value of
      every problem (its final value once it has stopped); e.g. to trace strength against wall time.

  Returns:
    `Result` with the solutions `x`, their `objective`, per-problem `iterations` and `evaluations` (objective and
    gradient evaluations of that problem), `converged` (stopped on a tolerance, or because not even a tiny
    steepest-descent step decreases f, rather than on the iteration limit), and `wall_time_s`.
  """
  start = time.perf_counter()
  x0 = np.asarray(x0, np.float32)
  n, shape = x0.shape[0], x0.shape[1:]
  dim = int(np.prod(shape))
  evaluate = _value_and_gradient_fn(objective, shape, dim, chunk)
  m = num_correction_pairs

  out_x = np.clip(x0.reshape(n, dim), lo, hi)
  iterations = np.zeros(n, np.int64)
  evaluations = np.ones(n, np.int64)
  converged = np.zeros(n, bool)

  # State per stored row: the problem id, x, f, g and the curvature history (a ring buffer whose slot all rows
  # share; `stored` marks the slots that hold a pair). `running` marks rows still optimising.
  ids = np.arange(n)
  x = out_x.copy()
  f, g = evaluate(x, ids)
  s_hist = np.zeros((m, n, dim), np.float32)
  y_hist = np.zeros((m, n, dim), np.float32)
  stored = np.zeros((m, n), bool)
  running = np.isfinite(f) & (np.abs(x - np.clip(x - g, lo, hi)).max(axis=1) > tolerance)
  converged[~running] = np.isfinite(f[~running])
  current = f.copy()  # every problem's objective now (for the callback)
  slot = 0
  progress = _progress(n, verbose)
  for iteration in range(1, max_iterations + 1):
    if progress:
      progress.update(n - int(running.sum()))
    if not running.any():
      break
    if running.mean() < compact_below:  # drop the rows of stopped problems
      out_x[ids[~running]] = x[~running]
      ids, x, f, g = ids[running], x[running], f[running], g[running]
      s_hist, y_hist, stored = s_hist[:, running], y_hist[:, running], stored[:, running]
      running = running[running]
    # Direction on the free coordinates (binding ones: on a bound, gradient pointing out of the box).
    free = (~(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)))).astype(np.float32)
    g_free = g * free
    d, has_pair = lbfgs_direction(g_free, s_hist, y_hist, stored, free, [(slot - 1 - k) % m for k in range(m)])
    slope = _rowdot(g_free, d)
    steepest = running & (~has_pair | ~(slope < 0))
    if steepest.any():  # no history yet, or not a descent direction: a unit steepest-descent step, history dropped
      norm = np.sqrt(_rowdot(g_free[steepest], g_free[steepest]))
      d[steepest] = -g_free[steepest] / np.maximum(norm, 1e-30)[:, None]
      slope[steepest] = -norm
      stored[:, steepest] = False
    # Backtracking Armijo search along the projected path; rows that accepted a step are not evaluated again.
    rows = np.flatnonzero(running)
    iterations[ids[rows]] += 1
    accepted = np.zeros(len(ids), bool)
    f_previous = f.copy()
    t = np.ones(len(ids))
    stored[slot] = False
    trial = rows
    for _ in range(max_line_search):
      x_try = np.clip(x[trial] + t[trial, None] * d[trial], lo, hi)
      f_try, g_try = evaluate(x_try, ids[trial])
      evaluations[ids[trial]] += 1
      step = x_try - x[trial]
      decrease = np.minimum(_rowdot(g[trial], step), 0.0)
      ok = np.isfinite(f_try) & (f_try <= f[trial] + ARMIJO * decrease) & (f_try < f[trial])
      ok[ok] = np.isfinite(g_try[ok]).all(axis=1)  # (so that no stored pair is ever non-finite)
      done = trial[ok]
      s_hist[slot, done], y_hist[slot, done] = step[ok], g_try[ok] - g[done]
      x[done], f[done], g[done], accepted[done] = x_try[ok], f_try[ok], g_try[ok], True
      # Backtrack to the minimiser of the quadratic through f(0), f'(0) and f(t), kept within [0.1 t, 0.5 t].
      curvature = f_try[~ok] - f[trial[~ok]] - slope[trial[~ok]] * t[trial[~ok]]
      with np.errstate(divide="ignore", invalid="ignore"):
        t_new = -slope[trial[~ok]] * t[trial[~ok]] ** 2 / (2.0 * curvature)
      trial = trial[~ok]
      if not trial.size:
        break
      t_new = np.where(np.isfinite(t_new), t_new, 0.5 * t[trial])
      t[trial] = np.clip(t_new, 0.01 * t[trial], 0.5 * t[trial])
    stored[slot] = accepted  # (the curvature test is made on the free subspace, in lbfgs_direction)
    slot = (slot + 1) % m
    relative = (f_previous - f) / np.maximum(np.maximum(np.abs(f_previous), np.abs(f)), 1.0)
    small = accepted & ((relative <= f_relative_tolerance)
                        | (np.abs(x - np.clip(x - g, lo, hi)).max(axis=1) <= tolerance))
    failed = running & ~accepted & steepest  # steepest descent found no decrease: a (numerical) optimum
    stored[:, running & ~accepted] = False  # a failed search with history: drop it, retry with steepest descent
    converged[ids[small | failed]] = True
    running &= ~(small | failed)
    if callback is not None:
      current[ids] = f
      callback(iteration, current)
  out_x[ids] = x  # the rest stopped on the iteration limit
  if progress:
    progress.update(n)
  x_out = out_x.reshape((n,) + shape)
  values = _evaluate(objective, tf.constant(x_out), n)
  return Result(x=x_out, objective=values, iterations=iterations, evaluations=evaluations,
                converged=converged, wall_time_s=time.perf_counter() - start)


def _progress(n, verbose):
  if not verbose:
    return None
  import keras  # pylint: disable=g-import-not-at-top
  return keras.utils.Progbar(n, unit_name="problem")


def _evaluate(objective, x, n, chunk=512):
  out = []
  for s in range(0, n, chunk):
    out.append(objective(x[s:s + chunk], tf.range(s, min(s + chunk, n), dtype=tf.int32)).numpy())
  return np.concatenate(out).astype(np.float64)


def minimize_scipy(objective, x0, lo, hi, max_iterations=200, tolerance=1e-5, ftol=2.2e-9, verbose=False,
                   callback=None):
  """The reference: scipy's L-BFGS-B, one problem at a time, with native bounds (same `objective` contract;
  `callback(k, objective)` after each problem k, unsolved problems at +inf)."""
  start = time.perf_counter()
  x0 = np.asarray(x0, np.float32)
  n, shape = x0.shape[0], x0.shape[1:]
  dim = int(np.prod(shape))

  @tf.function(autograph=False, input_signature=[tf.TensorSpec([dim], tf.float32), tf.TensorSpec([], tf.int32)])
  def value_and_gradient(x_flat, k):
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(x_flat)
      value = objective(tf.reshape(x_flat, tf.concat([[1], shape], 0)), k[None])[0]
    return value, tape.gradient(value, x_flat)

  xs = np.empty_like(x0)
  iterations = np.zeros(n, np.int64)
  evaluations = np.zeros(n, np.int64)
  converged = np.zeros(n, bool)
  progress = _progress(n, verbose)
  bounds = scipy.optimize.Bounds(np.full(dim, lo), np.full(dim, hi))
  current = np.full(n, np.inf)
  for k in range(n):
    def fun(v, k=k):
      value, grad = value_and_gradient(tf.constant(v, tf.float32), tf.constant(k, tf.int32))
      return float(value), grad.numpy().astype(np.float64)
    res = scipy.optimize.minimize(fun, x0[k].reshape(-1).astype(np.float64), jac=True, method="L-BFGS-B",
                                  bounds=bounds,
                                  options={"maxiter": max_iterations, "gtol": tolerance, "ftol": ftol})
    xs[k] = np.clip(res.x, lo, hi).reshape(shape)
    iterations[k], evaluations[k], converged[k] = res.nit, res.nfev, res.success
    if callback is not None:
      current[k] = res.fun
      callback(k + 1, current)
    if progress:
      progress.update(k + 1)
  values = _evaluate(objective, tf.constant(xs), n)
  return Result(x=xs, objective=values, iterations=iterations, evaluations=evaluations, converged=converged,
                wall_time_s=time.perf_counter() - start)


OPTIMIZERS = {"lbfgs": minimize_batched, "scipy": minimize_scipy}
