"""The batched L-BFGS driver's per-step algebra as TensorFlow ops (`--attack_backend=tf`).

`lbfgs.minimize_batched` keeps its loop (the line-search bookkeeping on per-problem scalars) on the host either way;
with this backend the big state - x, g, the search directions, the (s, y) pairs `[a, m, dim]` and their products -
are tensors on the device the objective runs on, and every step's algebra runs there as the functions below. Only
`[a]`-sized scalars (objective values, slopes, accept flags) and the `[a, m]` pair flags cross to the host: on a
GPU the numpy backend would instead copy x and g of the whole batch to the host and back at every step.

Each function is the TensorFlow twin of the numpy function it names in `lbfgs` and follows the same arithmetic:
float32 vectors and pairs, float64 2m x 2m systems and pair products, the same masks and the same order of
updates (where both a row and a column of a product matrix are written, the column wins on the diagonal, as in
numpy). Results agree to float rounding, not bit for bit (matmul summation orders differ); the driver takes the
same steps, so short runs match to float tolerance and converged runs reach the same optima
(tests/test_attacks.py). Unlike the numpy path, a row's rounding may depend on the batch it runs in (TensorFlow
picks kernels by shape), so a sharded sweep equals the single-process one to float tolerance, not exactly.

The driver's constants (the Armijo constant, the curvature test's eps, the sparse-update limit) are arguments
here, passed by `lbfgs` (this module does not import it: `lbfgs` picks its backend from here).

References: Byrd, Lu, Nocedal and Zhu (1995), L-BFGS-B; Byrd, Nocedal and Schnabel (1994), compact forms.
"""

import numpy as np
import tensorflow as tf

F32, F64 = tf.float32, tf.float64
_function = tf.function(reduce_retracing=True, autograph=False)


def _rowdot(a, b):
  return tf.reduce_sum(a * b, axis=-1)


@_function
def free_set(x, g, lo, hi):
  """(free bool, free float 0/1, g on the free coordinates), each `[a, dim]` (`lbfgs._free_set`)."""
  free_now = tf.logical_not(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)))
  free = tf.cast(free_now, x.dtype)
  return free_now, free, g * free


@_function
def projected_gradient_norm(x, g, lo, hi):
  """max_j |x_j - clip(x_j - g_j, lo, hi)| per row, `[a]` (`lbfgs._projected_gradient_norm`)."""
  return tf.reduce_max(tf.abs(x - tf.clip_by_value(x - g, lo, hi)), axis=1)


@_function
def free_set_grams(S, Y, free):
  """(y_F.y_F, s_F.y_F, s_B.s_B), each `[a, m, m]` float64, of `[a, m, dim]` float32 pairs over the 0/1 mask
  `free` `[a, dim]`: float32 products stored as float64, as `lbfgs.free_set_grams` computes them."""
  fr = tf.cast(free, F32)[:, None, :]
  Sf, Yf = S * fr, Y * fr
  Sb = S - Sf
  return (tf.cast(tf.matmul(Yf, Y, transpose_b=True), F64), tf.cast(tf.matmul(Sf, Y, transpose_b=True), F64),
          tf.cast(tf.matmul(Sb, Sb, transpose_b=True), F64))


@_function
def update_free_set_grams(grams, S, Y, stored, free_old, free_new, dense_fraction):
  """`grams` (over `free_old`) brought to the free set `free_new` (`lbfgs.update_free_set_grams`): a row with at
  most `limit` = max(16, `dense_fraction` * dim) changed coordinates gets the float64 products of those coordinates' pair entries added (became
  free) or taken away (became binding); a row with more is recomputed directly; a row without stored pairs is left
  alone. Returns the three updated `[a, m, m]` tensors."""
  dim = tf.shape(S)[2]
  limit = tf.maximum(16, tf.cast(tf.cast(dim, F64) * dense_fraction, tf.int32))
  limit = tf.minimum(limit, dim)
  changed = tf.not_equal(free_old, free_new)
  counts = tf.reduce_sum(tf.cast(changed, tf.int32), axis=1)
  active = tf.reduce_any(stored, axis=1) & (counts > 0)
  # Sparse rows: the changed coordinates first (top_k of the 0/1 mask), the rest of the `limit` columns padding.
  _, columns = tf.math.top_k(tf.cast(changed, tf.int32), k=limit, sorted=True)
  is_change = tf.gather(changed, columns, batch_dims=1)  # [a, limit]
  became_free = tf.gather(free_new, columns, batch_dims=1)
  sign = tf.where(is_change, tf.where(became_free, 1.0, -1.0), 0.0)
  sign = tf.cast(sign, F64)[:, None, :]  # [a, 1, limit]
  ys = tf.cast(tf.gather(Y, columns, axis=2, batch_dims=1), F64)  # [a, m, limit], exact float32 values
  ss = tf.cast(tf.gather(S, columns, axis=2, batch_dims=1), F64)
  ys, ss = ys * tf.abs(sign), ss * tf.abs(sign)  # padding exactly 0
  signed_s = sign * ss
  sparse = (grams[0] + tf.matmul(sign * ys, ys, transpose_b=True), grams[1] + tf.matmul(signed_s, ys, transpose_b=True),
            grams[2] - tf.matmul(signed_s, ss, transpose_b=True))
  dense_rows = tf.where(active & (counts > limit))[:, 0]
  direct = free_set_grams(tf.gather(S, dense_rows), tf.gather(Y, dense_rows), tf.gather(free_new, dense_rows))
  use_sparse = (active & (counts <= limit))[:, None, None]
  out = []
  for old, new_sparse, new_direct in zip(grams, sparse, direct):
    value = tf.where(use_sparse, new_sparse, old)
    out.append(tf.tensor_scatter_nd_update(value, dense_rows[:, None], new_direct))
  return tuple(out)


@_function
def reduced_direction(g, S, Y, SY, YY, grams, stored, free, age, curvature_eps):
  """The L-BFGS-B subspace step -(Z^T B Z)^{-1} g_F on the free coordinates, whether a pair was used, and the slope
  g.d (`lbfgs.reduced_direction`, Byrd et al. 1995 eq. 5.11; shapes as there; a pair is used if s.y >
  `curvature_eps` y.y). A singular system gives u = 0 for its row (the step -g_F / theta), as the numpy path's
  fallback does."""
  m = tf.shape(S)[1]
  yfyf, sfy, sbsb = grams
  sy = tf.cast(tf.linalg.diag_part(SY), F64)
  yy = tf.cast(YY, F64)
  eps_yy = tf.cast(tf.cast(curvature_eps, F32) * YY, F64)
  keep = stored & tf.math.is_finite(sy) & tf.math.is_finite(yy) & (sy > 0) & (sy > eps_yy)
  has_pair = tf.reduce_any(keep, axis=1)
  newest = tf.argmax(tf.where(keep, age[None] + 1, 0), axis=1, output_type=tf.int32)
  sy_newest = tf.gather(sy, newest, batch_dims=1)
  yy_newest = tf.gather(yy, newest, batch_dims=1)
  theta = tf.where(has_pair, yy_newest / tf.where(has_pair, sy_newest, 1.0), 1.0)  # [a] float64
  older = age[:, None] > age[None, :]
  keep64 = tf.cast(keep, F64)
  pair_mask = keep64[:, :, None] * keep64[:, None, :]
  eye = tf.eye(m, dtype=F64)[None]
  pad = eye * (1.0 - keep64)[:, :, None]
  th = theta[:, None, None]
  lower = tf.where(older[None], tf.cast(SY, F64), 0.0)
  k11 = (-eye * sy[:, None, :] - yfyf / th) * pair_mask - pad
  k12 = (tf.linalg.matrix_transpose(lower) - tf.linalg.matrix_transpose(sfy)) * pair_mask
  k22 = th * sbsb * pair_mask + pad
  K = tf.concat([tf.concat([k11, k12], 2), tf.concat([tf.linalg.matrix_transpose(k12), k22], 2)], 1)
  gr = g[:, :, None]
  ug = tf.concat([tf.cast(tf.matmul(Y, gr)[..., 0], F64), theta[:, None] * tf.cast(tf.matmul(S, gr)[..., 0], F64)],
                 axis=1)
  ug = ug * tf.concat([keep64, keep64], axis=1)
  lu, perm = tf.linalg.lu(K)
  u = tf.linalg.lu_solve(lu, perm, ug[:, :, None])[..., 0]  # a zero pivot gives non-finite u: reset below
  u = tf.where(tf.reduce_all(tf.math.is_finite(u), axis=1, keepdims=True), u, 0.0)
  u1 = tf.cast(u[:, None, :m] / th ** 2, F32)
  u2 = tf.cast(u[:, None, m:] / th, F32)
  correction = (tf.matmul(u1, Y)[:, 0] + tf.matmul(u2, S)[:, 0]) * free
  d = -(g / tf.cast(theta, F32)[:, None] + correction)
  return d, has_pair, _rowdot(g, d)


@_function
def steepest(direction, g_free, rows):
  """The unit steepest-descent direction on the rows `rows` (bool `[a]`): (direction, ||g_F|| `[a]`)."""
  norm = tf.sqrt(_rowdot(g_free, g_free))
  unit = -g_free / tf.maximum(norm, 1e-30)[:, None]
  return tf.where(rows[:, None], unit, direction), norm


@_function
def set_rows(d, rows, direction):
  """d with rows `rows` (int indices) taken from direction."""
  return tf.tensor_scatter_nd_update(d, rows[:, None], tf.gather(direction, rows))


@_function
def trial_points(x, d, t, trial, lo, hi):
  """clip(x + t d) of the rows `trial`, computed in float64 and rounded to float32 (as numpy does with t float64)."""
  xt = tf.cast(tf.gather(x, trial), F64) + tf.gather(t, trial)[:, None] * tf.cast(tf.gather(d, trial), F64)
  return tf.cast(tf.clip_by_value(xt, tf.cast(lo, F64), tf.cast(hi, F64)), F32)


@_function
def accept(trial, x_try, f_try, g_try, x, f_rows, f_limit, g, S, Y, slot, lo, hi, armijo):
  """The Armijo test (sufficient-decrease constant `armijo`; a trial value must also be below `f_limit`, f less the
  driver's round-off floor) of the rows `trial` at their trial points and, for those that pass, the step
  (`lbfgs._accept`):
  returns (passed `[len(trial)]`, x, g, S, Y with the pair (s, y) written into `slot`, the projected-gradient
  max-norm of the passed rows)."""
  xr, gr = tf.gather(x, trial), tf.gather(g, trial)
  step = x_try - xr
  decrease = tf.minimum(_rowdot(gr, step), 0.0)
  passed = (tf.math.is_finite(f_try) & (f_try <= f_rows + tf.cast(tf.cast(armijo, F32) * decrease, F64))
            & (f_try < f_limit) & tf.reduce_all(tf.math.is_finite(g_try), axis=1))
  done = tf.boolean_mask(trial, passed)
  x_new, g_new = tf.boolean_mask(x_try, passed), tf.boolean_mask(g_try, passed)
  at_slot = tf.stack([done, tf.fill(tf.shape(done), slot)], axis=1)
  S = tf.tensor_scatter_nd_update(S, at_slot, tf.boolean_mask(step, passed))
  Y = tf.tensor_scatter_nd_update(Y, at_slot, g_new - tf.boolean_mask(gr, passed))
  x = tf.tensor_scatter_nd_update(x, done[:, None], x_new)
  g = tf.tensor_scatter_nd_update(g, done[:, None], g_new)
  return passed, x, g, S, Y, projected_gradient_norm(x_new, g_new, lo, hi)


@_function
def keep_rejected_gradients(trial, passed, x_try, f_try, g_try, x, g, g_rejected, curvature_eps):
  """For the rows of `trial` whose trial point did not pass and whose value and gradient there are finite, g_try
  into `g_rejected` `[a, dim]` where s.y > max(0, eps y.y) (`lbfgs._keep_rejected_gradients`): returns (kept
  `[len(trial)]`, g_rejected)."""
  step, y = x_try - tf.gather(x, trial), g_try - tf.gather(g, trial)
  sy, yy = tf.cast(_rowdot(step, y), F64), tf.cast(_rowdot(y, y), F64)
  kept = (~passed & tf.math.is_finite(f_try) & tf.reduce_all(tf.math.is_finite(g_try), axis=1)
          & tf.math.is_finite(sy) & tf.math.is_finite(yy) & (sy > 0) & (sy > curvature_eps * yy))
  rows = tf.boolean_mask(trial, kept)[:, None]
  return kept, tf.tensor_scatter_nd_update(g_rejected, rows, tf.boolean_mask(g_try, kept))


@_function
def bundle(direction, g_free, free, g_rejected, rows):
  """The unit minimum-norm direction of the segment between g_F and the rejected gradient on the free coordinates
  (`lbfgs.bundle_direction`) on the rows `rows` (bool `[a]`): (direction, slope g_F.d `[a]`)."""
  a, b = g_free, g_rejected * free
  diff = a - b
  dd = tf.cast(_rowdot(diff, diff), F64)
  w = tf.where(dd > 0, tf.clip_by_value(-tf.cast(_rowdot(b, diff), F64) / tf.where(dd > 0, dd, 1.0), 0.0, 1.0), 1.0)
  c = b + tf.cast(w, F32)[:, None] * diff
  unit = -c / tf.maximum(tf.sqrt(_rowdot(c, c)), 1e-30)[:, None]
  return tf.where(rows[:, None], unit, direction), _rowdot(a, unit)


def _set_row_and_column(matrix, slot, row, column):
  """matrix `[a, m, m]` with row `slot` set to `row` `[a, m]`, then column `slot` to `column` (it wins on the
  diagonal, as the numpy path's second assignment does)."""
  on = tf.range(tf.shape(matrix)[1]) == slot
  matrix = tf.where(on[None, :, None], tf.cast(row, matrix.dtype)[:, None, :], matrix)
  return tf.where(on[None, None, :], tf.cast(column, matrix.dtype)[:, :, None], matrix)


@_function
def update_products(S, Y, SY, YY, grams, free, slot):
  """The products of slot `slot` with every slot (`lbfgs._update_products`): s.y over the whole space (row and
  column of SY), y.y (YY), and the free-set grams' row and column over `free`. Returns (SY, YY, grams)."""
  yfyf, sfy, sbsb = grams
  s_new, y_new = S[:, slot], Y[:, slot]
  s_free, y_free = s_new * free, y_new * free
  by_y = tf.matmul(Y, tf.stack([s_new, s_free, y_free], axis=1), transpose_b=True)  # y_j.(s_k, s_F,k, y_F,k)
  by_s = tf.matmul(S, tf.stack([s_new - s_free, y_free, y_new], axis=1), transpose_b=True)  # s_j.(s_B,k, y_F,k, y_k)
  SY = _set_row_and_column(SY, slot, by_y[:, :, 0], by_s[:, :, 2])
  YY = tf.where(tf.range(tf.shape(YY)[1])[None] == slot, _rowdot(y_new, y_new)[:, None], YY)
  yfyf = _set_row_and_column(yfyf, slot, by_y[:, :, 2], by_y[:, :, 2])
  sfy = _set_row_and_column(sfy, slot, by_y[:, :, 1], by_s[:, :, 1])
  sbsb = _set_row_and_column(sbsb, slot, by_s[:, :, 0], by_s[:, :, 0])
  return SY, YY, (yfyf, sfy, sbsb)


def value_and_gradient_function(objective, shape, dim):
  """The compiled (x_flat `[m, dim]` float32, idx int32 `[m]`) -> (values `[m]`, gradients `[m, dim]`) of
  `objective` (which takes x reshaped to `[m, *shape]`); both backends call it."""

  @tf.function(autograph=False, input_signature=[tf.TensorSpec([None, dim], F32), tf.TensorSpec([None], tf.int32)])
  def value_and_gradient(x_flat, idx):
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(x_flat)
      value = objective(tf.reshape(x_flat, tf.concat([[-1], shape], 0)), idx)
    return value, tape.gradient(value, x_flat)
  return value_and_gradient


def _value_and_gradient_fn(objective, shape, dim, chunk):
  """(x `[a, dim]` tensor, idx numpy `[a]`) -> (values float64 numpy `[a]`, gradients `[a, dim]` tensor), in
  chunks of `chunk` rows; the gradients stay on the device."""
  value_and_gradient = value_and_gradient_function(objective, shape, dim)

  def call(x, idx):
    values, grads = [], []
    idx = tf.constant(idx, tf.int32)
    for s in range(0, int(idx.shape[0]), chunk):
      v, g = value_and_gradient(x[s:s + chunk], idx[s:s + chunk])
      values.append(v.numpy().astype(np.float64))
      grads.append(g)
    return np.concatenate(values), (grads[0] if len(grads) == 1 else tf.concat(grads, 0))
  return call


class TensorOps:
  """`lbfgs.NumpyOps`'s interface on TensorFlow tensors: the driver's big arrays are tensors and each method is
  the function above; per-problem scalars go in and come out as numpy. `armijo`, `curvature_eps` and
  `dense_fraction` are the driver's constants (`lbfgs.ARMIJO`, `CURVATURE_EPS`, `DENSE_UPDATE_FRACTION`);
  `decrease_limit` maps f (numpy) to the value a trial must be below (`lbfgs.decrease_limit`)."""

  def __init__(self, lo, hi, armijo, curvature_eps, dense_fraction, decrease_limit):
    self._decrease_limit = decrease_limit
    self._lo, self._hi = tf.constant(lo, F32), tf.constant(hi, F32)
    self._armijo, self._eps = tf.constant(armijo, F64), tf.constant(curvature_eps, F64)
    self._dense_fraction = tf.constant(dense_fraction, F64)

  def scratch(self, n, dim):  # pylint: disable=unused-argument
    return None

  def evaluator(self, objective, shape, dim, chunk):
    return _value_and_gradient_fn(objective, shape, dim, chunk)

  def array(self, value):
    return tf.constant(value)

  def zeros(self, shape, dtype):
    return tf.zeros(shape, dtype)

  def numpy(self, value):
    return value.numpy()

  def take(self, values, keep):
    index = tf.constant(np.flatnonzero(keep), tf.int32)
    return tuple(tf.gather(v, index) for v in values)

  def projected_gradient_norm(self, x, g):
    return projected_gradient_norm(x, g, self._lo, self._hi).numpy()

  def free_set(self, x, g):
    return free_set(x, g, self._lo, self._hi)

  def update_free_set_grams(self, grams, S, Y, stored, free_old, free_new):
    return update_free_set_grams(grams, S, Y, tf.constant(stored), free_old, free_new, self._dense_fraction)

  def direction(self, g_free, S, Y, SY, YY, grams, stored, free, age):
    d, has_pair, slope = reduced_direction(g_free, S, Y, SY, YY, grams, tf.constant(stored), free,
                                           tf.constant(age, tf.int32), self._eps)
    return d, has_pair.numpy(), slope.numpy()

  def steepest(self, direction, g_free, rows):
    direction, norm = steepest(direction, g_free, tf.constant(rows))
    return direction, norm.numpy()[rows]

  def set_rows(self, d, rows, direction):
    return set_rows(d, tf.constant(rows, tf.int32), direction)

  def trial_points(self, x, d, t, trial):
    return trial_points(x, d, tf.constant(t, F64), tf.constant(trial, tf.int32), self._lo, self._hi)

  def accept(self, trial, x_try, f_try, g_try, x, f, g, S, Y, slot, projected):
    passed, x, g, S, Y, norms = accept(tf.constant(trial, tf.int32), x_try, tf.constant(f_try, F64), g_try, x,
                                       tf.constant(f[trial], F64), tf.constant(self._decrease_limit(f[trial]), F64),
                                       g, S, Y, tf.constant(slot, tf.int32),
                                       self._lo, self._hi, self._armijo)
    passed = passed.numpy()
    done = trial[passed]
    f[done], projected[done] = f_try[passed], norms.numpy()
    return passed, x, g, S, Y

  def keep_rejected_gradients(self, trial, passed, x_try, f_try, g_try, x, g, g_rejected):
    kept, g_rejected = keep_rejected_gradients(tf.constant(trial, tf.int32), tf.constant(passed), x_try,
                                               tf.constant(f_try, F64), g_try, x, g, g_rejected, self._eps)
    return kept.numpy(), g_rejected

  def bundle(self, direction, g_free, free, g_rejected, rows):
    direction, slope = bundle(direction, g_free, free, g_rejected, tf.constant(rows))
    return direction, slope.numpy()[rows]

  def update_products(self, S, Y, SY, YY, grams, free, slot, work):
    return update_products(S, Y, SY, YY, grams, free, tf.constant(slot, tf.int32))
