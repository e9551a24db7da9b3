"""Robustness measures beyond the paper's medians: AUDDC of a lambda sweep and an r-robustness margin per input.

**AUDDC** (Gondim-Ribeiro, Tabacof and Valle 2018): the area under the distortion-distance curve of one pair's
lambda sweep. Each attack of the sweep is a point (u, v) with both axes normalised by the pair itself:

    u = ||d||_2 / ||x - x^t||_2                    (distortion, as a fraction of the input-target distance)
    v = ||recon(x*) - x^t||_2 / ||recon(x) - x^t||_2   (distance of the adversarial reconstruction to the target,
                                                        as a fraction of the undistorted one's)

The curve starts at (0, 1) (no distortion, no effect), runs through the points sorted by u with v replaced by its
running minimum (an attacker with budget u can use any attack of smaller distortion, so the curve never rises), is
linear between points, holds its last value up to u = 1 and is cut at u = 1. AUDDC is its area on [0, 1]: 1 for a
model no attack moves, near 0 for one that a tiny distortion sends onto the target; lower is less robust. Both
attack modes are scored by the output-space distance, so latent and output attacks share one scale.

**r-robustness margin** (Camuto et al. 2021; Barrett et al. 2022): for an input x, the smallest L2 radius epsilon
at which a max-damage attack, max ||g(x + d) - g(x)||_2 over ||d||_2 <= epsilon and x + d in the data range, moves
the reconstruction g (the mean of p(x|z) with z at the posterior means: deterministic, so this is the r-robustness
of the mean reconstruction, not the probabilistic version of Camuto et al.) by more than r. Estimated by bisection
on epsilon, every input's attack at its current radius in one PGD batch (`attacks.budget`); an input the attack
cannot move by r within `epsilon_max` is reported as censored at epsilon_max. A PGD attack is a lower bound on the
true max damage, so the margin is an upper bound on the true one.
"""

import numpy as np
import tensorflow as tf

from seatbelt_tf.attacks import budget


def auddc(distortion, distance, input_distance, undistorted_distance):
  """The area under one pair's normalised distortion-distance curve (module docstring).

  Args:
    distortion: `[K]` ||d||_2 of the sweep's attacks.
    distance: `[K]` ||recon(x*) - x^t||_2 of the same attacks.
    input_distance: ||x - x^t||_2 of the pair (> 0).
    undistorted_distance: ||recon(x) - x^t||_2 of the pair (> 0).

  Returns:
    float in [0, max(1, v)]: 1 when no attack brings the reconstruction closer to the target.
  """
  u = np.asarray(distortion, np.float64) / float(input_distance)
  v = np.asarray(distance, np.float64) / float(undistorted_distance)
  if u.shape != v.shape or u.ndim != 1 or not (np.isfinite(u).all() and np.isfinite(v).all()):
    raise ValueError(f"distortion and distance must be finite vectors of one length; got {u.shape} and {v.shape}.")
  order = np.argsort(u, kind="stable")
  u = np.concatenate([[0.0], u[order]])
  v = np.minimum.accumulate(np.concatenate([[1.0], v[order]]))
  inside = u < 1.0
  us, vs = list(u[inside]), list(v[inside])
  if (~inside).any():  # cut at u = 1, interpolating to the first point beyond it
    j = int(np.argmax(~inside))
    frac = (1.0 - u[j - 1]) / (u[j] - u[j - 1])
    us.append(1.0)
    vs.append(v[j - 1] + frac * (v[j] - v[j - 1]))
  else:
    us.append(1.0)
    vs.append(vs[-1])
  return float(np.trapezoid(vs, us))


def auddc_per_pair(records):
  """{(mode, layers, pair): AUDDC} of a lambda sweep's records (`protocol.run_attack`); records written before
  the pair's scales were recorded (no `input_to_target_l2`) give an empty dict."""
  groups = {}
  for r in records:
    if "input_to_target_l2" not in r or "lambda" not in r:
      return {}
    groups.setdefault((r["mode"], r["layers"], r["pair"]), []).append(r)
  out = {}
  for key, rs in groups.items():
    scale, base = rs[0]["input_to_target_l2"], rs[0]["input_recon_to_target_l2"]
    if scale > 0 and base > 0:
      out[key] = auddc([r["distortion_l2"] for r in rs], [r["adversarial_to_target_l2"] for r in rs], scale, base)
  return out


def robustness_margins(recon_fn, inputs, r, epsilon_max, data_range=(0.0, 1.0), bisection_steps=8,
                       steps=budget.DEFAULT_STEPS, random_starts=1, seed=0, verbose=False, chunk=512):
  """r-robustness margins of `inputs` `[P, H, W, C]` (module docstring): one PGD batch per bisection step.

  Args:
    recon_fn: x -> mean reconstruction `[B, H, W, C]` (a live model's or an export's `recon_fn`).
    inputs: `[P, H, W, C]` images in `data_range`.
    r: the damage threshold on ||g(x + d) - g(x)||_2 (> 0).
    epsilon_max: the largest radius tried (> 0); inputs not moved by r within it are censored there.
    data_range: the box.
    bisection_steps: halvings of each input's bracket after the first test at epsilon_max.
    steps, random_starts: PGD steps per start, and random starts besides x itself.
    seed: seed of the random starts.
    verbose: one line per bisection step.
    chunk: rows per reconstruction call (1: one input and start at a time, for benchmarks).

  Returns:
    dict of `[P]` arrays: `margin` (the upper end of each final bracket: damage > r was reached there; epsilon_max
    when censored), `lower` (its lower end: no damage > r was found there), `censored` (bool), `damage_at_max`
    (the damage found at epsilon_max).
  """
  if not r > 0 or not epsilon_max > 0:
    raise ValueError(f"r and epsilon_max must be > 0; got r={r}, epsilon_max={epsilon_max}.")
  lo, hi = (float(v) for v in data_range)
  x = tf.constant(np.asarray(inputs, np.float32))
  p = int(x.shape[0])
  clean = tf.constant(recon_fn(x))

  def damage_objective(x_adv, idx):  # the negative damage, smoothed at 0 like the attacks' norm
    diff = tf.reshape(recon_fn(x_adv) - tf.gather(clean, idx % p), [tf.shape(x_adv)[0], -1])
    return -tf.sqrt(tf.reduce_sum(tf.square(diff), axis=1) + 1e-12)

  def max_damage(eps):
    starts = [random_ball_start(x, eps, 1e-3, seed + 99, lo, hi)]  # x itself, nudged off the kink at d = 0
    starts += [budget.random_ball_points(x, tf.constant(eps, tf.float32), seed * 1000 + k, lo, hi)
               for k in range(int(random_starts))]
    total = len(starts)
    result = budget.minimize_pgd(damage_objective, tf.concat(starts, 0), tf.tile(x, [total, 1, 1, 1]),
                                 np.tile(eps, total), lo, hi, steps=steps, chunk=chunk)
    return -result.objective.reshape(total, p).min(axis=0)

  lower, upper = np.zeros(p), np.full(p, float(epsilon_max))
  damage_at_max = max_damage(upper.astype(np.float32))
  censored = damage_at_max <= r
  for step in range(int(bisection_steps)):
    mid = 0.5 * (lower + upper)
    moved = max_damage(mid.astype(np.float32)) > r
    upper = np.where(moved & ~censored, mid, upper)
    lower = np.where(~moved & ~censored, mid, lower)
    if verbose:
      print(f"  bisection {step + 1}/{bisection_steps}: median bracket [{np.median(lower):.3g}, "
            f"{np.median(upper):.3g}]")
  return {"margin": upper, "lower": np.where(censored, epsilon_max, lower), "censored": censored,
          "damage_at_max": damage_at_max}


def margin_summary(records):
  """Median and quartiles of the margins (censored inputs counted at epsilon_max, an underestimate of theirs), the
  number censored, r and epsilon_max, from `margin_results.json` records."""
  margins = np.array([r["margin"] for r in records], np.float64)
  q1, median, q3 = np.percentile(margins, [25, 50, 75]) if len(margins) else (np.nan,) * 3
  return {"median_margin": float(median), "q1_margin": float(q1), "q3_margin": float(q3),
          "censored": int(sum(r["censored"] for r in records)), "inputs": len(records),
          "r": float(records[0]["r"]) if records else None,
          "epsilon_max": float(records[0]["epsilon_max"]) if records else None}


def random_ball_start(centre, epsilon, fraction, seed, lo, hi):
  """A point drawn uniformly from the ball of radius `fraction` * `epsilon` `[n]` around `centre`, in the box."""
  return budget.random_ball_points(centre, tf.constant(np.asarray(epsilon, np.float32) * fraction), seed, lo, hi)
