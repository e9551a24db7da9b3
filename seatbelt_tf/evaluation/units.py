"""Which latent units carry information (paper Appendix F, the KL-activation plots), in numpy alone.

A unit is *active* when its mean KL over held-out images (`kl_units` in a run's results.json: the analytic
KL(q(z^L_j|.) || N(0, 1)) for the top layer, -T of eq. A.5; the single-sample log q(z^i_j|z^{i-1}) - log
p(z^i_j|z^{i+1}) for lower layers, -R_a, -R_b of eqs. A.7, A.10: `objectives.hierarchy_kl_terms`) exceeds
`ACTIVE_UNIT_KL` nats. A collapsed unit's posterior is its prior: in the campaign's 31-epoch VAE and beta-TCVAE
(seed 2, docs/reproduction/tables.md) those units hold 0.0004-0.0012 nats and the active ones 2.5-4.2, so there the
count does not depend on where between them the threshold sits. Trained with free bits (the hierarchies' 0.05 nats
per unit: Kingma et al. 2016, `objectives.beta_tc_loss`), a collapsed unit rests near that floor instead (0.05-0.08
nats in the beta-TC DLGM's seed 2) and a few units sit just above the threshold (0.10-0.15 nats there, against
1.4-4.3 for the clearly active ones): their count can move by one or two with the threshold, so the per-unit KLs are
kept beside it.
"""

import numpy as np

ACTIVE_UNIT_KL = 0.1  # nats; docs/RESULTS.md's table of active units uses the same


def by_layer(kl_units):
  """[(layer, [d_layer mean KLs]), ...] for z^1, ..., z^L from results.json's `kl_units`, {"1": [...], ..., "L":
  [...]}: its keys are strings, so "10" would sort before "2" without the integer key."""
  return [(layer, kl_units[layer]) for layer in sorted(kl_units, key=int)]


def active_units(kl_units, threshold=ACTIVE_UNIT_KL):
  """[active units of z^1, ..., of z^L] from {"1": [d_1 mean KLs], ..., "L": [...]} (results.json's `kl_units`);
  None when `kl_units` is missing or empty (runs trained before it was recorded)."""
  if not kl_units:
    return None
  return [int(np.sum(np.asarray(kls, np.float64) > threshold)) for _, kls in by_layer(kl_units)]
