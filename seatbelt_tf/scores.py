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
# median 96.5 against its own 123.0), so its records are not approximated.
FLOOR_LAMBDAS = 10
# A latent attack whose objective (eq. 13-15: the KL from q(z|x*) to q(z|x^t) plus lambda ||d||, so at least that
# KL) stays below this many nats at a pair's floor lambdas has matched the target's posterior there: its
# -log p(x^t|z~) is then the target's own score, up to the score's noise draws, and the approximate floor is exact.
FLOOR_KL_TOLERANCE = 0.01


def excess_over_floor(records):
  """Each record's -log p(x^t|z~) less its pair's floor, for one attack's records (one mode; any pairs).

  The floor is a constant per pair (pair = one input/target pair of the sweep): the median of the target's own
  -log p(x^t|z~) over the pair's records (`target_own_nll`, each on that record's noise draws) where every record
  has it; else, for a latent attack, the pair's median -log p(x^t|z~) at its `FLOOR_LAMBDAS` smallest lambdas.

  Args:
    records: attack records (dicts with `mode`, `pair`, `target_nll`, and `target_own_nll` where kept, or `lambda`
      where not).

  Returns:
    (excess, source): a list of floats in the records' order and "own" or "smallest_lambda"; ([], None) for no
    records, or an output attack whose records lack the target's own score.
  """
  if not records:
    return [], None
  if all(r.get("target_own_nll") is not None for r in records):
    source, key, count = "own", "target_own_nll", None
  elif all(r["mode"] == "latent" for r in records):
    source, key, count = "smallest_lambda", "target_nll", FLOOR_LAMBDAS
  else:
    return [], None
  floors = {}
  for pair in {r["pair"] for r in records}:
    part = [r for r in records if r["pair"] == pair]
    if count:  # (the smallest lambdas; the own score needs no order, and fixed-budget records have no lambda)
      part = sorted(part, key=lambda r: r["lambda"])[:count]
    floors[pair] = float(np.median([r[key] for r in part]))
  return [float(r["target_nll"]) - floors[r["pair"]] for r in records], source


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


def median_excess(records):
  """(median of `excess_over_floor`'s excess, or None where there is none; its source) of one attack's records."""
  excess, source = excess_over_floor(records)
  return (float(np.median(excess)) if excess else None), source
