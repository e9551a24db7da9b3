"""Robustness scores over attack records, in numpy alone (no TensorFlow: the campaign's file-only scripts use them).

The paper's score of an attack (Section 5, Figures 5-7) is -log p(x^t|z~), z~ ~ q(z|x*): how badly the adversarial
input's posterior explains the target. It has a floor that is each model's own, the target's own -log p(x^t|z~)
with z~ ~ q(z|x^t) (`target_own_nll` in the records, attacks/protocol.py): where the attack succeeds exactly (the
latent attack at the smallest lambdas) -log p(x^t|z~) reaches it, so a model that reconstructs its targets badly
scores high however easily it is attacked. `excess_over_floor` takes the floor out.
"""

import numpy as np

# Where latent-attack records lack the target's own score (sweeps from before 2026-12-04), each pair's floor is
# approximated by its median -log p(x^t|z~) at this many of its smallest lambdas, where distortion is nearly free and
# the latent attack reaches q(z|x^t). Checked on a beta-TCVAE (MLP, beta = 4, 2,000 steps at batch 256, the full
# protocol): median excess 7.33 by the approximation against 7.30 by the own score. The output attack, which
# minimises -log p(x^t|z~) itself there, ends below the floor (there: 8.54 against 1.81; a pair's smallest-lambda
# median 96.5 against its own 123.0), so its own smallest lambdas give none; its pairs' floors are read from the
# same sweep's latent attack instead (there: 1.99 against 1.81).
FLOOR_LAMBDAS = 10
# A latent attack whose objective (eq. 13-15: the KL from q(z|x*) to q(z|x^t) plus lambda ||d||, so at least that
# KL) stays below this many nats at a pair's floor lambdas has matched the target's posterior there: its
# -log p(x^t|z~) is then the target's own score, up to the score's noise draws, and the approximate floor is exact.
FLOOR_KL_TOLERANCE = 0.01


def pair_floors(records):
  """({pair: floor}, source) of one attack's records: each pair's median own score (`target_own_nll`, "own") where
  every record has it; else, for a latent attack over lambdas, each pair's median -log p(x^t|z~) at its
  `FLOOR_LAMBDAS` smallest lambdas ("smallest_lambda"); else (None, None)."""
  if not records:
    return None, None
  if all(r.get("target_own_nll") is not None for r in records):
    source, key, count = "own", "target_own_nll", None
  elif all(r["mode"] == "latent" and "lambda" in r for r in records):  # (a fixed-budget attack has no lambdas)
    source, key, count = "smallest_lambda", "target_nll", FLOOR_LAMBDAS
  else:
    return None, None
  floors = {}
  for pair in {r["pair"] for r in records}:
    part = [r for r in records if r["pair"] == pair]
    if count:  # (the smallest lambdas; the own score needs no order, and fixed-budget records have no lambda)
      part = sorted(part, key=lambda r: r["lambda"])[:count]
    floors[pair] = float(np.median([r[key] for r in part]))
  return floors, source


def excess_over_floor(records, latent=None):
  """Each record's -log p(x^t|z~) less its pair's floor, for one attack's records (one mode; any pairs).

  The floor is a constant per pair (pair = one input/target pair of the sweep; it depends on the model and the
  target alone, not on the attack): the median of the target's own -log p(x^t|z~) over the pair's records
  (`target_own_nll`, each on that record's noise draws) where every record has it; else, for a latent attack, the
  pair's median -log p(x^t|z~) at its `FLOOR_LAMBDAS` smallest lambdas; else, for an output attack, the same
  floors read from `latent`, the same sweep's latent attack (the same pairs: a sweep chooses its pairs once).

  Args:
    records: attack records (dicts with `mode`, `pair`, `target_nll`, and `target_own_nll` where kept, or `lambda`
      where not).
    latent: the same sweep's latent-attack records of one layer set (`latent_reference`), or None.

  Returns:
    (excess, source): a list of floats in the records' order and "own" or "smallest_lambda"; ([], None) for no
    records, or an output attack whose records lack the target's own score and whose sweep's latent attack gives
    no floor for every one of its pairs.
  """
  floors, source = pair_floors(records)
  if floors is None and records and latent:
    floors, source = pair_floors(latent)
    if floors is not None and not {r["pair"] for r in records} <= set(floors):
      floors, source = None, None
  if floors is None:
    return [], None
  return [float(r["target_nll"]) - floors[r["pair"]] for r in records], source


def latent_reference(records):
  """The latent-attack records of one layer set among a sweep's `records` (the first set by name), the reference
  `excess_over_floor` reads an output attack's floors from; [] where there is no latent attack."""
  latent = [r for r in records if r["mode"] == "latent"]
  if not latent:
    return []
  layers = min(str(r["layers"]) for r in latent)
  return [r for r in latent if str(r["layers"]) == layers]


def floor_kl_bound(records):
  """The largest latent objective at the lambdas `excess_over_floor` approximates each pair's floor with: a bound on
  KL(q(z|x*) || q(z|x^t)) (summed over the attacked layers) wherever the approximate floor was read. Below
  `FLOOR_KL_TOLERANCE` the adversarial input's posterior is the target's there, so the approximation is the target's
  own score.

  Args:
    records: one latent attack's records (dicts with `pair`, `lambda`, `objective`).

  Returns:
    a float, or None for no records or records of another mode.
  """
  if not records or any(r["mode"] != "latent" for r in records):
    return None
  bound = 0.0
  for pair in {r["pair"] for r in records}:
    part = sorted((r for r in records if r["pair"] == pair), key=lambda r: r["lambda"])[:FLOOR_LAMBDAS]
    bound = max(bound, max(float(r["objective"]) for r in part))
  return bound


def excess_quartiles(records):
  """(lambdas, quartiles `[len(lambdas), 3]`): the 25th, 50th and 75th percentiles of the records' `excess` (set from
  `excess_over_floor`) at each of their lambdas, the excess against lambda."""
  lambdas = sorted({r["lambda"] for r in records})
  return lambdas, np.array([np.percentile([r["excess"] for r in records if r["lambda"] == lam], [25, 50, 75])
                            for lam in lambdas])


def median_excess(records, latent=None):
  """(median of `excess_over_floor`'s excess, or None where there is none; its source) of one attack's records."""
  excess, source = excess_over_floor(records, latent)
  return (float(np.median(excess)) if excess else None), source
