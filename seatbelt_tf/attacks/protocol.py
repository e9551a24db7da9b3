"""The paper's attack protocol: input/target pairs x lambda values, one batch of problems per mode and layer set.

For each of `num_pairs` seeded (input, target) pairs and each lambda of a geometric grid (50 values from 2^-20 to
2^20 by default, Gondim-Ribeiro et al. 2018), the attack minimises Delta (objectives.py) over x* in the data range.
All pairs x lambdas of one mode are one batch for `minimize_batched` (or, for fidelity checks, problems solved one
by one with scipy). Every problem is started from the input x and, unless `starts=("input",)`, also from the target
x^t (a strong attacker tries both: at small lambda the target itself is nearly optimal, which a descent from x
alone can miss); the better end point is kept. Then, for up to `neighbour_rounds` rounds, every problem's end point
is scored at the lambdas of its two neighbours on the grid (same pair); a problem whose neighbour's end point beats
its own by more than 0.1% is run again from that point, and keeps the new end point if it is better (a warm start
along the lambda path, as continuation methods do). The objective is non-convex: from the same two starts a local
optimiser ends some mid-lambda problems in basins 10-80% worse than the ones it finds for the neighbouring lambdas
(docs/BENCHMARKS.md); a round costs two objective evaluations per problem plus the restarted problems' runs.

The output attack's objective (eq. 12) is a Monte Carlo estimate made deterministic for L-BFGS: -ELBO(x^t; q(z|x*))
averaged over `objective_draws` fixed noise draws per problem (`objective_noise`; default 4,
`config.AttackConfig.attack_objective_draws`). With one draw the optimiser fits that draw: on the campaign's vanilla
VAE, x* placed the one draw's z on the target's code while q(z|x*) did not, the objective ended below the target's own
-ELBO and -log p(x^t|z~) on other draws was ~25x the target's (docs/REPRODUCTION.md, "A flaw in the output attack's
score"); 4 draws removed it there, 16 changed little more at 3x the cost (benchmarks/output_attack_draws.py). The
score's draws (seed + 1) stay disjoint from the objective's (seed). The latent attacks (eqs. 13-15) are closed-form
KLs and use no noise.

Metrics per problem (`ATTACK_RECORD_KEYS`): the final objective, -log p(x^t|z~) with z~ ~ q(z|x*) averaged over
`num_samples` fixed noise draws, the target's own -log p(x^t|z~) with z~ ~ q(z|x^t) on the same draws (the floor
of the first: a model that reconstructs its targets badly scores high however easily it is attacked),
||d||_2, ||x^t - recon(x^t)||_2, ||x* - recon(x*)||_2, ||recon(x*) - x^t||_2, and
the L-BFGS iterations used; `display` marks, per pair, the lambda whose objective is just better than the mean
objective over all lambdas (Gondim-Ribeiro et al. 2018), the one the paper's figures show.
"""

import functools

import numpy as np
import tensorflow as tf

from seatbelt_tf import config
from seatbelt_tf.attacks import lbfgs
from seatbelt_tf.attacks import objectives
from seatbelt_tf.attacks import tfp_lbfgs

ATTACK_RECORD_KEYS = ("mode", "layers", "pair", "lambda", "objective", "target_nll", "target_own_nll",
                      "distortion_l2", "target_recon_l2", "adversarial_recon_l2", "adversarial_to_target_l2",
                      "iterations")
STARTS = config.ATTACK_STARTS
OBJECTIVE_DRAWS = config.AttackConfig.attack_objective_draws
# --attack_optimizer: the batched L-BFGS-B-style driver, scipy's L-BFGS-B one problem at a time (the reference), and
# TFP's L-BFGS on the device with a projection variant for the bounds (attacks/tfp_lbfgs.py).
OPTIMIZERS = {"lbfgs": lbfgs.minimize_batched, "scipy": lbfgs.minimize_scipy, "tfp": tfp_lbfgs.minimize_tfp}
NEIGHBOUR_ROUNDS = config.AttackConfig.attack_neighbour_rounds
NEIGHBOUR_GAIN = 1e-3  # a neighbour's end point must beat a problem's own by this fraction (plus 1e-6) to restart it


def lambda_grid(num=50, low_exponent=-20.0, high_exponent=20.0):
  """`num` lambdas, geometric from 2^low to 2^high (the paper's 50 values from 2^-20 to 2^20)."""
  return 2.0 ** np.linspace(low_exponent, high_exponent, num)


def choose_pairs(candidates, num_pairs, seed):
  """`num_pairs` (input, target) pairs of distinct indices drawn from `candidates` with `seed`: int64 `[P, 2]`."""
  candidates = np.asarray(candidates)
  if len(candidates) < 2 * num_pairs:
    raise ValueError(f"{num_pairs} attack pairs need {2 * num_pairs} distinct examples; {len(candidates)} given.")
  chosen = np.random.default_rng(seed).choice(candidates, 2 * num_pairs, replace=False)
  return chosen.reshape(num_pairs, 2)


def choose_factor_pairs(source, vary, fixed, num_pairs, seed):
  """Single-factor pairs (paper Appendix H.1): `[P, 2]` indices of images that differ only in factor `vary`.

  Inputs are drawn uniformly from the factor grid with the `fixed` factors ({name: class}, e.g. {"shape": 2}: a
  dSprites heart) held; each target is its input with `vary` redrawn to another class. The source must be the full
  factor grid in mixed-radix order (dSprites, 3D Shapes); the drawn indices are checked against
  `source.factors`. Pairs come from the whole grid, not only the held-out split (few held-out images share all
  other factors).
  """
  names, sizes = tuple(source.factor_names), np.asarray(source.factor_sizes, np.int64)
  if not names:
    raise ValueError(f"A single-factor attack needs ground-truth factors; {source.name} has none. "
                     "Use a dSprites or 3D Shapes dataset, or leave --attack_vary empty.")
  unknown = sorted((set(fixed) | {vary}) - set(names))
  if unknown:
    raise ValueError(f"Unknown factor(s) {', '.join(unknown)} for {source.name}: choose from {', '.join(names)}.")
  if vary in fixed or sizes[names.index(vary)] < 2:
    raise ValueError(f"--attack_vary={vary} must be a factor with at least 2 classes that --attack_fix leaves free.")
  for name, value in fixed.items():
    if not 0 <= value < sizes[names.index(name)]:
      raise ValueError(f"--attack_fix {name}={value} is out of range: {name} has {sizes[names.index(name)]} classes.")
  if int(np.prod(sizes)) != source.num_examples:
    raise ValueError(f"{source.name} is not a full factor grid ({source.num_examples} images, factor sizes "
                     f"{tuple(sizes)}): single-factor pairs cannot be indexed.")
  rng = np.random.default_rng(seed)
  factors = rng.integers(0, sizes, size=(num_pairs, len(sizes)))
  for name, value in fixed.items():
    factors[:, names.index(name)] = value
  k = names.index(vary)
  targets = factors.copy()
  targets[:, k] = (factors[:, k] + rng.integers(1, sizes[k], size=num_pairs)) % sizes[k]  # another class
  strides = np.array([int(np.prod(sizes[i + 1:])) for i in range(len(sizes))], np.int64)
  pairs = np.stack([factors @ strides, targets @ strides], axis=1)
  drawn = np.concatenate([factors, targets], axis=1).reshape(-1, len(sizes))  # ordered like pairs.ravel()
  if not np.array_equal(np.asarray(source.factors(pairs.ravel())), drawn):
    raise ValueError(f"{source.name} is not indexed in mixed-radix factor order: single-factor pairs cannot be drawn.")
  return pairs


def _l2(a, b):
  return np.sqrt(((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2).reshape(len(a), -1).sum(axis=1))


def fixed_noise(layer_sizes, n, seed, sample, rows=None):
  """Fixed standard-normal noise `[n, d_i]` per layer; with `rows`, those rows of the draw for max(rows) + 1
  problems (a shard of a sweep gets exactly the noise its problems get in the whole sweep)."""
  if rows is None:
    return [tf.random.stateless_normal([n, d], seed=[seed, 1000 * sample + i]) for i, d in enumerate(layer_sizes)]
  total = int(np.max(rows)) + 1
  return [tf.gather(e, rows) for e in fixed_noise(layer_sizes, total, seed, sample)]


def check_attack_inputs(fns, inputs, targets, mode, layers, data_range):
  """Validates one attack's inputs; returns (inputs, targets) as float32 arrays and the box (lo, hi).

  Raises:
    ValueError: naming the problem (unknown mode or layer set, shapes, non-finite values, values outside the box).
  """
  if mode not in objectives.MODES:
    raise ValueError(f"Unknown attack mode {mode!r}: choose one of {', '.join(objectives.MODES)}.")
  objectives.select_layers(len(fns.layer_sizes), layers)
  lo, hi = (float(v) for v in data_range)
  inputs = np.asarray(inputs, np.float32)
  targets = np.asarray(targets, np.float32)
  if inputs.shape != targets.shape or not np.isfinite(inputs).all() or not np.isfinite(targets).all():
    raise ValueError(f"inputs {inputs.shape} and targets {targets.shape} must be finite arrays of one shape (no NaN "
                     "or Inf).")
  expected = tuple(getattr(fns, "image_shape", inputs.shape[1:]))
  if inputs.ndim != 4 or inputs.shape[1:] != expected:
    raise ValueError(f"inputs and targets must be batches of the model's images [P, {', '.join(map(str, expected))}]"
                     f"; got shape {inputs.shape}.")
  if inputs.min() < lo or inputs.max() > hi or targets.min() < lo or targets.max() > hi:
    raise ValueError(f"inputs and targets must lie in the data range [{lo}, {hi}].")
  return inputs, targets, (lo, hi)


def check_objective_draws(draws):
  """`draws` as an int; a ValueError naming the fix where it is below 1."""
  if int(draws) < 1:
    raise ValueError(f"objective_draws must be >= 1 (fixed noise draws the output objective averages over); got "
                     f"{draws}.")
  return int(draws)


def mode_draws(mode, objective_draws):
  """The noise draws an attack of `mode` evaluates its objective on: `objective_draws` (checked) for the output
  attack, 1 for the latent attacks, which use none."""
  draws = check_objective_draws(objective_draws)
  return draws if mode == "output" else 1


def objective_noise(layer_sizes, n, seed, draws, rows=None):
  """The output objective's fixed draws: a list of `draws` draws, each a `fixed_noise` list of `[n, d_i]` tensors
  (draw k is `fixed_noise(..., seed, k, rows)`: the first is the single draw of earlier sweeps)."""
  return [fixed_noise(layer_sizes, n, seed, k, rows) for k in range(check_objective_draws(draws))]


def over_draws(fn, x_adv, idx, noise):
  """Mean over the fixed draws `noise` (`objective_noise`) of fn(x_adv, idx, eps) -> `[m]`, with eps the draw's
  rows `idx` (one `[m, d_i]` tensor per layer): one call of fn on the K draws stacked, `[K*m]` rows (x_adv and idx
  tiled K times), so a device sees one batch. Returns `[m]`."""
  draws = len(noise)
  eps = [tf.concat([tf.gather(draw[i], idx) for draw in noise], 0) for i in range(len(noise[0]))]
  tiled = fn(tf.tile(x_adv, [draws] + [1] * (len(x_adv.shape) - 1)), tf.tile(idx, [draws]), eps)
  return tf.reduce_mean(tf.reshape(tiled, [draws, -1]), axis=0)


def effect_fn(fns, mode, layers, x_t, noise):
  """The attack's effect without its penalty, (x_adv `[m, ...]`, idx `[m]`) -> `[m]`, to minimise: the latent
  divergence of the attacked layers to the target's posterior (eqs. 13-15) or the target's -ELBO under q(z|x*)
  (eq. 12) averaged over the fixed draws `noise` (`objective_noise`: a list of draws, each one `[n, d_i]` tensor per
  layer; unused by the latent attacks). `x_t` `[n, ...]` holds each problem's target; idx picks problems' rows."""
  if mode == "latent":
    target_params = [(tf.constant(l), tf.constant(s)) for l, s in _batched(fns.encode_fn, x_t)]

    def effect(x_adv, idx):
      params = [(tf.gather(l, idx), tf.gather(s, idx)) for l, s in target_params]
      return objectives.latent_divergence(fns.encode_fn(x_adv), params, layers)
  else:
    def effect(x_adv, idx):
      return over_draws(lambda x, i, eps: -fns.elbo_fn(x, tf.gather(x_t, i), eps), x_adv, idx, noise)
  return effect


def run_attack(fns, inputs, targets, lambdas, mode, layers="all", data_range=(0.0, 1.0), optimizer="lbfgs",
               starts=STARTS, max_iterations=200, num_samples=8, seed=0, verbose=False, pair_ids=None,
               callback=None, neighbour_rounds=NEIGHBOUR_ROUNDS, backend="auto", objective_draws=OBJECTIVE_DRAWS):
  """Attacks every (pair, lambda) problem of one mode and layer set.

  Args:
    fns: an `objectives.ModelFns` (live model) or any object with `layer_sizes`, `encode_fn`, `terms_fn`,
      `recon_fn`, `elbo_fn` (e.g. a reloaded SavedModel).
    inputs, targets: `[P, H, W, C]` float32 images in `data_range`.
    lambdas: `[K]` penalty weights.
    mode: "latent" or "output".
    layers: for latent attacks, "all", "first" or "top".
    data_range: (lo, hi) box for x*.
    optimizer: a name of `OPTIMIZERS`: "lbfgs" (batched), "scipy" (reference) or "tfp".
    starts: which starting points to try: "input" and/or "target".
    max_iterations: L-BFGS iterations per problem and start.
    num_samples: noise draws for -log p(x^t|z~).
    seed: seed of the fixed noise.
    verbose: a progress bar of finished problems.
    pair_ids: the pairs' indices in the whole sweep when this call attacks a shard of it (default 0..P-1): records
      carry them as `pair`, and each problem gets the noise it gets in the whole sweep.
    callback: passed to the optimizer: callback(step, objective `[S*P*K]`), the objective of every start of every
      problem so far (start-major: row j is start j // (P*K) of problem j % (P*K)); after each neighbour round it
      is called once more with every start's row holding the problem's best objective so far.
    neighbour_rounds: rounds of restarts from the neighbouring lambdas' end points (0: none; see the module
      docstring). A round restarts only the problems a neighbour's end point improves; the rounds stop early when
      none does.
    backend: with optimizer "lbfgs", where its per-step algebra runs (`lbfgs.BACKENDS`: numpy, tf, auto).
    objective_draws: fixed noise draws the output objective averages over (module docstring; the latent attacks
      use none). Each evaluation then runs the model on objective_draws x the rows; the batched optimizers'
      chunk (lbfgs, tfp) shrinks by that factor, so one call's memory stays as with one draw.

  Returns:
    (records, arrays): a list of dicts with `ATTACK_RECORD_KEYS` plus `display`, `evaluations` (every objective
    evaluation spent on the problem: all starts and restarts), `restarts` (neighbour restarts run) and, for the
    output attack, `objective_draws`, ordered pair by
    pair and lambda by lambda; arrays `inputs`, `targets`, `distortions` and `adversarial` (x* itself, inside the
    data range exactly; inputs + distortions equals it up to float32 rounding) `[P*K, H, W, C]`, indexed like the
    records.
  """
  if int(neighbour_rounds) < 0:
    raise ValueError(f"neighbour_rounds must be >= 0 (0 turns the neighbour restarts off); got {neighbour_rounds}.")
  draws = mode_draws(mode, objective_draws)
  if optimizer not in OPTIMIZERS or not starts or set(starts) - set(STARTS):
    raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)} and starts a non-empty subset of "
                     f"{STARTS}; got {optimizer!r}, {starts!r}.")
  minimize = OPTIMIZERS[optimizer]
  chunk = max(1, lbfgs.DEFAULT_CHUNK // draws)
  if optimizer == "lbfgs":
    minimize = functools.partial(minimize, backend=lbfgs.resolve_backend(backend), chunk=chunk)
  elif optimizer == "tfp":
    minimize = functools.partial(minimize, chunk=chunk)
  if optimizer != "lbfgs" and backend != "auto":
    raise ValueError(f"backend={backend!r} applies to optimizer 'lbfgs' only; got optimizer {optimizer!r}.")
  inputs, targets, (lo, hi) = check_attack_inputs(fns, inputs, targets, mode, layers, data_range)
  num_pairs, lambdas = len(inputs), np.asarray(lambdas, np.float32)
  pair_ids = np.arange(num_pairs) if pair_ids is None else np.asarray(pair_ids, np.int64)
  if pair_ids.shape != (num_pairs,):
    raise ValueError(f"pair_ids must give one index per pair ({num_pairs}); got shape {pair_ids.shape}.")
  pair = np.repeat(np.arange(num_pairs), len(lambdas))
  rows = (np.repeat(pair_ids, len(lambdas)) * len(lambdas) + np.tile(np.arange(len(lambdas)), num_pairs))
  x = tf.constant(inputs[pair])
  x_t = tf.constant(targets[pair])
  lam = tf.constant(np.tile(lambdas, num_pairs))
  n = len(pair)
  effect = effect_fn(fns, mode, layers, x_t, objective_noise(fns.layer_sizes, n, seed, draws, rows))

  def objective(x_adv, idx):  # Delta of eqs. 12-15 with the smoothed norm (objectives.latent/output_objective)
    return effect(x_adv, idx) + tf.gather(lam, idx) * objectives.distortion_norm(x_adv - tf.gather(x, idx))

  # Every starting point of every problem is one row of a single batch (row j is problem j % n); each problem keeps
  # its best end point and is charged the work of all its starts.
  x0 = np.concatenate([(x if start == "input" else x_t).numpy() for start in starts])
  result = minimize(lambda x_adv, idx: objective(x_adv, idx % n), x0, lo, hi, max_iterations=max_iterations,
                    verbose=verbose, callback=callback)
  best_start = np.argmin(result.objective.reshape(len(starts), n), axis=0)
  chosen = best_start * n + np.arange(n)
  best = {key: result[key][chosen] for key in ("x", "objective", "iterations")}
  best["evaluations"] = result.evaluations.reshape(len(starts), n).sum(axis=0)
  best["restarts"] = np.zeros(n, np.int64)
  neighbours = _lambda_neighbours(num_pairs, lambdas)
  for _ in range(int(neighbour_rounds)):
    if not _neighbour_round(objective, minimize, best, neighbours, lo, hi, max_iterations):
      break
    if callback is not None:
      callback(-1, np.tile(best["objective"], len(starts)))
  x_adv = best["x"].astype(np.float32)
  metrics = attack_metrics(fns, x_adv, x.numpy(), x_t.numpy(), num_samples, seed, rows)
  # The recorded objective is Delta of eqs. 12-15 exactly: the effect at x* plus lambda ||d||_2 with the exact norm
  # (the optimiser's smoothed norm adds up to lambda * 1e-6: 1.05 at lambda = 2^20 and d = 0).
  exact = (lbfgs.objective_values(effect, tf.constant(x_adv), n)
           + np.asarray(lam.numpy(), np.float64) * metrics["distortion_l2"])
  records = []
  for k in range(n):
    records.append({"mode": mode, "layers": layers if mode == "latent" else "all", "pair": int(pair_ids[pair[k]]),
                    "lambda": float(lam[k]), "objective": float(exact[k]),
                    "objective_smoothed": float(best["objective"][k]),
                    "iterations": int(best["iterations"][k]), "evaluations": int(best["evaluations"][k]),
                    "restarts": int(best["restarts"][k]), **({"objective_draws": draws} if mode == "output" else {}),
                    **({"driver_version": lbfgs.DRIVER_VERSION} if optimizer == "lbfgs" else {}),
                    **{name: float(values[k]) for name, values in metrics.items()}})
  mark_display(records)
  arrays = {"inputs": x.numpy(), "targets": x_t.numpy(), "distortions": x_adv - x.numpy(), "adversarial": x_adv}
  return records, arrays


def _lambda_neighbours(num_pairs, lambdas):
  """`[2, P*K]` problem indices of each problem's next-smaller and next-larger lambda of the same pair (itself at
  the ends of the grid); problems are ordered pair by pair, lambda by lambda, in any lambda order."""
  k = len(lambdas)
  order = np.argsort(lambdas, kind="stable")
  rank = np.empty(k, np.int64)
  rank[order] = np.arange(k)
  below = order[np.maximum(rank - 1, 0)]
  above = order[np.minimum(rank + 1, k - 1)]
  base = np.repeat(np.arange(num_pairs) * k, k)
  return np.stack([base + np.tile(below, num_pairs), base + np.tile(above, num_pairs)])


def _neighbour_round(objective, minimize, best, neighbours, lo, hi, max_iterations):
  """One round of neighbour restarts, in place on `best` (x, objective, iterations, evaluations, restarts, `[n]`
  each): scores every problem's neighbours' end points at the problem's own lambda, restarts the problems a
  neighbour beats by more than `NEIGHBOUR_GAIN` from the better neighbour's end point (one batch), and keeps each
  restart's end point where it improves on the problem's own. Returns whether any problem was restarted."""
  n = len(best["objective"])
  scores = np.stack([lbfgs.objective_values(objective, tf.constant(best["x"][j]), n)
                     for j in neighbours])  # [2, n]: each neighbour's end point at this problem's lambda
  scores[neighbours == np.arange(n)] = np.inf
  best["evaluations"] += 2  # (forward only)
  pick = np.argmin(scores, axis=0)
  score = scores[pick, np.arange(n)]
  own = best["objective"]
  restart = np.flatnonzero(score < own - NEIGHBOUR_GAIN * np.abs(own) - 1e-6)
  if not restart.size:
    return False
  source = neighbours[pick[restart], restart]
  rows = tf.constant(restart, tf.int32)
  result = minimize(lambda x_adv, idx: objective(x_adv, tf.gather(rows, idx)), best["x"][source], lo, hi,
                    max_iterations=max_iterations)
  best["evaluations"][restart] += result.evaluations
  best["restarts"][restart] += 1
  better = result.objective < own[restart]
  kept = restart[better]
  best["x"][kept], best["objective"][kept] = result.x[better], result.objective[better]
  best["iterations"][kept] += result.iterations[better]
  return True


def _batched(fn, x, chunk=500):
  parts = [fn(x[s:s + chunk]) for s in range(0, int(x.shape[0]), chunk)]
  return [tuple(np.concatenate([p[i][j].numpy() for p in parts]) for j in range(2)) for i in range(len(parts[0]))]


def attack_metrics(fns, x_adv, x, x_t, num_samples, seed, rows=None):
  """Per-problem metrics of adversarial inputs `x_adv` `[n, ...]` against inputs `x` and targets `x_t`: float64
  `[n]` arrays `target_nll` (-log p(x^t|z~), z~ ~ q(z|x*), over `num_samples` fixed noise draws),
  `target_own_nll` (-log p(x^t|z~) with z~ ~ q(z|x^t) on the same draws: the target's own reconstruction, the
  floor that `target_nll` reaches when the attack succeeds exactly; their difference separates a model's
  resistance from how well it reconstructs the target), the L2 norms `distortion_l2`, `target_recon_l2`,
  `adversarial_recon_l2`, `adversarial_to_target_l2`, and the pair's own `input_to_target_l2` (||x - x^t||) and
  `input_recon_to_target_l2` (||recon(x) - x^t||), the scales AUDDC normalises by (`attacks.measures`)."""
  n = len(x_adv)
  nll, own = np.zeros(n), np.zeros(n)
  for sample in range(num_samples):
    noise = fixed_noise(fns.layer_sizes, n, seed + 1, sample, rows)
    nll -= fns.terms_fn(tf.constant(x_adv), tf.constant(x_t), noise)["reconstruction"].numpy() / num_samples
    own -= fns.terms_fn(tf.constant(x_t), tf.constant(x_t), noise)["reconstruction"].numpy() / num_samples
  recon_adv = fns.recon_fn(tf.constant(x_adv)).numpy()
  recon_t = fns.recon_fn(tf.constant(x_t)).numpy()
  recon_x = fns.recon_fn(tf.constant(x)).numpy()
  return {"target_nll": nll, "target_own_nll": own, "distortion_l2": _l2(x_adv, x),
          "target_recon_l2": _l2(x_t, recon_t),
          "adversarial_recon_l2": _l2(x_adv, recon_adv), "adversarial_to_target_l2": _l2(recon_adv, x_t),
          "input_to_target_l2": _l2(x, x_t), "input_recon_to_target_l2": _l2(recon_x, x_t)}


def mark_display(records):
  """Sets `display` on each record: per (mode, layers, pair), True for the lambda whose objective is the largest one
  still below the mean objective over all lambdas (Gondim-Ribeiro et al. 2018)."""
  groups = {}
  for r in records:
    groups.setdefault((r["mode"], r["layers"], r["pair"]), []).append(r)
  for group in groups.values():
    mean = np.mean([r["objective"] for r in group])
    below = [r for r in group if r["objective"] < mean]
    chosen = max(below, key=lambda r: r["objective"]) if below else min(group, key=lambda r: r["objective"])
    for r in group:
      r["display"] = r is chosen


def merge_shards(shard_dirs, parts, num_pairs):
  """Merges the outputs of a sweep run in shards (each a folder with attack_results.json and
  adversarial_inputs.npz, its records carrying the sweep's pair indices) into the records and arrays one process
  would have written: per (mode, layers) in `parts` order, pair by pair, lambda by lambda.

  Raises:
    FileNotFoundError: a shard has not finished; ValueError: the shards do not cover each pair exactly once.
  """
  import json  # pylint: disable=g-import-not-at-top
  import os  # pylint: disable=g-import-not-at-top
  records, arrays = [], []
  for folder in shard_dirs:
    paths = [os.path.join(folder, "attack_results.json"), os.path.join(folder, "adversarial_inputs.npz")]
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
      raise FileNotFoundError(f"Shard output missing: {', '.join(missing)}; run that shard (--attack_shard_index) "
                              "before --attack_merge.")
    with open(paths[0]) as f:
      records += json.load(f)
    with np.load(paths[1]) as f:
      arrays.append({k: f[k] for k in f.files})
  arrays = {k: np.concatenate([a[k] for a in arrays]) for k in arrays[0]}
  order = {part: i for i, part in enumerate(parts)}
  for (mode, layers) in parts:
    pairs = sorted(r["pair"] for r in records if (r["mode"], r["layers"]) == (mode, layers))
    lambdas = len(pairs) // max(1, len(set(pairs)))
    if sorted(set(pairs)) != list(range(num_pairs)) or len(pairs) != num_pairs * lambdas:
      raise ValueError(f"The shards in {os.path.dirname(shard_dirs[0])} do not cover pairs 0..{num_pairs - 1} "
                       f"exactly once for the {mode} attack on layers {layers}: run every shard with the same "
                       "settings (and --attack_shards).")
  rank = sorted(range(len(records)), key=lambda i: (order[(records[i]["mode"], records[i]["layers"])],
                                                    records[i]["pair"], records[i]["lambda"]))
  return [records[i] for i in rank], {k: v[rank] for k, v in arrays.items()}
