"""Box-constrained L-BFGS for many independent attack problems at once, and a scipy reference.

`minimize_batched` is a projected L-BFGS that takes L-BFGS-B's subspace step (Byrd, Lu, Nocedal and Zhu 1995)
on a whole batch of independent problems min_{lo <= x <= hi} f_k(x). Every iteration of a problem:

1. the *binding* coordinates are those on a bound whose gradient points out of the box; they are held fixed;
2. the direction is -(Z^T B Z)^-1 g_F (`reduced_direction`): the Newton step of the limited-memory BFGS model B of
   the last `num_correction_pairs` (s, y) pairs (compact form, Byrd, Nocedal and Schnabel 1994) restricted to the
   free coordinates, as L-BFGS-B's subspace minimisation does (steepest descent when no pair is usable or the step
   is not a descent direction);
3. a backtracking Armijo line search along the projected path x(t) = clip(x + t d, lo, hi) picks the step - so an
   optimum on the boundary (common here: dSprites pixels are 0 or 1, and a large lambda pins d to 0) is reached
   exactly, and a coordinate leaves a bound as soon as its gradient points inwards. A step must also lower f by
   more than `DECREASE_ULPS` float32 ulps of f: the objective is float32 and its round-off depends on the rows
   evaluated with it (the networks' kernels block by batch size: up to 7e-8 apart between batches of 12 and 1-5
   rows), so a smaller decrease is not evidence of descent. Without that floor a problem pinned to its start by
   lambda = 2^20 took a 1e-10 step in one batch composition and none in another;
4. the pair (s, y) of the accepted step is stored (used while s.y > eps y.y, as in L-BFGS-B) in the step's slot of
   a ring buffer of `num_correction_pairs` slots that all problems share (the slot advances every step). A problem
   that stores no pair in a step (its search goes on, or failed) keeps the older pair in that slot: until
   2026-12-04 the slot was cleared, so a line search spanning m steps wiped the whole history. A problem's pairs are
   then not always in the ring's age order; BFGS updates with s.y > 0 in any order give a positive definite model,
   and theta comes from the pair in the newest slot;
5. a search that finds no acceptable step drops the history. If it rejected a trial point where the gradient
   g' had grown along d (s.y > 0 for s = x' - x, y = g' - g: the search passed a minimum or a kink), the next
   iteration searches along the minimum-norm element of the segment between g and g' (on the free coordinates,
   a unit step as steepest descent's), at most `kink_retries` times in a row; otherwise steepest descent, and a
   problem stops when a steepest-descent (or such) search fails. Why: the encoders are ReLU networks, so the
   objective is piecewise smooth and descent iterates collect on the kinks between pieces. There the gradient of
   the current piece points across a kink within ~1e-7 of x, no step along it lowers f by the decrease floor, and
   steepest descent fails although the projected gradient is far from zero: a tiny Seatbelt-VAE's latent attack
   stopped at Delta 0.184 with a projected gradient of 0.010, where scipy's L-BFGS-B went on to 0.138. The
   smallest convex combination of the gradients on the two sides of the kink runs along it (the gradient-sampling
   direction of Burke, Lewis and Overton 2005 from a sample of two; in a V-shaped valley exactly the valley's
   floor). A search also gives up once -slope * t is below `HOPELESS_FRACTION` of the decrease floor: to first
   order no shorter step can pass it.

A problem stops on scipy's L-BFGS-B criteria: projected gradient max-norm <= `tolerance`, relative decrease
(f_old - f_new) / max(|f_old|, |f_new|, 1) <= `f_relative_tolerance` (here on two iterations in a row: the objective
is float32, so below 1 this is a one-ulp test that one noisy step passes early), or `max_iterations`.

How the batch is run. The objective and its gradient are evaluated for all running problems in one call per
*step*. A step computes a new direction for every problem not in the middle of a line search and makes at most two
line-search evaluations per problem; a problem whose search needs more carries it (the same trial steps) into the
next step, whose first call holds every problem, so a few hard line searches never cost a string of calls of a few
rows each (a TensorFlow call costs ~2 ms even for one image). A problem that has stopped leaves the batch at once
(its rows of the state are dropped once enough problems have stopped). The algebra runs in numpy (float32 vectors,
float64 2m x 2m systems) in row blocks on a few threads, with BLAS pinned to one thread; the products of the pairs
over the free coordinates that step 2 needs are kept up to date (`update_free_set_grams`) rather than recomputed
(m^2 dim work per problem and step). Each problem's arithmetic in the driver is its own; what else is in the batch
reaches a problem only through the objective's round-off, which the decrease floor keeps out of the accept/reject
decisions of problems at a (numerical) optimum, so a sharded sweep equals the single-process one to round-off.

`minimize_scipy` runs scipy's L-BFGS-B one problem at a time on the same objective, bounds handled natively: the
fidelity reference. On attack problems that have not converged, single problems are chaotic: scipy against itself
with a float32-level (1e-7 relative) perturbation of the gradient differs by up to 8-10% per problem at 100
iterations (docs/BENCHMARKS.md), so per-problem agreement between the two drivers is judged against that spread.
"""


import concurrent.futures
import os
import time

import numpy as np
import scipy.optimize
import tensorflow as tf
import threadpoolctl

from seatbelt_tf import config
from seatbelt_tf.attacks import lbfgs_tf

ARMIJO = 1e-4  # sufficient-decrease constant of the line search (the c1 of L-BFGS-B's line search)
_ROUNDS_PER_STEP = 2  # line-search evaluations per row and step; a longer search continues in the next step
CURVATURE_EPS = 2.2e-16  # a pair is stored only if s.y > eps * y.y (as L-BFGS-B)
# An accepted step lowers f by more than this many float32 ulps of |f| (module docstring, 3.): the batch-dependent
# round-off moves f by up to ~1 ulp either way, so two values of one point can be 2 ulps apart. 4 stopped slightly
# more problems early (docs/BENCHMARKS.md, benchmarks/decrease_floor.py).
DECREASE_ULPS = 2
# A line search gives up once its next trial's first-order decrease, -slope * t, is below this fraction of the
# decrease floor (module docstring, 5.): its trials would only shrink towards x.
HOPELESS_FRACTION = 0.1
DRIVER_VERSION = config.ATTACK_DRIVER_VERSION  # kept in every attack record it makes (`protocol.run_attack`)
# Failed searches in a row that may be followed by a search along the two-gradient bundle's minimum-norm
# direction rather than steepest descent (module docstring, 5.).
KINK_RETRIES = 2


def decrease_limit(f):
  """The value a trial point must be below to count as a decrease from f (float64 `[a]`): f less `DECREASE_ULPS`
  float32 ulps of |f|."""
  return f - DECREASE_ULPS * np.spacing(np.abs(f).astype(np.float32)).astype(np.float64)


class Result(dict):
  """x `[n, ...]`, objective `[n]`, iterations `[n]`, evaluations `[n]`, converged `[n]`, wall_time_s."""

  __getattr__ = dict.__getitem__


def _value_and_gradient_fn(objective, shape, dim, chunk):
  """(x `[m, dim]` float32, idx `[m]`) -> (values `[m]`, gradients `[m, dim]`) as numpy, in chunks of `chunk` rows."""
  value_and_gradient = lbfgs_tf.value_and_gradient_function(objective, shape, dim)

  def call(x, idx):
    values, grads = [], []
    for s in range(0, len(idx), chunk):
      v, g = value_and_gradient(tf.constant(x[s:s + chunk], tf.float32), tf.constant(idx[s:s + chunk], tf.int32))
      values.append(v.numpy().astype(np.float64))
      grads.append(g.numpy())
    return np.concatenate(values), np.concatenate(grads)
  return call


def reduced_direction(g, S, Y, SY, YY, grams, stored, free, age, chunk=32):
  """The L-BFGS-B subspace step -(Z^T B Z)^{-1} g_F on the free coordinates (Byrd et al. 1995, eqs. 3.2, 5.11).

  B = theta I - W M W^T is the limited-memory BFGS Hessian of the stored pairs on the *whole* space (W = [Y, theta S],
  M^-1 = [[-D, L^T], [L, theta S^T S]], theta = y.y / s.y of the newest pair; Byrd, Nocedal and Schnabel 1994,
  Theorem 2.3). Z selects the free coordinates; by Sherman-Morrison-Woodbury, with U = Z^T W,

      (Z^T B Z)^-1 g_F = g_F / theta + U K^-1 U^T g_F / theta^2,    K = M^-1 - U^T U / theta   (2m x 2m).

  Restricting the model (not the pairs) to the free coordinates is what L-BFGS-B does; it keeps the curvature the
  binding coordinates carry, which a two-loop recursion over pairs cut down to the free coordinates loses (on the
  attack problems that cost up to 20% of the final objective at 200 iterations). The lower-right block of K,
  theta (S^T S - S_F^T S_F), is theta S_B^T S_B over the binding coordinates, so it does not cancel.

  K needs U^T U, i.e. the products of the pairs over the free coordinates (`grams`); the driver keeps those up to
  date as pairs arrive and coordinates change sides (`update_free_set_grams`), so a step costs four passes over
  the pairs (U^T g_F and U u) instead of the m^2 dim products of every pair with every other.

  Args:
    g: `[a, dim]` gradients, zero on the binding coordinates.
    S, Y: `[a, m, dim]` float32 pairs, slot by slot (a ring buffer: `age` orders the slots).
    SY: `[a, m, m]` s_i.y_j over the whole space; YY: `[a, m]` y_i.y_i.
    grams: (y_F,i.y_F,j, s_F,i.y_F,j, s_B,i.s_B,j), each `[a, m, m]` float64, over the free set `free`
      (`free_set_grams`).
    stored: bool `[a, m]`, which slots hold a pair; a pair is used if s.y > eps y.y (as L-BFGS-B).
    free: `[a, dim]` float 0/1 mask of the free coordinates.
    age: `[m]` each slot's rank, 0 for the oldest (the same for every row).
    chunk: rows per block (keeps a block's pairs in cache between its two passes).

  Returns:
    (d `[a, dim]`, zero on the binding coordinates; has_pair `[a]`, whether any pair was used). Each row is computed
    by its own matrix products and solve, so a problem's path is bit-identical whatever else is in the batch (a
    sharded sweep equals the single-process one exactly).
  """
  a, m, _ = S.shape
  yfyf, sfy, sbsb = grams
  sy = np.diagonal(SY, axis1=1, axis2=2).astype(np.float64)
  keep = stored & np.isfinite(sy) & np.isfinite(YY) & (sy > 0) & (sy > CURVATURE_EPS * YY)
  has_pair = keep.any(axis=1)
  newest = np.argmax(np.where(keep, age[None] + 1, 0), axis=1)
  rows = np.arange(a)
  theta = np.where(has_pair, YY[rows, newest] / np.where(has_pair, sy[rows, newest], 1.0), 1.0)
  older = age[:, None] > age[None, :]  # L_ij = s_i.y_j for pair i newer than pair j
  pair_mask = (keep[:, :, None] & keep[:, None, :]).astype(np.float64)
  pad = np.eye(m)[None] * (~keep).astype(np.float64)[:, :, None]  # unused slots: identity rows and columns of K
  th = theta[:, None, None]
  lower = np.where(older[None], SY.astype(np.float64), 0.0)
  K = np.empty((a, 2 * m, 2 * m))
  K[:, :m, :m] = (-np.eye(m)[None] * sy[:, None, :] - yfyf / th) * pair_mask - pad
  K[:, :m, m:] = (np.swapaxes(lower, 1, 2) - np.swapaxes(sfy, 1, 2)) * pair_mask
  K[:, m:, :m] = np.swapaxes(K[:, :m, m:], 1, 2)
  K[:, m:, m:] = th * sbsb * pair_mask + pad
  keep2 = np.concatenate([keep, keep], axis=1)
  d = np.empty_like(g)

  def block(r):
    gr = g[r][:, :, None]
    ug = np.concatenate([np.matmul(Y[r], gr)[..., 0], theta[r][:, None] * np.matmul(S[r], gr)[..., 0]], axis=1)
    u = _solve(K[r], ug.astype(np.float64) * keep2[r])  # (g is zero off F: Y g = Y_F g_F)
    u1 = (u[:, None, :m] / theta[r][:, None, None] ** 2).astype(np.float32)
    u2 = (u[:, None, m:] / theta[r][:, None, None]).astype(np.float32)
    correction = (np.matmul(u1, Y[r])[:, 0] + np.matmul(u2, S[r])[:, 0]) * free[r]
    d[r] = -(g[r] / theta[r][:, None].astype(np.float32) + correction)
  _map_rows(block, a, chunk)
  return d, has_pair


def free_set_grams(S, Y, free, rows=None, out=None, chunk=32):
  """The pair products over the free and binding coordinates, computed directly: (y_F,i.y_F,j, s_F,i.y_F,j,
  s_B,i.s_B,j), each `[a, m, m]` float64, for `[a, m, dim]` float32 pairs and a `[a, dim]` 0/1 mask `free`; with
  `rows` (indices) and `out` (three `[a, m, m]` arrays), only those rows, written into `out`."""
  a, m, _ = S.shape
  out = tuple(np.empty((a, m, m)) for _ in range(3)) if out is None else out
  rows = np.arange(a) if rows is None else np.asarray(rows)

  def block(b):
    r = rows[b]
    fr = np.asarray(free[r], np.float32)[:, None, :]
    Sr, Yr = S[r], Y[r]
    Sf, Yf = Sr * fr, Yr * fr
    Sb = Sr - Sf
    Yt = np.swapaxes(Yr, 1, 2)
    out[0][r], out[1][r] = np.matmul(Yf, Yt), np.matmul(Sf, Yt)
    out[2][r] = np.matmul(Sb, np.swapaxes(Sb, 1, 2))
  _map_rows(block, len(rows), chunk)
  return out


DENSE_UPDATE_FRACTION = 1 / 16  # a row whose free set changed on more of its coordinates is recomputed directly


def update_free_set_grams(grams, S, Y, stored, free_old, free_new, group=64):
  """Brings `grams` (`free_set_grams` of the pairs over `free_old`) to the free set `free_new`, in place.

  A coordinate c that becomes free adds y_c y_c^T to y_F.y_F and s_c y_c^T to s_F.y_F, and takes s_c s_c^T from
  s_B.s_B (one that becomes binding the reverse). Per row, the changed coordinates (at most `limit` =
  `DENSE_UPDATE_FRACTION` * dim) are gathered into a zero-padded `[m, limit]` block and the three updates are
  float64 products of that block (exact products of float32 numbers, a fixed shape for every row, so a row's
  result does not depend on the rest of the batch). A row with more changes is recomputed directly; a row
  without stored pairs is skipped (a slot's products are computed when its pair is written).

  Args:
    grams: the three `[a, m, m]` float64 arrays, updated in place.
    S, Y: `[a, m, dim]` pairs; stored: bool `[a, m]`.
    free_old, free_new: bool `[a, dim]`.
    group: rows per vectorised block of sparse updates.
  """
  a, m, dim = S.shape
  changed, counts = np.empty((a, dim), bool), np.empty(a, np.int64)

  def compare(r):
    np.not_equal(free_old[r], free_new[r], out=changed[r])
    counts[r] = changed[r].sum(axis=1)
  _map_rows(compare, a, 128)
  active = stored.any(axis=1) & (counts > 0)
  limit = max(16, int(dim * DENSE_UPDATE_FRACTION))
  dense = np.flatnonzero(active & (counts > limit))
  free_set_grams(S, Y, free_new, rows=dense, out=grams)
  sparse = np.flatnonzero(active & (counts <= limit))
  S_flat, Y_flat = S.reshape(-1), Y.reshape(-1)

  def block(b):
    rows = sparse[b]
    r, c = np.nonzero(changed[rows])
    position = np.arange(len(r)) - np.searchsorted(r, r)  # rank of each change within its row
    columns = np.zeros((len(rows), limit), np.int64)
    sign = np.zeros((len(rows), 1, limit))
    columns[r, position] = c
    sign[r, 0, position] = np.where(free_new[rows[r], c], 1.0, -1.0)  # +1: the coordinate became free
    flat = ((rows[:, None] * m + np.arange(m)) * dim)[:, :, None] + columns[:, None, :]  # [rows, m, limit]
    ys = np.where(sign != 0, np.take(Y_flat, flat), 0.0)  # float32, padding exactly 0
    ss = np.where(sign != 0, np.take(S_flat, flat), 0.0)
    signed_s = sign * ss  # float64 (sign is): the products below are float64 sums of exact float32 products
    grams[0][rows] += np.matmul(sign * ys, np.swapaxes(ys, 1, 2))
    grams[1][rows] += np.matmul(signed_s, np.swapaxes(ys, 1, 2))
    grams[2][rows] -= np.matmul(signed_s, np.swapaxes(ss, 1, 2))
  _map_rows(block, sparse.size, group)


def ring_ages(m, slot):
  """Each slot's age rank (0 = oldest) in a ring buffer of m pairs whose next write goes to `slot`: `[m]`."""
  return (np.arange(m) - slot) % m


def _solve(K, b):
  """Batched K u = b; a row whose K is singular (degenerate pairs) gets u = 0, i.e. the step -g_F / theta."""
  try:
    u = np.linalg.solve(K, b[..., None])[..., 0]
  except np.linalg.LinAlgError:
    u = np.zeros_like(b)
    for i in range(len(K)):
      try:
        u[i] = np.linalg.solve(K[i], b[i])
      except np.linalg.LinAlgError:
        pass
  u[~np.isfinite(u).all(axis=1)] = 0.0
  return u


def _update_products(S, Y, SY, YY, grams, free, slot, work=None, chunk=128):
  """Refreshes, in place and for every row, the products of slot `slot` with every slot: s.y over the whole space
  and the free-set `grams` over the free set `free` (float 0/1) - two passes over the pairs, through `work`
  (`[a, 3, dim]` float32 scratch, reused so that no fresh pages are touched). (A row whose new pair was rejected
  gets products it never uses: its slot is not stored.)"""
  yfyf, sfy, sbsb = grams
  work = np.empty((len(S), 3, S.shape[2]), np.float32) if work is None else work

  def block(r):
    s_new, y_new, w = S[r, slot], Y[r, slot], work[r]
    w[:, 0], w[:, 1] = s_new, s_new
    w[:, 1] *= free[r]
    np.multiply(y_new, free[r], out=w[:, 2])
    by_y = np.matmul(Y[r], np.swapaxes(w, 1, 2))  # [rows, m, 3]: y_j.(s_k, s_F,k, y_F,k)
    np.subtract(s_new, w[:, 1], out=w[:, 0])
    w[:, 1] = w[:, 2]
    w[:, 2] = y_new
    by_s = np.matmul(S[r], np.swapaxes(w, 1, 2))  # s_j.(s_B,k, y_F,k, y_k)
    SY[r, slot, :], SY[r, :, slot] = by_y[:, :, 0], by_s[:, :, 2]
    YY[r, slot] = np.einsum("ad,ad->a", y_new, y_new)
    yfyf[r, slot, :] = yfyf[r, :, slot] = by_y[:, :, 2]
    sfy[r, slot, :], sfy[r, :, slot] = by_y[:, :, 1], by_s[:, :, 1]
    sbsb[r, slot, :] = sbsb[r, :, slot] = by_s[:, :, 0]
  _map_rows(block, len(S), chunk)


_WORKERS = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1))
_POOL = []


def _map_rows(fn, n, chunk):
  """Calls fn(slice) for consecutive blocks of `chunk` of n rows, on `_WORKERS` threads (numpy releases the GIL in
  its loops and BLAS calls). Every block writes only its own rows, so the result is the same as a serial loop's,
  bit for bit."""
  blocks = [slice(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)]
  if _WORKERS < 2 or len(blocks) < 2:
    for b in blocks:
      fn(b)
    return
  if not _POOL:
    _POOL.append(concurrent.futures.ThreadPoolExecutor(_WORKERS, thread_name_prefix="lbfgs"))
  for future in [_POOL[0].submit(fn, b) for b in blocks]:
    future.result()  # (re-raises a block's exception)


def _single_threaded_blas():
  """numpy's BLAS on one thread per call while the driver's own threads split the rows (nested BLAS threads would
  oversubscribe the cores); TensorFlow's thread pools are not affected."""
  return threadpoolctl.threadpool_limits(1, user_api="blas")


def _projected_gradient_norm(x, g, lo, hi):
  """max_j |x_j - clip(x_j - g_j, lo, hi)| per row: L-BFGS-B's projected-gradient stopping measure, `[a]`."""
  return np.abs(x - np.clip(x - g, lo, hi)).max(axis=1, initial=0.0)


def _rowdot(a, b):
  return np.einsum("ad,ad->a", a, b)


BACKENDS = ("numpy", "tf", "auto")


def resolve_backend(backend):
  """The driver backend `backend` names: "numpy" or "tf" as given; "auto" is "tf" when TensorFlow sees a GPU (the
  algebra then stays where the objective runs, instead of copying the batch to the host every step) and "numpy"
  otherwise (on a CPU the numpy algebra, threaded over row blocks, is the faster one: docs/BENCHMARKS.md)."""
  if backend not in BACKENDS:
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}.")
  if backend == "auto":
    return "tf" if tf.config.list_logical_devices("GPU") else "numpy"
  return backend


DEFAULT_CHUNK = 1024  # most rows per objective call in minimize_batched


def minimize_batched(objective, x0, lo, hi, max_iterations=200, tolerance=1e-5, f_relative_tolerance=2.2e-9,
                     num_correction_pairs=10, max_line_search=20, chunk=DEFAULT_CHUNK, compact_below=0.75,
                     verbose=False, callback=None, backend="numpy", kink_retries=KINK_RETRIES):
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
    max_line_search: trial steps before a line search gives up (the history is then dropped and the next
      iteration searches along the bundle direction of `kink_retries`, or steepest descent). A search also gives
      up when its steps get too short to pass the decrease floor.
    chunk: most rows per objective call (bounds memory).
    compact_below: stopped problems are not evaluated again at once; their rows of the state (history included)
      are dropped once fewer than this fraction of the stored rows still run.
    verbose: show a progress bar of finished problems.
    callback: called as callback(step, objective) after every step (see the module docstring: one iteration for
      most problems), objective `[n]` the current value of every problem (its final value once it has stopped);
      e.g. to trace strength against wall time.
    backend: where the per-step algebra runs (`BACKENDS`): "numpy" on the host (this module's functions), "tf" as
      TensorFlow ops next to the objective (attacks/lbfgs_tf.py: the vectors, pairs and pair products stay on the
      objective's device; only per-problem scalars come to the host), "auto" tf when a GPU is visible. The two
      take the same steps; their float rounding differs (equal to float tolerance, tests/test_attacks.py).
    kink_retries: how many failed line searches in a row may be followed by a search along the minimum-norm
      combination of the gradients at x and at the search's shortest rejected trial with s.y > 0 (module
      docstring, 5.); otherwise a failed search is followed by steepest descent, and a failed steepest-descent
      search stops the problem (always so with 0, the driver before 2026-12-04).

  Returns:
    `Result` with the solutions `x`, their `objective`, per-problem `iterations` and `evaluations` (objective and
    gradient evaluations of that problem), `converged` (stopped on a tolerance, or because not even a tiny
    steepest-descent step decreases f, rather than on the iteration limit), and `wall_time_s`.
  """
  if int(kink_retries) < 0:
    raise ValueError(f"kink_retries must be >= 0 (0: steepest descent after every failed search); got "
                     f"{kink_retries}.")
  if resolve_backend(backend) == "tf":
    ops = lbfgs_tf.TensorOps(lo, hi, ARMIJO, CURVATURE_EPS, DENSE_UPDATE_FRACTION, decrease_limit)
  else:
    ops = NumpyOps(lo, hi)
  with _single_threaded_blas():
    return _minimize_batched(ops, objective, x0, lo, hi, max_iterations, tolerance, f_relative_tolerance,
                             num_correction_pairs, max_line_search, chunk, compact_below, verbose, callback,
                             int(kink_retries))


class NumpyOps:
  """The driver's per-step algebra on the host, in numpy (the functions of this module). Every method that takes
  the driver's arrays returns them (updated in place here; `lbfgs_tf.TensorOps` returns new tensors), so the
  driver reads the same with either backend. Per-problem scalars (f, steps, slopes, flags) are numpy in both."""

  def __init__(self, lo, hi):
    self.lo, self.hi = lo, hi

  def scratch(self, n, dim):
    """`[n, 3, dim]` float32 scratch of `_update_products` (reused so that no fresh pages are touched)."""
    return np.empty((n, 3, dim), np.float32)

  def evaluator(self, objective, shape, dim, chunk):
    """(x, idx numpy `[a]`) -> (values float64 numpy `[a]`, gradients `[a, dim]` in this backend)."""
    return _value_and_gradient_fn(objective, shape, dim, chunk)

  def array(self, value):
    return value

  def zeros(self, shape, dtype):
    return np.zeros(shape, dtype)

  def numpy(self, value):
    return value

  def take(self, values, keep):
    """Rows `keep` (a bool mask) of each array of `values`."""
    return tuple(v[keep] for v in values)

  def projected_gradient_norm(self, x, g):
    return _projected_gradient_norm(x, g, self.lo, self.hi)

  def free_set(self, x, g):
    return _free_set(x, g, self.lo, self.hi)

  def update_free_set_grams(self, grams, S, Y, stored, free_old, free_new):
    update_free_set_grams(grams, S, Y, stored, free_old, free_new)
    return grams

  def direction(self, g_free, S, Y, SY, YY, grams, stored, free, age):
    """(d, has_pair `[a]` numpy, slope g_F.d `[a]` numpy): `reduced_direction` and its slope."""
    d, has_pair = reduced_direction(g_free, S, Y, SY, YY, grams, stored, free, age)
    return d, has_pair, _rowdot(g_free, d)

  def steepest(self, direction, g_free, rows):
    """The unit steepest-descent direction on the rows `rows` (bool mask): (direction, ||g_F|| of those rows)."""
    norm = np.sqrt(_rowdot(g_free[rows], g_free[rows]))
    direction[rows] = -g_free[rows] / np.maximum(norm, 1e-30)[:, None]
    return direction, norm

  def set_rows(self, d, rows, direction):
    """d with rows `rows` (indices) taken from direction."""
    d[rows] = direction[rows]
    return d

  def trial_points(self, x, d, t, trial):
    """clip(x + t d) of the rows `trial`, `[len(trial), dim]` float32."""
    lo, hi = self.lo, self.hi
    x_try = np.empty((len(trial), x.shape[1]), np.float32)
    _map_rows(lambda b: np.clip(x[trial[b]] + t[trial[b], None] * d[trial[b]], lo, hi, out=x_try[b]),
              len(trial), _ROW_BLOCK)
    return x_try

  def accept(self, trial, x_try, f_try, g_try, x, f, g, S, Y, slot, projected):
    """The Armijo test and, where it passes, the step (`_accept`): (passed mask of `trial`, x, g, S, Y); f and
    `projected` (numpy) are updated in place."""
    ok = _accept(trial, x_try, f_try, g_try, x, f, g, S, Y, slot, self.lo, self.hi, projected)
    return ok, x, g, S, Y

  def keep_rejected_gradients(self, trial, passed, x_try, f_try, g_try, x, g, g_rejected):
    """For the rows of `trial` that did not pass, g_try into `g_rejected` (`[a, dim]`) where s.y > 0
    (`_keep_rejected_gradients`): (mask of `trial` kept, g_rejected)."""
    return _keep_rejected_gradients(trial, passed, x_try, f_try, g_try, x, g, g_rejected), g_rejected

  def bundle(self, direction, g_free, free, g_rejected, rows):
    """The unit minimum-norm bundle direction (`bundle_direction`) on the rows `rows` (bool mask):
    (direction, slope g_F.d of those rows)."""
    unit, slope = bundle_direction(g_free[rows], g_rejected[rows] * free[rows])
    direction[rows] = unit
    return direction, slope

  def update_products(self, S, Y, SY, YY, grams, free, slot, work):
    _update_products(S, Y, SY, YY, grams, free, slot, work)
    return SY, YY, grams


def _minimize_batched(ops, objective, x0, lo, hi, max_iterations, tolerance, f_relative_tolerance,
                      num_correction_pairs, max_line_search, chunk, compact_below, verbose, callback, kink_retries):
  start = time.perf_counter()
  x0 = np.asarray(x0, np.float32)
  n, shape = x0.shape[0], x0.shape[1:]
  dim = int(np.prod(shape))
  evaluate = ops.evaluator(objective, shape, dim, chunk)
  m = num_correction_pairs

  out_x = np.clip(x0.reshape(n, dim), lo, hi)
  iterations = np.zeros(n, np.int64)
  evaluations = np.ones(n, np.int64)
  converged = np.zeros(n, bool)

  # State per stored row: the problem id, x, f, g and the curvature history (a ring buffer whose slot all rows
  # share; `stored` marks the slots that hold a pair), and the line search in progress (direction d, step t, slope,
  # trials so far, whether it is a steepest-descent search), the gradient at the search's shortest rejected trial
  # with s.y > 0 (`g_rejected`; `rejected` marks the rows whose search has one), the failed searches in a row
  # (`failures`) and the rows whose next direction is the bundle's (`bundled`). `running` marks rows still
  # optimising, `searching` those whose line search carries over into the next step. x, g, d, the pairs and their
  # products live in the backend (`ops`); the per-problem scalars and flags are numpy.
  ids = np.arange(n)
  x = ops.array(out_x.copy())
  f, g = evaluate(x, ids)
  S = ops.zeros((n, m, dim), np.float32)
  Y = ops.zeros((n, m, dim), np.float32)
  SY, YY = ops.zeros((n, m, m), np.float32), ops.zeros((n, m), np.float32)
  grams = tuple(ops.zeros((n, m, m), np.float64) for _ in range(3))  # pair products over the free set `free_ref`
  free_ref = ops.array(np.ones((n, dim), bool))
  work = ops.scratch(n, dim)
  stored = np.zeros((n, m), bool)
  d = ops.zeros((n, dim), np.float32)
  t, slope, f_start = np.ones(n), np.zeros(n), f.copy()
  tries, steep, searching = np.zeros(n, np.int64), np.zeros(n, bool), np.zeros(n, bool)
  small_before = np.zeros(n, bool)
  g_rejected = ops.zeros((n, dim), np.float32)
  rejected, bundled, failures = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, np.int64)
  running = np.isfinite(f) & (ops.projected_gradient_norm(x, g) > tolerance)
  converged[~running] = np.isfinite(f[~running])
  current = f.copy()  # every problem's objective now (for the callback)
  slot = 0
  progress = _progress(n, verbose)
  step_number = 0
  while True:
    running &= searching | (iterations[ids] < max_iterations)  # (a finished search on the last iteration stops)
    if progress:
      progress.update(n - int(running.sum()))
    if not running.any():
      break
    step_number += 1
    if running.mean() < compact_below:  # drop the rows of stopped problems
      out_x[ids[~running]] = ops.numpy(ops.take((x,), ~running)[0])
      x, g, d, S, Y, SY, YY, free_ref, g_rejected, *grams = ops.take(
          (x, g, d, S, Y, SY, YY, free_ref, g_rejected, *grams), running)
      grams = tuple(grams)
      ids, f, stored = ids[running], f[running], stored[running]
      t, slope, f_start, tries, steep = t[running], slope[running], f_start[running], tries[running], steep[running]
      small_before, searching = small_before[running], searching[running]
      rejected, bundled, failures = rejected[running], bundled[running], failures[running]
      running = running[running]
    # A new direction for every row not in a search, on the free coordinates (binding ones: on a bound, gradient
    # pointing out of the box).
    fresh = running & ~searching
    free_now, free, g_free = ops.free_set(x, g)
    grams = ops.update_free_set_grams(grams, S, Y, stored, free_ref, free_now)
    free_ref = free_now
    rows = np.flatnonzero(fresh)
    if rows.size:
      direction, has_pair, new_slope = ops.direction(g_free, S, Y, SY, YY, grams, stored, free, ring_ages(m, slot))
      steepest = fresh & (~has_pair | ~(new_slope < 0))
      if bundled.any():  # after a failed search that passed a kink: the two gradients' minimum-norm direction
        direction, bundle_slope = ops.bundle(direction, g_free, free, g_rejected, bundled)
        new_slope[bundled] = bundle_slope
        steepest &= ~bundled
        steepest[bundled] = ~(bundle_slope < 0)  # (a zero combination: steepest descent)
      if steepest.any():  # no history yet, or not a descent direction: a unit steepest-descent step, history dropped
        direction, norm = ops.steepest(direction, g_free, steepest)
        new_slope[steepest] = -norm
        stored[steepest] = False
      d = ops.set_rows(d, rows, direction)
      slope[rows], steep[rows] = new_slope[rows], steepest[rows] | bundled[rows]
      t[rows], tries[rows], f_start[rows], rejected[rows], bundled[rows] = 1.0, 0, f[rows], False, False
      iterations[ids[rows]] += 1
    # Backtracking Armijo search along the projected path; rows that accepted a step are not evaluated again. At
    # most `_ROUNDS_PER_STEP` rounds per step: a row still backtracking carries its search (the same trial steps)
    # into the next step's first, full-size call instead of holding up the batch with calls of a few rows.
    accepted = np.zeros(len(ids), bool)
    exhausted = np.zeros(len(ids), bool)
    trial = np.flatnonzero(running)
    projected = np.full(len(ids), np.inf)  # projected-gradient max-norm at the accepted points
    for _ in range(_ROUNDS_PER_STEP):
      x_try = ops.trial_points(x, d, t, trial)
      f_try, g_try = evaluate(x_try, ids[trial])
      evaluations[ids[trial]] += 1
      tries[trial] += 1
      ok, x, g, S, Y = ops.accept(trial, x_try, f_try, g_try, x, f, g, S, Y, slot, projected)
      accepted[trial[ok]] = True
      if kink_retries:
        kept, g_rejected = ops.keep_rejected_gradients(trial, ok, x_try, f_try, g_try, x, g, g_rejected)
        rejected[trial[kept]] = True
      # Backtrack to the minimiser of the quadratic through f(0), f'(0) and f(t), kept within [0.01 t, 0.5 t].
      back = trial[~ok]
      curvature = f_try[~ok] - f[back] - slope[back] * t[back]
      with np.errstate(divide="ignore", invalid="ignore"):
        t_new = -slope[back] * t[back] ** 2 / (2.0 * curvature)
      t_new = np.where(np.isfinite(t_new), t_new, 0.5 * t[back])
      t[back] = np.clip(t_new, 0.01 * t[back], 0.5 * t[back])
      out = tries[back] >= max_line_search
      out |= -slope[back] * t[back] < HOPELESS_FRACTION * (f[back] - decrease_limit(f[back]))
      exhausted[back[out]] = True
      trial = back[~out]
      if not trial.size:
        break
    searching[:] = False
    searching[trial] = True
    stored[:, slot] |= accepted  # (a row that made no pair keeps its older one; curvature test: reduced_direction)
    failures = np.where(accepted, 0, failures + exhausted)
    # A failed search drops the history; one that passed a kink (at most `kink_retries` times in a row) is
    # followed by a search along the bundle direction of the gradients on its two sides.
    bundled = exhausted & rejected & (failures <= kink_retries)
    stored[exhausted] = False
    SY, YY, grams = ops.update_products(S, Y, SY, YY, grams, free, slot, None if work is None else work[:len(ids)])
    slot = (slot + 1) % m
    relative = (f_start - f) / np.maximum(np.maximum(np.abs(f_start), np.abs(f)), 1.0)
    # The relative-decrease test must hold on two iterations in a row: on a float32 objective below 1 it is an
    # absolute test at about one ulp, which a single noisy step passes long before convergence.
    flat = accepted & (relative <= f_relative_tolerance)
    small = (flat & small_before) | (accepted & (projected <= tolerance))
    small_before = np.where(accepted | exhausted, flat, small_before)  # (a search in progress keeps it)
    failed = exhausted & ~bundled & steep  # steepest descent found no decrease: a (numerical) optimum
    converged[ids[small | failed]] = True
    running &= ~(small | failed)
    if callback is not None:
      current[ids] = f
      callback(step_number, current)
  out_x[ids] = ops.numpy(x)  # the rest stopped on the iteration limit
  if progress:
    progress.update(n)
  x_out = out_x.reshape((n,) + shape)
  values = objective_values(objective, tf.constant(x_out), n)
  return Result(x=x_out, objective=values, iterations=iterations, evaluations=evaluations,
                converged=converged, wall_time_s=time.perf_counter() - start)


_ROW_BLOCK = 64  # rows per block of the driver's elementwise work


def _free_set(x, g, lo, hi):
  """(free bool, free float 0/1, g on the free coordinates), each `[a, dim]`: a coordinate is binding when it sits
  on a bound and its gradient points out of the box."""
  free_now, free, g_free = np.empty(x.shape, bool), np.empty_like(x), np.empty_like(g)

  def block(r):
    free_now[r] = ~(((x[r] <= lo) & (g[r] > 0)) | ((x[r] >= hi) & (g[r] < 0)))
    free[r] = free_now[r]
    np.multiply(g[r], free[r], out=g_free[r])
  _map_rows(block, len(x), _ROW_BLOCK)
  return free_now, free, g_free


def _accept(trial, x_try, f_try, g_try, x, f, g, S, Y, slot, lo, hi, projected):
  """The Armijo test for the rows `trial` at their trial points, and, for the rows that pass, the step: the pair
  (s, y) into `slot`, the new x, f and g, and the projected-gradient max-norm into `projected` (all in place).
  Returns the bool mask of `trial` that passed."""
  ok = np.zeros(len(trial), bool)

  def block(b):
    r = trial[b]
    step = x_try[b] - x[r]
    decrease = np.minimum(_rowdot(g[r], step), 0.0)
    passed = np.isfinite(f_try[b]) & (f_try[b] <= f[r] + ARMIJO * decrease) & (f_try[b] < decrease_limit(f[r]))
    passed[passed] = np.isfinite(g_try[b][passed]).all(axis=1)  # (so that no stored pair is ever non-finite)
    ok[b] = passed
    done = r[passed]
    S[done, slot], Y[done, slot] = step[passed], g_try[b][passed] - g[done]
    x[done], f[done], g[done] = x_try[b][passed], f_try[b][passed], g_try[b][passed]
    projected[done] = _projected_gradient_norm(x[done], g[done], lo, hi)
  _map_rows(block, len(trial), _ROW_BLOCK)
  return ok


def _keep_rejected_gradients(trial, passed, x_try, f_try, g_try, x, g, g_rejected):
  """For the rows of `trial` whose trial point did not pass (`passed` False) and whose value and gradient there are
  finite: g_try into `g_rejected` (in place) where s.y > max(0, eps y.y) for s = x_try - x, y = g_try - g (the
  gradient grew along the step: the search passed a minimum or a kink). Returns the bool mask of `trial` kept."""
  kept = np.zeros(len(trial), bool)

  def block(b):
    r = trial[b]
    step, y = x_try[b] - x[r], g_try[b] - g[r]
    sy, yy = _rowdot(step, y), _rowdot(y, y)
    keep = (~passed[b] & np.isfinite(f_try[b]) & np.isfinite(g_try[b]).all(axis=1) & np.isfinite(sy)
            & np.isfinite(yy) & (sy > 0) & (sy > CURVATURE_EPS * yy))
    kept[b] = keep
    g_rejected[r[keep]] = g_try[b][keep]
  _map_rows(block, len(trial), _ROW_BLOCK)
  return kept


def bundle_direction(a, b):
  """The unit direction -c/||c|| of the minimum-norm point c of the segment [a, b] (`[r, dim]` each: the gradients
  at x and across a kink, on the free coordinates), and its slope a.d `[r]` (>= 0 only where c = 0). For a V-shaped
  valley a = u + v, b = u - v, c is u's part orthogonal to v: the valley floor's descent direction. (Burke,
  Lewis and Overton 2005, gradient sampling, with a sample of two.)"""
  diff = a - b
  dd = _rowdot(diff, diff).astype(np.float64)
  with np.errstate(divide="ignore", invalid="ignore"):
    w = np.where(dd > 0, np.clip(-_rowdot(b, diff) / dd, 0.0, 1.0), 1.0)
  c = b + w[:, None].astype(np.float32) * diff
  norm = np.sqrt(_rowdot(c, c))
  unit = -c / np.maximum(norm, 1e-30)[:, None]
  return unit, _rowdot(a, unit)


def _progress(n, verbose):
  if not verbose:
    return None
  import keras  # pylint: disable=g-import-not-at-top
  return keras.utils.Progbar(n, unit_name="problem")


def objective_values(objective, x, n, chunk=512):
  """objective(x, idx) of the n problems at x (`[n, ...]` tensor; row k is problem k) as float64 numpy `[n]`, in
  chunks of `chunk` rows (values only, no gradient)."""
  out = []
  for s in range(0, n, chunk):
    out.append(objective(x[s:s + chunk], tf.range(s, min(s + chunk, n), dtype=tf.int32)).numpy())
  return np.concatenate(out).astype(np.float64)


def minimize_scipy(objective, x0, lo, hi, max_iterations=200, tolerance=1e-5, ftol=2.2e-9, verbose=False,
                   callback=None):
  """The reference: scipy's L-BFGS-B, one problem at a time, with native bounds (same `objective` contract;
  `callback(k, objective)` after each problem k, unsolved problems at +inf). numpy's BLAS runs on one thread
  meanwhile: scipy's many small BLAS calls on OpenBLAS's threads made each of its iterations 4-38x as long on a
  2-core machine with another job running (nothing on a quiet one; benchmarks/scipy_blas_threads.py), with the
  same result at an image's size."""
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
  with _single_threaded_blas():  # (once for the whole loop, as in minimize_batched)
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
  values = objective_values(objective, tf.constant(xs), n)
  return Result(x=xs, objective=values, iterations=iterations, evaluations=evaluations, converged=converged,
                wall_time_s=time.perf_counter() - start)

