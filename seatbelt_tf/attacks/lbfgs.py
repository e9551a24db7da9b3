"""Box-constrained L-BFGS for many independent attack problems at once, and a scipy reference.

`minimize_batched` runs L-BFGS-B (Byrd, Lu, Nocedal and Zhu 1995; version 3.0, Morales and Nocedal 2011) on a
whole batch of independent problems min_{lo <= x <= hi} f_k(x), each problem taking the steps scipy's L-BFGS-B
takes. Every iteration of a problem:

1. the *generalised Cauchy point* x^cp (`cauchy_point`): the first local minimiser of the limited-memory BFGS
   model along the projected steepest-descent path P(x - t g). Coordinates that reach a bound before it are fixed
   there (with those on a bound whose gradient points out of the box); the rest are the free set;
2. the *subspace step* (`reduced_direction`): the Newton step of the model over the free coordinates from x^cp,
   -(Z^T B Z)^-1 (g + B (x^cp - x)), with B = theta I - W M W^T in compact form (Byrd, Nocedal and Schnabel 1994)
   of the last `num_correction_pairs` pairs. The end point x_bar is projected into the box, or, if the projection
   makes it an ascent direction, cut back to the first bound it meets (3.0's rule). Without pairs x_bar = x^cp =
   P(x - g);
3. a *Moré-Thuente line search* (MINPACK-2's dcsrch and dcstep, `_dcsrch`) along the chord x + stp (x_bar - x): the
   first trial is stp = 1, steps up to the box's edge (1 on the first iteration), sufficient decrease 1e-3,
   curvature 0.9, as L-BFGS-B. A search that fails after `max_line_search` trials drops the history and the
   iteration is retried from P(x - g); a problem whose search fails without history stops;
4. the pair (s, y) is stored if s.y > eps (-g.s) (L-BFGS-B's test).

An optimum on the boundary (common here: dSprites pixels are 0 or 1, and a large lambda pins d to 0) is reached
exactly: the Cauchy point puts coordinates on their bounds.

A problem stops on scipy's L-BFGS-B criteria: projected gradient max-norm <= `tolerance`, relative decrease
(f_old - f_new) / max(|f_old|, |f_new|, 1) <= `f_relative_tolerance` (here on two iterations in a row: the objective
is float32, so below 1 this is a one-ulp test that one noisy step passes early), or `max_iterations`.

How the batch is run. The objective and its gradient are evaluated for all running problems in one call per
*step*. A step computes a new direction for every problem not in the middle of a line search and makes at most two
line-search evaluations per problem; a problem whose search needs more carries it (the same trial steps) into the
next step, whose first call holds every problem, so a few long line searches never cost a string of calls of a
few rows each (a TensorFlow call costs ~2 ms even for one image). A problem that has stopped leaves the batch at
once (its rows of the state are dropped once enough problems have stopped). The algebra runs in numpy (float32
vectors, float64 2m x 2m systems and Cauchy-point recursions) in row blocks on a few threads, with BLAS pinned to
one thread; the products of the pairs over the free coordinates that step 2 needs are kept up to date
(`update_free_set_grams`) rather than recomputed (m^2 dim work per problem and step). The Cauchy point's
segment-by-segment recursion is evaluated with prefix sums over the sorted breakpoints, of which only the first
64 are sorted unless the minimiser lies beyond them. Each problem's arithmetic is its own, so its path does not
depend on the rest of the batch in the numpy part (the objective's TensorFlow kernels may round differently at
different batch sizes).

`minimize_scipy` runs scipy's L-BFGS-B one problem at a time on the same objective, bounds handled natively: the
fidelity reference. Both drivers follow the same algorithm in different floating-point arithmetic (float32
iterates here, float64 in scipy), so single unconverged problems still drift apart: scipy against itself with a
float32-level (1e-7 relative) perturbation of the gradient differs by up to 8-10% per problem at 100 iterations,
and by at most 1% once the problems have converged (docs/BENCHMARKS.md).
"""


import concurrent.futures
import os
import time

import numpy as np
import scipy.optimize
import tensorflow as tf
import threadpoolctl

_ROUNDS_PER_STEP = 2  # line-search evaluations per row and step; a longer search continues in the next step
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
  keep, has_pair, theta = kept_pairs(SY, YY, stored, age)
  sy, pair_mask, pad, lower = _pair_blocks(SY, keep, age)
  th = theta[:, None, None]
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


def kept_pairs(SY, YY, stored, age):
  """(keep `[a, m]`, the pairs the model uses: stored, finite, s.y > 0 and s.y > eps y.y; has_pair `[a]`; theta
  `[a]` float64, y.y / s.y of the newest kept pair, 1 without one), as L-BFGS-B scales B = theta I - W M W^T."""
  sy = np.diagonal(SY, axis1=1, axis2=2).astype(np.float64)
  keep = stored & np.isfinite(sy) & np.isfinite(YY) & (sy > 0) & (sy > CURVATURE_EPS * YY)
  has_pair = keep.any(axis=1)
  newest = np.argmax(np.where(keep, age[None] + 1, 0), axis=1)
  rows = np.arange(len(keep))
  theta = np.where(has_pair, YY[rows, newest] / np.where(has_pair, sy[rows, newest], 1.0), 1.0)
  return keep, has_pair, theta


def _pair_blocks(SY, keep, age):
  """The pieces of the compact form's 2m x 2m matrices, float64: s_i.y_i `[a, m]`, the mask of entries between
  kept pairs, the identity on unused slots (their rows and columns of the matrix) and L (L_ij = s_i.y_j for pair
  i newer than pair j, else 0), each `[a, m, m]`."""
  m = keep.shape[1]
  sy = np.diagonal(SY, axis1=1, axis2=2).astype(np.float64)
  pair_mask = (keep[:, :, None] & keep[:, None, :]).astype(np.float64)
  pad = np.eye(m)[None] * (~keep).astype(np.float64)[:, :, None]
  lower = np.where((age[:, None] > age[None, :])[None], SY.astype(np.float64), 0.0)
  return sy, pair_mask, pad, lower


def middle_matrix(SY, SS, keep, theta, age):
  """M of the compact form B = theta I - W M W^T, W = [Y, theta S] (Byrd, Nocedal and Schnabel 1994, eq. 3.4):
  M = [[-D, L^T], [L, theta S^T S]]^-1, D = diag(s_i.y_i), L_ij = s_i.y_j for pair i newer than pair j, over the
  kept pairs (`[a, 2m, 2m]` float64; the rows and columns of unused slots are those of the identity and multiply
  zeroed columns of W). A row whose matrix is singular keeps no pairs (returned `keep` updated)."""
  a, m = keep.shape
  sy, pair_mask, pad, lower = _pair_blocks(SY, keep, age)
  inverse = np.empty((a, 2 * m, 2 * m))
  inverse[:, :m, :m] = -np.eye(m)[None] * sy[:, None, :] * pair_mask - pad
  inverse[:, :m, m:] = np.swapaxes(lower, 1, 2) * pair_mask
  inverse[:, m:, :m] = lower * pair_mask
  inverse[:, m:, m:] = theta[:, None, None] * SS.astype(np.float64) * pair_mask + pad
  M = np.zeros_like(inverse)
  keep = keep.copy()
  try:
    M = np.linalg.inv(inverse)
  except np.linalg.LinAlgError:
    for i in range(a):
      try:
        M[i] = np.linalg.inv(inverse[i])
      except np.linalg.LinAlgError:
        keep[i] = False
        M[i] = np.eye(2 * m)
  bad = ~np.isfinite(M).all(axis=(1, 2))
  keep[bad], M[bad] = False, np.eye(2 * m)
  return M, keep


def cauchy_point(x, g, lo, hi, S, Y, M, keep, theta, rows, first=64, chunk=16):
  """L-BFGS-B's generalised Cauchy point (Byrd, Lu, Nocedal and Zhu 1995, Section 4 and Algorithm CP) of rows `rows`.

  The first local minimiser of the quadratic model m(x') = g.(x' - x) + (x' - x)^T B (x' - x) / 2 along the
  projected steepest-descent path P(x - t g): the path is piecewise linear, bending where a coordinate reaches a
  bound (its breakpoint t_i). Coordinates whose breakpoint comes before the minimiser are fixed there; the others
  (and interior ones with g_i = 0) are the free set of the subspace step. Coordinates on a bound whose gradient
  points out of the box (or is zero) never move.

  The segment-by-segment recursion of the paper for f' and f'' (eqs. 4.9-4.10, updated through p = W^T d and
  c = W^T (x^cp - x)) is evaluated for all breakpoints at once with prefix sums over the sorted breakpoints; only
  breakpoints below 4 times the first segment's minimiser are sorted, or the `first` smallest if there are more
  (rows whose minimiser lies beyond those are redone with 8 times as many, and so on; on the attack problems the
  median row passes 8 breakpoints, 3% pass more than 64). As in
  L-BFGS-B, f'' is kept at or above eps times its starting value.

  Args:
    x, g: `[n, dim]` float32 iterates and gradients (rows `rows` are used).
    lo, hi: scalar bounds.
    S, Y: `[n, m, dim]` float32 pairs; M: `[r, 2m, 2m]` `middle_matrix` of the rows; keep: bool `[r, m]`; theta
      `[r]` (`kept_pairs`).
    rows: `[r]` row indices.

  Returns:
    (xcp `[r, dim]` float32, the Cauchy point, inside the box exactly; c `[r, 2m]` float64, W^T (xcp - x); free
    bool `[r, dim]`, the free coordinates at xcp).
  """
  r_total, dim = len(rows), x.shape[1]
  m = S.shape[1]
  xcp = np.empty((r_total, dim), np.float32)
  c_out = np.zeros((r_total, 2 * m))
  free_out = np.empty((r_total, dim), bool)
  keep2 = np.concatenate([keep, keep], axis=1).astype(np.float64)

  S_flat, Y_flat = S.reshape(-1), Y.reshape(-1)

  def block(b, k):
    r = rows[b]
    xr, gr = x[r], g[r]
    th = theta[b][:, None]
    binding = ((xr <= lo) & (gr >= 0)) | ((xr >= hi) & (gr <= 0))
    dv = np.negative(gr)
    np.copyto(dv, 0.0, where=binding)
    room = np.where(gr > 0, xr - np.float32(lo), np.float32(hi) - xr)
    np.copyto(room, np.inf, where=binding)
    with np.errstate(divide="ignore", invalid="ignore"):
      tb = room / np.abs(gr)  # float32 breakpoints: inf where the coordinate does not move
    p0 = np.concatenate([np.matmul(Y[r], dv[:, :, None])[..., 0],
                         th * np.matmul(S[r], dv[:, :, None])[..., 0]], 1) * keep2[b]
    Mb = M[b]
    f1 = -_rowdot(dv, dv).astype(np.float64)
    f2 = -theta[b] * f1 - np.einsum("ai,aij,aj->a", p0, Mb, p0)
    f2_floor = np.finfo(np.float64).eps * f2
    # The breakpoints to sort: those below 4x the minimiser of the first segment when there are at most k of them
    # (most rows), else the k smallest. `limit`: every breakpoint left out is above it.
    k = min(k, dim)
    with np.errstate(divide="ignore", invalid="ignore"):
      tau = np.where(f2 > 0, 4.0 * -f1 / f2, 0.0)
    below = tb <= tau[:, None].astype(np.float32)
    few = (below.sum(1) <= k) & (k < dim)  # (with k = dim: all of them)
    order = np.zeros((len(r), k), np.int64)
    tk = np.full((len(r), k), np.inf)
    listed_r, listed_c = np.nonzero(below[few])
    rank = np.arange(len(listed_r)) - np.searchsorted(listed_r, listed_r)
    rows_few = np.flatnonzero(few)[listed_r]
    order[rows_few, rank], tk[rows_few, rank] = listed_c, tb[rows_few, listed_c]
    many = np.flatnonzero(~few)
    if many.size:
      part = np.argpartition(tb[many], k - 1, axis=1)[:, :k] if k < dim else np.arange(dim)[None].repeat(many.size, 0)
      order[many], tk[many] = part, np.take_along_axis(tb[many], part, 1)
    sort = np.argsort(tk, axis=1)
    order, tk = np.take_along_axis(order, sort, 1), np.take_along_axis(tk, sort, 1)
    limit = np.where(few, tau, tk[:, -1])
    valid = np.isfinite(tk)
    t_prev = np.concatenate([np.zeros((len(r), 1)), tk[:, :-1]], 1)
    dt = np.where(valid, tk - np.where(np.isfinite(t_prev), t_prev, 0.0), np.inf)
    dt_use = np.where(valid, dt, 0.0)
    db = np.where(valid, np.take_along_axis(dv, order, 1), 0.0)
    xb = np.take_along_axis(xr, order, 1).astype(np.float64)
    zb = np.where(db > 0, hi - xb, lo - xb) * valid
    flat = ((r[:, None] * m + np.arange(m)) * dim)[:, :, None] + order[:, None, :]  # [a, m, k]
    wb = np.concatenate([np.take(Y_flat, flat), np.take(S_flat, flat) * th[:, :, None].astype(np.float32)], 1)
    wb = np.swapaxes(wb, 1, 2).astype(np.float64) * keep2[b][:, None, :]  # [a, k, 2m]
    contrib = db[..., None] * wb
    p_after = p0[:, None, :] - np.cumsum(contrib, 1)  # p = W^T d once the breakpoint's coordinate stops
    p_before = p_after + contrib
    C = np.cumsum(dt_use[..., None] * p_before, 1)
    V = np.matmul(wb, Mb)  # (M is symmetric)
    wmc, wmp, wmw = (np.einsum("akj,akj->ak", V, u) for u in (C, p_before, wb))
    f2j = np.maximum(f2_floor[:, None], f2[:, None] + np.cumsum(-th * db ** 2 + 2 * db * wmp - db ** 2 * wmw, 1))
    f2_before = np.concatenate([f2[:, None], f2j[:, :-1]], 1)
    f1j = f1[:, None] + np.cumsum(dt_use * f2_before + db ** 2 - th * db * zb + db * wmc, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
      dtm = np.concatenate([(-f1 / f2)[:, None], -f1j / f2j], 1)  # the model's minimiser after j breakpoints
    nbreak = np.isfinite(tb).sum(1)
    dt_next = np.concatenate([dt, np.full((len(r), 1), np.inf)], 1)  # the next segment's length
    stop = (dtm < dt_next) | ~np.isfinite(dt_next)
    J = np.argmax(stop, axis=1)  # breakpoints passed
    a_idx = np.arange(len(r))
    all_passed = J >= nbreak
    step = np.where(all_passed, 0.0, np.maximum(np.nan_to_num(dtm[a_idx, J], nan=0.0), 0.0))
    tsum = np.where(J > 0, tk[a_idx, np.maximum(J - 1, 0)], 0.0) + step
    # Exact unless the minimiser lies past every sorted breakpoint and beyond `limit` (then: again, with more).
    redo.extend(b[(J >= valid.sum(1)) & (nbreak > valid.sum(1)) & ~(tsum <= limit)])
    out = xr + tsum[:, None].astype(np.float32) * dv
    np.clip(out, lo, hi, out=out)
    passed_r, passed_j = np.nonzero(np.arange(k)[None] < J[:, None])
    passed_c = order[passed_r, passed_j]
    out[passed_r, passed_c] = np.where(dv[passed_r, passed_c] > 0, np.float32(hi), np.float32(lo))
    xcp[b] = out
    c = np.where((J > 0)[:, None], C[a_idx, np.maximum(J - 1, 0)], 0.0)
    p_J = np.where((J > 0)[:, None], p_after[a_idx, np.maximum(J - 1, 0)], p0)
    c_out[b] = c + step[:, None] * p_J
    free = ~binding
    free[passed_r, passed_c] = False
    free_out[b] = free
  positions, k = np.arange(r_total), first
  while positions.size:  # rows whose minimiser lies beyond the k smallest breakpoints: again with 8 k of them
    redo = []
    _map_rows(lambda s, positions=positions, k=k: block(positions[s], k), positions.size, chunk)
    positions, k = np.sort(np.asarray(redo, np.int64)), min(8 * k, dim)
  return xcp, c_out, free_out


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


def _update_products(S, Y, SY, YY, SS, grams, free, slot, work=None, chunk=128):
  """Refreshes, in place and for every row, the products of slot `slot` with every slot: s.y and s.s over the whole
  space and the free-set `grams` over the free set `free` (float 0/1) - two passes over the pairs, through `work`
  (`[a, 4, dim]` float32 scratch, reused so that no fresh pages are touched). (A row whose new pair was rejected
  gets products it never uses: its slot is not stored.)"""
  yfyf, sfy, sbsb = grams
  work = np.empty((len(S), 4, S.shape[2]), np.float32) if work is None else work

  def block(r):
    s_new, y_new, w = S[r, slot], Y[r, slot], work[r]
    w[:, 0], w[:, 1] = s_new, s_new
    w[:, 1] *= free[r]
    np.multiply(y_new, free[r], out=w[:, 2])
    by_y = np.matmul(Y[r], np.swapaxes(w[:, :3], 1, 2))  # [rows, m, 3]: y_j.(s_k, s_F,k, y_F,k)
    np.subtract(s_new, w[:, 1], out=w[:, 0])
    w[:, 1] = w[:, 2]
    w[:, 2] = y_new
    w[:, 3] = s_new
    by_s = np.matmul(S[r], np.swapaxes(w, 1, 2))  # s_j.(s_B,k, y_F,k, y_k, s_k)
    SY[r, slot, :], SY[r, :, slot] = by_y[:, :, 0], by_s[:, :, 2]
    SS[r, slot, :] = SS[r, :, slot] = by_s[:, :, 3]
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


def minimize_batched(objective, x0, lo, hi, max_iterations=200, tolerance=1e-5, f_relative_tolerance=2.2e-9,
                     num_correction_pairs=10, max_line_search=20, chunk=1024, compact_below=0.75,
                     verbose=False, callback=None):
  """Minimises n independent objectives over boxes with batched L-BFGS-B (see the module docstring).

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
    max_line_search: trial steps before a line search gives up (the history is then dropped and the iteration
      is retried from the projected gradient step P(x - g); a problem whose search without history fails stops).
    chunk: most rows per objective call (bounds memory).
    compact_below: stopped problems are not evaluated again at once; their rows of the state (history included)
      are dropped once fewer than this fraction of the stored rows still run.
    verbose: show a progress bar of finished problems.
    callback: called as callback(step, objective) after every step (see the module docstring: one iteration for
      most problems), objective `[n]` the current value of every problem (its final value once it has stopped);
      e.g. to trace strength against wall time.

  Returns:
    `Result` with the solutions `x`, their `objective`, per-problem `iterations` and `evaluations` (objective and
    gradient evaluations of that problem), `converged` (stopped on a tolerance, or because not even a search
    along P(x - g) decreases f, rather than on the iteration limit), and `wall_time_s`.
  """
  with _single_threaded_blas():
    return _minimize_batched(objective, x0, lo, hi, max_iterations, tolerance, f_relative_tolerance,
                             num_correction_pairs, max_line_search, chunk, compact_below, verbose, callback)


def _minimize_batched(objective, x0, lo, hi, max_iterations, tolerance, f_relative_tolerance, num_correction_pairs,
                      max_line_search, chunk, compact_below, verbose, callback):
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
  # share; `stored` marks the slots that hold a pair), and the line search in progress (direction d, the
  # Moré-Thuente state `search`, trials so far, whether the direction came without history). `running` marks rows
  # still optimising, `searching` those whose line search carries over into the next step.
  ids = np.arange(n)
  x = out_x.copy()
  f, g = evaluate(x, ids)
  S = np.zeros((n, m, dim), np.float32)
  Y = np.zeros((n, m, dim), np.float32)
  SY, SS, YY = np.zeros((n, m, m), np.float32), np.zeros((n, m, m), np.float32), np.zeros((n, m), np.float32)
  grams = tuple(np.zeros((n, m, m)) for _ in range(3))  # pair products over the free set `free_ref`
  free_ref = np.ones((n, dim), bool)
  work = np.empty((n, 4, dim), np.float32)  # scratch of _update_products
  stored = np.zeros((n, m), bool)
  d = np.zeros((n, dim), np.float32)
  search = np.zeros((n, len(_SEARCH_FIELDS)))
  tries, steep, searching = np.zeros(n, np.int64), np.zeros(n, bool), np.zeros(n, bool)
  moved, small_before = np.zeros(n, bool), np.zeros(n, bool)
  running = np.isfinite(f) & (_projected_gradient_norm(x, g, lo, hi) > tolerance)
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
      out_x[ids[~running]] = x[~running]
      ids, x, f, g, d = ids[running], x[running], f[running], g[running], d[running]
      S, Y, SY, SS, YY, stored = S[running], Y[running], SY[running], SS[running], YY[running], stored[running]
      grams, free_ref = tuple(p[running] for p in grams), free_ref[running]
      search, tries, steep, moved = search[running], tries[running], steep[running], moved[running]
      small_before, searching = small_before[running], searching[running]
      running = running[running]
    # A new direction for every row not in a search: the Cauchy point, then the subspace step from it.
    rows = np.flatnonzero(running & ~searching)
    if rows.size:
      free_now = free_ref.copy()
      direction, has_pair = _directions(x, g, lo, hi, S, Y, SY, SS, YY, grams, stored, free_ref, free_now,
                                        ring_ages(m, slot), rows)
      free_ref = free_now
      slope = _rowdot(g[rows], direction)
      retry = has_pair & ~(slope < 0)  # not a descent direction: drop the history (L-BFGS-B's restart)
      if retry.any():
        stored[rows[retry]] = False
        has_pair &= ~retry
        direction[retry] = np.clip(x[rows[retry]] - g[rows[retry]], lo, hi) - x[rows[retry]]
        slope[retry] = _rowdot(g[rows[retry]], direction[retry])
      d[rows], steep[rows], tries[rows] = direction, ~has_pair, 0
      search[rows] = _start_search(f[rows], slope, d[rows], x[rows], lo, hi, moved[rows])
      iterations[ids[rows]] += 1
      hopeless = ~(slope < 0)  # not even the projected gradient step descends: a (numerical) optimum
      running[rows[hopeless]] = False
      converged[ids[rows[hopeless]]] = True
    # The line search (Moré-Thuente, as L-BFGS-B's dcsrch) along x + stp d. At most `_ROUNDS_PER_STEP` rounds per
    # step: a row still searching carries its search (the same trial steps) into the next step's first, full-size
    # call instead of holding up the batch with calls of a few rows.
    accepted = np.zeros(len(ids), bool)
    exhausted = np.zeros(len(ids), bool)
    stored[:, slot] = False
    pair_ok = np.zeros(len(ids), bool)
    trial = np.flatnonzero(running)
    projected = np.full(len(ids), np.inf)  # projected-gradient max-norm at the accepted points
    for _ in range(_ROUNDS_PER_STEP):
      x_try = np.empty((len(trial), dim), np.float32)
      stp = search[trial, _STP]
      _map_rows(lambda b: np.clip(x[trial[b]] + stp[b, None].astype(np.float32) * d[trial[b]], lo, hi,
                                  out=x_try[b]), len(trial), _ROW_BLOCK)
      f_try, g_try = evaluate(x_try, ids[trial])
      evaluations[ids[trial]] += 1
      tries[trial] += 1
      ended = _continue_search(search, trial, f_try, _rowdot(g_try, d[trial]))
      usable = np.isfinite(f_try) & (f_try <= f[trial]) & np.isfinite(g_try).all(axis=1)
      ok = _accept(trial, ended & usable, x_try, f_try, g_try, x, f, g, S, Y, slot, lo, hi, projected, pair_ok)
      accepted[trial[ok]] = True
      back = trial[~ok]
      out = (tries[back] >= max_line_search) | ended[~ok]  # (a search that ended on a worse point has failed)
      exhausted[back[out]] = True
      trial = back[~out]
      if not trial.size:
        break
    searching[:] = False
    searching[trial] = True
    moved |= accepted
    stored[:, slot] = accepted & pair_ok
    _update_products(S, Y, SY, YY, SS, grams, free_ref.astype(np.float32), slot, work[:len(ids)])
    slot = (slot + 1) % m
    f_start = search[:, _FINIT]
    relative = (f_start - f) / np.maximum(np.maximum(np.abs(f_start), np.abs(f)), 1.0)
    # The relative-decrease test must hold on two iterations in a row: on a float32 objective below 1 it is an
    # absolute test at about one ulp, which a single noisy step passes long before convergence.
    flat = accepted & (relative <= f_relative_tolerance)
    small = (flat & small_before) | (accepted & (projected <= tolerance))
    small_before = np.where(accepted | exhausted, flat, small_before)  # (a search in progress keeps it)
    failed = exhausted & steep  # not even a search without history found a decrease: a (numerical) optimum
    stored[exhausted] = False  # a failed search with history: drop it, start again without (as L-BFGS-B)
    converged[ids[small | failed]] = True
    running &= ~(small | failed)
    if callback is not None:
      current[ids] = f
      callback(step_number, current)
  out_x[ids] = x  # the rest stopped on the iteration limit
  if progress:
    progress.update(n)
  x_out = out_x.reshape((n,) + shape)
  values = _evaluate(objective, tf.constant(x_out), n)
  return Result(x=x_out, objective=values, iterations=iterations, evaluations=evaluations,
                converged=converged, wall_time_s=time.perf_counter() - start)


def _directions(x, g, lo, hi, S, Y, SY, SS, YY, grams, stored, free_ref, free_now, age, rows):
  """L-BFGS-B's search directions d = x_bar - x of rows `rows` (Byrd et al. 1995, Sections 4-5): the Cauchy point
  x^cp (`cauchy_point`), then the Newton step of the model on the free coordinates at x^cp (the subspace
  minimisation, eq. 5.11, `reduced_direction` applied to the model's gradient there, r = g + theta (x^cp - x) -
  W M c), projected into the box; if the projected point is not a descent direction, the step is instead cut
  back to where the first coordinate reaches its bound (L-BFGS-B 3.0, Morales and Nocedal 2011). Without
  history the model is the identity and x_bar = x^cp = P(x - g). Writes the new free sets into `free_now` and
  brings `grams` to them. Returns (d `[r, dim]` float32, has_pair `[r]`)."""
  a = len(x)
  keep, has_pair, theta = kept_pairs(SY[rows], YY[rows], stored[rows], age)
  M, keep = middle_matrix(SY[rows], SS[rows], keep, theta, age)
  has_pair &= keep.any(axis=1)
  xcp, c, free_cp = cauchy_point(x, g, lo, hi, S, Y, M, keep, theta, rows)
  free_now[rows] = free_cp
  update_free_set_grams(grams, S, Y, stored, free_ref, free_now)
  free = np.zeros((a, x.shape[1]), np.float32)
  free[rows] = free_cp
  model_gradient = np.zeros((a, x.shape[1]), np.float32)  # r on the free coordinates, rows `rows`
  m = S.shape[1]

  def block(b):
    r = rows[b]
    mc = np.matmul(M[b], c[b][:, :, None])[..., 0] * np.concatenate([keep[b], keep[b]], 1)
    wmc = (np.matmul(mc[:, None, :m].astype(np.float32), Y[r])[:, 0]
           + np.matmul((theta[b][:, None] * mc[:, m:])[:, None].astype(np.float32), S[r])[:, 0])
    model_gradient[r] = (g[r] + (theta[b][:, None] * (xcp[b] - x[r])).astype(np.float32) - wmc) * free[r]
  _map_rows(block, len(rows), 64)
  step, _ = reduced_direction(model_gradient, S, Y, SY, YY, grams, stored, free, age)
  step = step[rows] * has_pair[:, None]
  x_bar = np.clip(xcp + step, lo, hi)
  d = x_bar - x[rows]
  uphill = has_pair & ~(_rowdot(g[rows], d) <= 0)
  if uphill.any():  # the projection spoiled the step: follow it from x^cp only until a coordinate hits its bound
    u, start = step[uphill].astype(np.float64), xcp[uphill].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
      room = np.where(u < 0, (lo - start) / u, np.where(u > 0, (hi - start) / u, np.inf))
    alpha = np.clip(room.min(axis=1), 0.0, 1.0)
    d[uphill] = (np.clip(start + alpha[:, None] * u, lo, hi) - x[rows[uphill]]).astype(np.float32)
  return d, has_pair


# The line-search state per row (columns of `search`): MINPACK-2's dcsrch variables.
_SEARCH_FIELDS = ("stp", "finit", "ginit", "gtest", "stpmax", "stage", "brackt", "stx", "fx", "gx", "sty", "fy",
                  "gy", "stmin", "stmax", "width", "width1")
(_STP, _FINIT, _GINIT, _GTEST, _STPMAX, _STAGE, _BRACKT, _STX, _FX, _GX, _STY, _FY, _GY, _STMIN, _STMAX, _WIDTH,
 _WIDTH1) = range(len(_SEARCH_FIELDS))
FTOL, GTOL, XTOL = 1e-3, 0.9, 0.1  # L-BFGS-B's line-search constants (sufficient decrease, curvature, interval)
_BIG = 1e10


def _start_search(f, slope, d, x, lo, hi, moved):
  """dcsrch's START for rows with value f, slope g.d < 0 and direction d from x: the first trial step is 1 (the
  whole step to x_bar; all coordinates are bounded), the largest step the one that keeps x + stp d in the box (1 on
  a problem's first iteration, as L-BFGS-B)."""
  stpmax = np.ones(len(f))
  later = np.flatnonzero(moved)

  def block(b):
    db, xb = d[later[b]], x[later[b]]
    with np.errstate(divide="ignore", invalid="ignore"):
      room = np.where(db < 0, np.float32(lo) - xb, np.float32(hi) - xb) / db
    np.copyto(room, np.inf, where=db == 0)
    stpmax[later[b]] = np.clip(room.min(axis=1, initial=_BIG), 1.0, _BIG)  # (>= 1: x_bar is in the box)
  _map_rows(block, later.size, _ROW_BLOCK)
  state = np.zeros((len(f), len(_SEARCH_FIELDS)))
  state[:, _STP], state[:, _FINIT], state[:, _GINIT], state[:, _GTEST] = 1.0, f, slope, FTOL * slope
  state[:, _STPMAX], state[:, _STAGE] = stpmax, 1
  state[:, _FX], state[:, _GX], state[:, _FY], state[:, _GY] = f, slope, f, slope
  state[:, _STMAX] = 1.0 + 4.0 * 1.0
  state[:, _WIDTH], state[:, _WIDTH1] = stpmax, 2.0 * stpmax
  return state


def _continue_search(search, trial, f, g):
  """One dcsrch update for rows `trial` of `search` (in place) after evaluating value f and slope g = g(x + stp
  d).d at their step: returns bool `[len(trial)]`, True where the search has ended (converged, or a warning: the
  point is then taken as it is), with the next trial step in `stp` elsewhere."""
  st = search[trial]
  stp, finit, ginit, gtest = st[:, _STP], st[:, _FINIT], st[:, _GINIT], st[:, _GTEST]
  ftest = finit + stp * gtest
  converged = (f <= ftest) & (np.abs(g) <= GTOL * -ginit)
  done = converged.copy()
  for i in np.flatnonzero(~converged):
    done[i] = _dcsrch(search[trial[i]], float(f[i]), float(g[i]))
  return done


def _dcsrch(s, f, g):
  """MINPACK-2's dcsrch (Moré and Thuente 1994) for one row's state `s` (updated in place), after evaluating f and
  its slope g at step s[_STP]; returns True when the search ends."""
  stp = s[_STP]
  if not np.isfinite(f) or not np.isfinite(g):  # (not in dcsrch: step back towards the best point)
    s[_STP] = s[_STX] + 0.5 * (stp - s[_STX])
    s[_BRACKT], s[_STMAX] = 1.0, stp
    return False
  ftest = s[_FINIT] + stp * s[_GTEST]
  if s[_STAGE] == 1 and f <= ftest and g >= 0:
    s[_STAGE] = 2
  brackt = bool(s[_BRACKT])
  if brackt and (stp <= s[_STMIN] or stp >= s[_STMAX]):
    return True  # rounding errors prevent progress
  if brackt and s[_STMAX] - s[_STMIN] <= XTOL * s[_STMAX]:
    return True
  if stp == s[_STPMAX] and f <= ftest and g <= s[_GTEST]:
    return True
  if stp == 0.0 and (f > ftest or g >= s[_GTEST]):
    return True
  if f <= ftest and abs(g) <= GTOL * -s[_GINIT]:
    return True
  gtest = s[_GTEST]
  if s[_STAGE] == 1 and f <= s[_FX] and f > ftest:  # the modified function while no sufficient decrease yet
    stx, fx, gx, sty, fy, gy, stp, brackt = _dcstep(
        s[_STX], s[_FX] - s[_STX] * gtest, s[_GX] - gtest, s[_STY], s[_FY] - s[_STY] * gtest, s[_GY] - gtest,
        stp, f - stp * gtest, g - gtest, brackt, s[_STMIN], s[_STMAX])
    fx, fy, gx, gy = fx + stx * gtest, fy + sty * gtest, gx + gtest, gy + gtest
  else:
    stx, fx, gx, sty, fy, gy, stp, brackt = _dcstep(s[_STX], s[_FX], s[_GX], s[_STY], s[_FY], s[_GY], stp, f, g,
                                                    brackt, s[_STMIN], s[_STMAX])
  width, width1 = s[_WIDTH], s[_WIDTH1]
  if brackt:
    if abs(sty - stx) >= 0.66 * width1:
      stp = stx + 0.5 * (sty - stx)
    width1, width = width, abs(sty - stx)
    stmin, stmax = min(stx, sty), max(stx, sty)
  else:
    stmin, stmax = stp + 1.1 * (stp - stx), stp + 4.0 * (stp - stx)
  stp = min(max(stp, 0.0), s[_STPMAX])
  if brackt and (stp <= stmin or stp >= stmax or stmax - stmin <= XTOL * stmax):
    stp = stx
  s[_STP], s[_BRACKT], s[_STX], s[_FX], s[_GX], s[_STY], s[_FY], s[_GY] = stp, brackt, stx, fx, gx, sty, fy, gy
  s[_STMIN], s[_STMAX], s[_WIDTH], s[_WIDTH1] = stmin, stmax, width, width1
  return False


def _dcstep(stx, fx, dx, sty, fy, dy, stp, fp, dp, brackt, stpmin, stpmax):
  """MINPACK-2's dcstep: the safeguarded cubic/quadratic step of the Moré-Thuente search and the new interval of
  uncertainty. Returns (stx, fx, dx, sty, fy, dy, stp, brackt)."""
  sgnd = dp * np.sign(dx)

  def gamma_of(theta, a, b):
    s = max(abs(theta), abs(a), abs(b))
    return s * np.sqrt(max(0.0, (theta / s) ** 2 - (a / s) * (b / s))) if s > 0 else 0.0
  if fp > fx:  # higher value: the minimum is bracketed
    theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
    gamma = gamma_of(theta, dx, dp) * (-1.0 if stp < stx else 1.0)
    p, q = (gamma - dx) + theta, ((gamma - dx) + gamma) + dp
    stpc = stx + (p / q) * (stp - stx)
    stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
    stpf = stpc if abs(stpc - stx) < abs(stpq - stx) else stpc + (stpq - stpc) / 2.0
    brackt = True
  elif sgnd < 0:  # slopes of opposite sign: bracketed
    theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
    gamma = gamma_of(theta, dx, dp) * (-1.0 if stp > stx else 1.0)
    p, q = (gamma - dp) + theta, ((gamma - dp) + gamma) + dx
    stpc = stp + (p / q) * (stx - stp)
    stpq = stp + (dp / (dp - dx)) * (stx - stp)
    stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
    brackt = True
  elif abs(dp) < abs(dx):  # same sign, the slope decreases in magnitude
    theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
    gamma = gamma_of(theta, dx, dp) * (-1.0 if stp > stx else 1.0)
    p, q = (gamma - dp) + theta, (gamma + (dx - dp)) + gamma
    r = p / q if q != 0 else 0.0
    if r < 0 and gamma != 0:
      stpc = stp + r * (stx - stp)
    else:
      stpc = stpmax if stp > stx else stpmin
    stpq = stp + (dp / (dp - dx)) * (stx - stp)
    if brackt:
      stpf = stpc if abs(stpc - stp) < abs(stpq - stp) else stpq
      stpf = min(stp + 0.66 * (sty - stp), stpf) if stp > stx else max(stp + 0.66 * (sty - stp), stpf)
    else:
      stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
      stpf = max(stpmin, min(stpmax, stpf))
  else:  # same sign, the slope does not decrease: extrapolate (or the cubic of the bracket)
    if brackt:
      theta = 3.0 * (fp - fy) / (sty - stp) + dy + dp
      gamma = gamma_of(theta, dy, dp) * (-1.0 if stp > sty else 1.0)
      p, q = (gamma - dp) + theta, ((gamma - dp) + gamma) + dy
      stpf = stp + (p / q) * (sty - stp)
    else:
      stpf = stpmax if stp > stx else stpmin
  if fp > fx:
    sty, fy, dy = stp, fp, dp
  else:
    if sgnd < 0:
      sty, fy, dy = stx, fx, dx
    stx, fx, dx = stp, fp, dp
  return stx, fx, dx, sty, fy, dy, stpf, brackt


_ROW_BLOCK = 64  # rows per block of the driver's elementwise work


def _accept(trial, done, x_try, f_try, g_try, x, f, g, S, Y, slot, lo, hi, projected, pair_ok):
  """Takes the step of the rows `trial` whose search has ended (`done`): the pair (s, y) into `slot` (`pair_ok` set
  where it passes L-BFGS-B's curvature test s.y > eps (-g.s)), the new x, f and g, and the projected-gradient
  max-norm into `projected` (all in place). Returns `done`."""

  def block(b):
    r = trial[b]
    passed = done[b]
    rr = r[passed]
    step = x_try[b][passed] - x[rr]
    y = g_try[b][passed] - g[rr]
    S[rr, slot], Y[rr, slot] = step, y
    pair_ok[rr] = _rowdot(step, y).astype(np.float64) > CURVATURE_EPS * -_rowdot(g[rr], step).astype(np.float64)
    x[rr], f[rr], g[rr] = x_try[b][passed], f_try[b][passed], g_try[b][passed]
    projected[rr] = _projected_gradient_norm(x[rr], g[rr], lo, hi)
  _map_rows(block, len(trial), _ROW_BLOCK)
  return done


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
