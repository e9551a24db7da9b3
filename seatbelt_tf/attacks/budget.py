"""Fixed-budget attacks: projected gradient descent inside an L2 ball intersected with the data box.

The paper's lambda sweep (eqs. 12-15) trades distortion against effect, so two models are never compared at the
same distortion. A fixed-budget attack (Madry et al. 2018's PGD, in L2) instead asks, for a radius epsilon, how far
the attacker gets with ||d||_2 <= epsilon:

    min_{x*}  effect(x*)    subject to  ||x* - x||_2 <= epsilon  and  lo <= x* <= hi,

where effect is the latent attack's divergence (eqs. 13-15 without the penalty) or the output attack's -ELBO of
the target (eq. 12 without the penalty): the attack's effect, negated, so that lower is a stronger attack.

**The projection** onto the feasible set C = B(c, epsilon) ∩ [lo, hi]^D (`project_ball_box`) is exact. Minimising
1/2 ||y - v||^2 over C has the Lagrangian 1/2 ||y - v||^2 + mu/2 (||y - c||^2 - epsilon^2) (mu >= 0) over the box,
which separates by coordinate: y_i = clip((v_i + mu c_i) / (1 + mu), lo, hi) = clip(c_i + t (v_i - c_i), lo, hi)
with t = 1 / (1 + mu) in (0, 1]. If t = 1 is feasible (the box projection of v lies in the ball) it is the answer;
otherwise complementary slackness asks for the t with phi(t) = ||y(t) - c||^2 = epsilon^2. phi is continuous and
non-decreasing in t, and piecewise quadratic: coordinate i moves as t w_i (w = v - c) until t reaches its
breakpoint (where it hits lo or hi), then stays at its bound. With the breakpoints sorted, phi(t) = t^2 A_k + C_k on
the k-th segment (A_k the sum of w_i^2 still moving, C_k of the clipped offsets squared), so the root is found by
one sort, two cumulative sums and a square root: O(D log D) per problem, no iteration, and, since the centre c lies
in the box, always well defined. The problem is convex (a strictly convex objective over a convex set with a
Slater point), so this KKT point is the unique Euclidean projection.

**PGD** (`minimize_pgd`): from every start, `steps` normalised-gradient steps x <- P(x - alpha_t g / ||g||_2) with
alpha_t = `step_fraction` * epsilon * (cosine decay to 1% of it), every problem of every start in one batch on
the device the objective runs on; the best feasible point seen is kept per problem. Starts (`budget_starts`): the
input itself, the target projected onto C (the direction a targeted attacker would try first), and random points
of the ball (uniform direction and radius, projected).
"""

import time

import numpy as np
import tensorflow as tf

from seatbelt_tf.attacks import lbfgs

DEFAULT_STEPS = 100
DEFAULT_STEP_FRACTION = 0.5


def box_diagonal(data_range, image_shape):
  """The L2 length of the data box's diagonal, (hi - lo) sqrt(H W C): the scale of the default radii."""
  lo, hi = (float(v) for v in data_range)
  return (hi - lo) * float(np.sqrt(np.prod(image_shape)))


def epsilon_grid(data_range, image_shape, num=10):
  """`num` L2 radii, geometric from 1/256 to 1/4 of the box's diagonal (hi - lo) sqrt(D).

  For 64 x 64 images in [0, 1] that is 0.25 to 16: from a few pixels' worth of change to most of the distance
  between two dSprites images (a typical input/target pair is 10-20 apart)."""
  return box_diagonal(data_range, image_shape) * np.geomspace(1.0 / 256.0, 1.0 / 4.0, int(num))


def project_ball_box(v, centre, epsilon, lo, hi):
  """The Euclidean projection of `v` onto {y : ||y - centre||_2 <= epsilon, lo <= y <= hi} (module docstring).

  Args:
    v: `[n, ...]` points.
    centre: `[n, ...]` ball centres, inside the box.
    epsilon: `[n]` radii >= 0.
    lo, hi: the box (floats).

  Returns:
    `[n, ...]` float32, like `v`: inside the box exactly, and ||y - centre|| <= epsilon up to float32 rounding.
  """
  shape = tf.shape(v)
  n = shape[0]
  w = tf.reshape(tf.cast(v, tf.float64) - tf.cast(centre, tf.float64), [n, -1])
  c = tf.reshape(tf.cast(centre, tf.float64), [n, -1])
  a, b = lo - c, hi - c  # per-coordinate bounds of y - c: a <= 0 <= b
  eps = tf.cast(tf.reshape(epsilon, [-1, 1]), tf.float64)
  cap = tf.where(w > 0, b, tf.where(w < 0, a, tf.zeros_like(w)))  # where a moving coordinate stops
  safe_w = tf.where(tf.equal(w, 0.0), tf.ones_like(w), w)
  breakpoint = tf.where(tf.equal(w, 0.0), tf.fill(tf.shape(w), tf.constant(np.inf, tf.float64)), cap / safe_w)  # t at which it stops
  order = tf.argsort(breakpoint, axis=1)
  s = tf.gather(breakpoint, order, batch_dims=1)  # [n, D] sorted breakpoints
  w2 = tf.gather(tf.square(w), order, batch_dims=1)
  cap2 = tf.gather(tf.square(cap), order, batch_dims=1)
  # Segment k (k = 0..D): t in [s_k, s_{k+1}] (s_0 = 0, s_{D+1} = inf) with the first k sorted coordinates clipped.
  moving = tf.concat([tf.reverse(tf.cumsum(tf.reverse(w2, [1]), axis=1), [1]), tf.zeros_like(w2[:, :1])], 1)
  clipped = tf.concat([tf.zeros_like(cap2[:, :1]), tf.cumsum(cap2, axis=1)], 1)  # C_k
  ends = tf.concat([s, tf.fill([n, 1], tf.constant(np.inf, tf.float64))], 1)  # s_{k+1}
  phi_end = tf.where(moving > 0, tf.square(ends) * moving, tf.zeros_like(moving)) + clipped
  k = tf.argmax(tf.cast(phi_end >= tf.square(eps), tf.int32), axis=1, output_type=tf.int32)  # first such segment
  a_k = tf.gather(moving, k, batch_dims=1)[:, None]
  c_k = tf.gather(clipped, k, batch_dims=1)[:, None]
  t = tf.sqrt(tf.maximum(tf.square(eps) - c_k, 0.0) / tf.where(a_k > 0, a_k, tf.ones_like(a_k)))
  inside = tf.reduce_sum(tf.square(tf.clip_by_value(w, a, b)), axis=1, keepdims=True) <= tf.square(eps)
  t = tf.where(inside, tf.ones_like(t), tf.minimum(t, 1.0))
  offset = tf.clip_by_value(t * w, a, b)
  # Float rounding can leave the norm a hair above epsilon: shrinking towards the centre stays in the box.
  norm = tf.sqrt(tf.reduce_sum(tf.square(offset), axis=1, keepdims=True))
  offset *= tf.minimum(eps / tf.maximum(norm, 1e-300), 1.0)
  y = tf.clip_by_value(c + offset, lo, hi)
  return tf.reshape(tf.cast(y, tf.float32), shape)


def random_ball_points(centre, epsilon, seed, lo, hi):
  """Points drawn uniformly from the L2 ball of radius `epsilon` `[n]` around `centre` `[n, ...]`, projected onto
  the box (stateless draws from `seed`, an int)."""
  n = tf.shape(centre)[0]
  flat = tf.reshape(centre, [n, -1])
  dim = tf.shape(flat)[1]
  direction = tf.random.stateless_normal(tf.shape(flat), seed=[seed, 7])
  direction /= tf.norm(direction, axis=1, keepdims=True)
  radius = tf.random.stateless_uniform([n, 1], seed=[seed, 8]) ** (1.0 / tf.cast(dim, tf.float32))
  point = flat + direction * radius * tf.reshape(tf.cast(epsilon, tf.float32), [-1, 1])
  return project_ball_box(tf.reshape(point, tf.shape(centre)), centre, epsilon, lo, hi)


def minimize_pgd(objective, x0, centre, epsilon, lo, hi, steps=DEFAULT_STEPS, step_fraction=DEFAULT_STEP_FRACTION,
                 chunk=512, verbose=False):
  """Projected (normalised) gradient descent on many independent problems at once (module docstring).

  Args:
    objective: (x `[m, ...]`, idx int32 `[m]`) -> `[m]` values to minimise; idx are rows of `x0`.
    x0: `[n, ...]` feasible starting points (one row per problem and start).
    centre: `[n, ...]` ball centres; epsilon: `[n]` radii.
    lo, hi: the box.
    steps: gradient steps per row.
    step_fraction: the first step's length as a fraction of epsilon (decayed by a cosine to 1% of it).
    chunk: rows per objective call.
    verbose: a progress bar over steps.

  Returns:
    `lbfgs.Result` with x `[n, ...]` (the best point seen), objective `[n]`, iterations `[n]` (steps),
    evaluations `[n]` (gradient evaluations), converged `[n]` (all True: the budget is the stopping rule).
  """
  start = time.time()
  x0 = tf.convert_to_tensor(x0, tf.float32)
  centre = tf.convert_to_tensor(centre, tf.float32)
  epsilon = tf.convert_to_tensor(np.asarray(epsilon, np.float32))
  n = int(x0.shape[0])

  @tf.function(autograph=False, reduce_retracing=True)
  def value_and_step(x, idx, c, eps, alpha):
    with tf.GradientTape(watch_accessed_variables=False) as tape:
      tape.watch(x)
      value = objective(x, idx)
    g = tape.gradient(value, x)
    flat = tf.reshape(g, [tf.shape(g)[0], -1])
    g_norm = tf.sqrt(tf.reduce_sum(tf.square(flat), axis=1) + 1e-30)
    step = tf.reshape(alpha * eps / g_norm, tf.concat([[-1], tf.ones([tf.rank(x) - 1], tf.int32)], 0))
    return value, project_ball_box(x - step * g, c, eps, lo, hi)

  x = x0
  best_x, best_f = x0.numpy(), np.full(n, np.inf)
  bar = None
  if verbose:
    import keras  # pylint: disable=g-import-not-at-top
    bar = keras.utils.Progbar(steps, unit_name="step")
  for t in range(steps + 1):
    alpha = step_fraction * (0.01 + 0.99 * 0.5 * (1.0 + np.cos(np.pi * t / max(steps, 1))))
    values, nxt = [], []
    for s in range(0, n, chunk):
      idx = tf.range(s, min(s + chunk, n), dtype=tf.int32)
      v, y = value_and_step(x[s:s + chunk], idx, centre[s:s + chunk], epsilon[s:s + chunk], tf.constant(alpha, tf.float32))
      values.append(v.numpy().astype(np.float64))
      nxt.append(y)
    values = np.concatenate(values)
    better = np.isfinite(values) & (values < best_f)
    best_x[better] = x.numpy()[better]
    best_f[better] = values[better]
    x = tf.concat(nxt, 0)  # the last step's update is computed but never scored
    if bar is not None and t < steps:
      bar.update(t + 1)
  return lbfgs.Result(x=best_x, objective=best_f, iterations=np.full(n, steps), evaluations=np.full(n, steps + 1),
                      converged=np.ones(n, bool), wall_time_s=time.time() - start)


BUDGET_RECORD_KEYS = ("mode", "layers", "pair", "epsilon", "objective", "target_nll", "distortion_l2",
                      "target_recon_l2", "adversarial_recon_l2", "adversarial_to_target_l2", "iterations")
BUDGET_STARTS = ("input", "target")


def run_budget_attack(fns, inputs, targets, epsilons, mode, layers="all", data_range=(0.0, 1.0),
                      starts=BUDGET_STARTS, random_starts=1, steps=DEFAULT_STEPS, num_samples=8, seed=0,
                      verbose=False, pair_ids=None, effect_factory=None, chunk=512, objective_draws=None):
  """Fixed-budget attacks (module docstring) on every (pair, epsilon) problem of one mode and layer set, one batch.

  Args:
    fns: an `objectives.ModelFns` or a reloaded export (`serving.SavedModelFns`), as for `protocol.run_attack`.
    inputs, targets: `[P, H, W, C]` float32 images in `data_range`.
    epsilons: `[K]` L2 radii > 0.
    mode: "latent" or "output"; layers: for latent attacks, "all", "first" or "top".
    data_range: (lo, hi) box for x*.
    starts: deterministic starts, a subset of ("input", "target"): x itself and x^t projected onto the feasible set.
    random_starts: further starts drawn uniformly from the ball (seeded by `seed`).
    steps: PGD steps per start.
    num_samples: noise draws for -log p(x^t|z~).
    seed: seed of the fixed noise and of the random starts.
    verbose: a progress bar over steps.
    pair_ids: the pairs' indices in a larger sweep (default 0..P-1).
    chunk: rows per objective call (1: every problem and start evaluated on its own, for benchmarks); divided by
      the output objective's draws, so one call's memory stays as with one draw.
    effect_factory: optional (x_t `[n, ...]`, noise: `protocol.objective_noise`'s list of draws) -> effect
      function over the n problems (`protocol.effect_fn`'s contract) replacing the mode's: e.g. an adaptive attack
      through a defence (`defence.defended_output_effect`).
    objective_draws: fixed noise draws the output objective averages over (`protocol.run_attack`; default
      `protocol.OBJECTIVE_DRAWS`).

  Returns:
    (records, arrays) as `protocol.run_attack`'s, records ordered pair by pair and epsilon by epsilon with
    `BUDGET_RECORD_KEYS` (`objective` is the effect at x*, no penalty), `input_to_target_l2`,
    `input_recon_to_target_l2`, `evaluations`, `starts` and `display` (the middle radius of each pair).
  """
  from seatbelt_tf.attacks import protocol  # pylint: disable=g-import-not-at-top
  if not (starts or random_starts) or set(starts) - set(BUDGET_STARTS) or int(random_starts) < 0:
    raise ValueError(f"starts must be a subset of {BUDGET_STARTS} and random_starts >= 0, with at least one start; "
                     f"got {starts!r}, {random_starts}.")
  epsilons = np.asarray(epsilons, np.float32)
  if epsilons.ndim != 1 or not len(epsilons) or not np.all(np.isfinite(epsilons)) or np.any(epsilons <= 0):
    raise ValueError(f"epsilons must be a non-empty list of finite radii > 0; got {epsilons.tolist()}.")
  inputs, targets, (lo, hi) = protocol.check_attack_inputs(fns, inputs, targets, mode, layers, data_range)
  num_pairs, k = len(inputs), len(epsilons)
  pair_ids = np.arange(num_pairs) if pair_ids is None else np.asarray(pair_ids, np.int64)
  pair = np.repeat(np.arange(num_pairs), k)
  rows = np.repeat(pair_ids, k) * k + np.tile(np.arange(k), num_pairs)
  x, x_t = tf.constant(inputs[pair]), tf.constant(targets[pair])
  eps = tf.constant(np.tile(epsilons, num_pairs))
  n = len(pair)
  draws = protocol.mode_draws(mode, protocol.OBJECTIVE_DRAWS if objective_draws is None else objective_draws)
  noise = protocol.objective_noise(fns.layer_sizes, n, seed, draws, rows)
  chunk = max(1, int(chunk) // draws)
  if effect_factory is None:
    effect = protocol.effect_fn(fns, mode, layers, x_t, noise)
  else:
    effect = effect_factory(x_t, noise)
  x0 = [x if s == "input" else project_ball_box(x_t, x, eps, lo, hi) for s in starts]
  x0 += [random_ball_points(x, eps, seed * 1000 + r, lo, hi) for r in range(int(random_starts))]
  total = len(x0)
  result = minimize_pgd(lambda x_adv, idx: effect(x_adv, idx % n), tf.concat(x0, 0), tf.tile(x, [total, 1, 1, 1]),
                        tf.tile(eps, [total]), lo, hi, steps=steps, verbose=verbose, chunk=chunk)
  best = np.argmin(result.objective.reshape(total, n), axis=0) * n + np.arange(n)
  x_adv = result.x[best].astype(np.float32)
  metrics = protocol.attack_metrics(fns, x_adv, x.numpy(), x_t.numpy(), num_samples, seed, rows)
  exact = lbfgs.objective_values(effect, tf.constant(x_adv), n)
  records = []
  for j in range(n):
    records.append({"kind": "eps_ball", "mode": mode, "layers": layers if mode == "latent" else "all",
                    "pair": int(pair_ids[pair[j]]), "epsilon": float(eps[j]), "objective": float(exact[j]),
                    "iterations": int(steps), "evaluations": int(total * (steps + 1)), "starts": total,
                    "display": j % k == k // 2, **({"objective_draws": draws} if mode == "output" else {}),
                    **{name: float(values[j]) for name, values in metrics.items()}})
  arrays = {"inputs": x.numpy(), "targets": x_t.numpy(), "distortions": x_adv - x.numpy(), "adversarial": x_adv}
  return records, arrays
