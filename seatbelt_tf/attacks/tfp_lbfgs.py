"""The attack problems with TensorFlow Probability's L-BFGS (`tfp.optimizer.lbfgs_minimize`), on the device.

`minimize_tfp` (`--attack_optimizer=tfp`) runs every problem of a batch as one batched `lbfgs_minimize` inside one
`tf.function`: the whole optimisation, line searches included, is a TensorFlow while loop on the device the
objective runs on, with no host round trip per step. TFP's L-BFGS has no bounds, so the box lo <= x <= hi is
handled by a documented variant of projection: it minimises, over unconstrained y, with x = clip(y, lo, hi),

    F(y) = f(x) + g(x).(y - x) + (mu / 2) ||y - x||^2,     grad F(y) := g(x) + mu (y - x),

f extended beyond the box by its first-order expansion at the projected point plus a quadratic, g the
gradient of f (held fixed in the extension: the gradient given to the optimiser omits the extension's Hessian
terms, which are of the order of the overshoot). Inside the box F = f. Why not f(clip(y)) alone: its gradient is
zero in every coordinate outside the box, so a coordinate that overshoots a bound never returns, and just outside
a bound the gradient tends to zero, so the gradient test declares convergence at a bound the objective wants to
leave (measured: 0.30 from the optimum of a box-constrained quadratic). With the extension a coordinate the
objective pushes outwards settles |g_i| / mu beyond its bound, which the final clip maps onto the bound exactly,
and one the objective pulls inwards has a non-zero gradient on both sides. L-BFGS's curvature pairs are only
approximately right across a bound; that is why this path is an alternative to `lbfgs.minimize_batched`
(L-BFGS-B's subspace step, exact at the bounds), not its replacement. The answer is clip(y*), inside the box.

mu sets how far an out-pushed coordinate settles beyond its bound (|g_i| / mu) and so the scale of the problem the
line search sees; it is per problem, mu = max(1, ||grad f(x0)||_inf) (`PULL` times that). Measured on a latent
sweep of a trained Seatbelt-VAE (30 problems, 200 iterations; median objective, the batched L-BFGS-B driver at
12.15): a fixed mu of 1 ended at 1,840 (23 of 30 line searches failed within 30 iterations: the outward
coordinates' optimum lay |g| ~ 100 beyond the box while the inner ones needed steps of 1e-3), fixed 30 / 300 /
3,000 at 18.9 / 753 / 12.9, the per-problem scale at 12.21 (and 12.41 at 10x it).

Batching: TFP freezes a batch member once it has converged or failed (its position is no longer updated), and the
loop runs until every member has (`tfp.optimizer.converged_all`) or `max_iterations`.

Known pitfalls of TFP's batched L-BFGS, and what is done about them:

* The relative function tolerance test is |f_old - f_new| <= f_relative_tolerance * |f_new|: meaningless for
  objectives near or below zero (the latent attack's divergence is 0 at the target), so it is switched off
  (`f_relative_tolerance=0`) and convergence is judged on the gradient's max-norm (`tolerance`) only.
* The Hager-Zhang line search runs on the whole batch; a member whose search fails is marked failed and frozen at
  its last accepted point, which is still a valid (if early) end point. `iterations` and `evaluations` are the
  batch's (TFP counts them for the batch, not per member).
* float32 objectives: a converged member can keep a gradient norm just above `tolerance` and run to
  `max_iterations`; the result is still the best point of its path, which the protocol's records score exactly.
"""

import time

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from seatbelt_tf.attacks import lbfgs

PULL = 1.0  # mu = PULL * max(1, ||grad f(x0)||_inf) per problem: the quadratic pull back onto the box


def minimize_tfp(objective, x0, lo, hi, max_iterations=200, tolerance=1e-5, num_correction_pairs=10, verbose=False,
                 callback=None, chunk=None):
  """`lbfgs.minimize_batched`'s contract with TFP's L-BFGS (module docstring).

  Args:
    objective: (x `[m, ...]`, idx int32 `[m]`) -> `[m]`; idx are rows of `x0`.
    x0: `[n, ...]` starting points inside the box.
    lo, hi: the box.
    max_iterations: L-BFGS iterations of the batch.
    tolerance: gradient max-norm at which a member has converged.
    num_correction_pairs: L-BFGS memory.
    verbose: print one line when done.
    callback: called once at the end, callback(iterations, objective `[n]`) (the optimisation is one graph).
    chunk: most rows per objective call inside the graph (bounds memory, as `lbfgs.minimize_batched`'s); None:
      all n at once.

  Returns:
    `lbfgs.Result`: x `[n, ...]` inside the box, objective `[n]` at x, iterations and evaluations `[n]` (the
    batch's counts), converged `[n]`, wall_time_s.
  """
  start = time.perf_counter()
  x0 = np.asarray(x0, np.float32)
  n, shape = x0.shape[0], x0.shape[1:]
  dim = int(np.prod(shape))
  idx = tf.range(n, dtype=tf.int32)
  chunk = n if chunk is None else max(1, min(int(chunk), n))

  def gradient(x):
    values, grads = [], []
    for s in range(0, n, chunk):  # n is static: the graph holds one objective call per chunk
      rows = x[s:s + chunk]
      with tf.GradientTape(watch_accessed_variables=False) as tape:
        tape.watch(rows)
        value = objective(tf.reshape(rows, [-1, *shape]), idx[s:s + chunk])
      values.append(value)
      grads.append(tape.gradient(value, rows))
    return tf.concat(values, 0), tf.concat(grads, 0)

  @tf.function(autograph=False)
  def run(y0):
    _, g0 = gradient(y0)
    pull = PULL * tf.maximum(tf.reduce_max(tf.abs(g0), axis=1, keepdims=True), 1.0)  # mu per problem: [n, 1]

    def value_and_gradients(y):
      x = tf.clip_by_value(y, lo, hi)
      value, g = gradient(x)
      outside = y - x
      extended = value + tf.reduce_sum(g * outside + 0.5 * pull * tf.square(outside), axis=1)
      return extended, g + pull * outside

    return tfp.optimizer.lbfgs_minimize(
        value_and_gradients, initial_position=y0, num_correction_pairs=int(num_correction_pairs),
        tolerance=float(tolerance), x_tolerance=0.0, f_relative_tolerance=0.0, max_iterations=int(max_iterations),
        stopping_condition=tfp.optimizer.converged_all)

  result = run(tf.constant(x0.reshape(n, dim)))
  x = np.clip(result.position.numpy(), lo, hi).reshape(x0.shape).astype(np.float32)
  values = lbfgs.objective_values(objective, tf.constant(x), n)
  iterations = int(result.num_iterations.numpy())
  evaluations = int(result.num_objective_evaluations.numpy())
  if callback is not None:
    callback(iterations, values)
  if verbose:
    print(f"  tfp L-BFGS: {iterations} iterations, {evaluations} batch evaluations, "
          f"{int(result.converged.numpy().sum())}/{n} converged, {int(result.failed.numpy().sum())} failed")
  return lbfgs.Result(x=x, objective=values, iterations=np.full(n, iterations), evaluations=np.full(n, evaluations),
                      converged=result.converged.numpy(), wall_time_s=time.perf_counter() - start)
