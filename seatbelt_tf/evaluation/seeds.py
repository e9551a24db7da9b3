"""Statistics over seeds and attack pairs, for claims that need more than one run (docs/REPRODUCTION.md).

* `mean_sd`: a cell's mean, sample standard deviation and range over its seeds;
* `median_interval`: the median of a quantity pooled over seeds x pairs x lambdas, with a 95% interval from a
  hierarchical bootstrap (seeds with replacement, then pairs with replacement within each seed: the two sources
  of variation the paper's Figures 5-7 pool over).
"""

import zlib

import numpy as np

BOOTSTRAP = 2000


def mean_sd(values):
  """(mean, sample sd (nan for one value), min, max, n) of a list of numbers; Nones are dropped; all nan if none."""
  values = np.asarray([v for v in values if v is not None], np.float64)
  if not len(values):
    return (np.nan, np.nan, np.nan, np.nan, 0)
  sd = values.std(ddof=1) if len(values) > 1 else np.nan
  return (float(values.mean()), float(sd), float(values.min()), float(values.max()), len(values))


def format_mean_sd(values, spec=".3f"):
  """'mean ± sd (n = k)', the value alone for one seed, '—' for none."""
  mean, sd, _, _, n = mean_sd(values)
  if n == 0:
    return "—"
  if n == 1:
    return f"{mean:{spec}} (n = 1)"
  return f"{mean:{spec}} ± {sd:{spec}} (n = {n})"


def keyed_rng(*key):
  """A numpy Generator seeded by `key` (its repr): a table cell's bootstrap that does not depend on which other
  cells the table has, or in what order they come."""
  return np.random.default_rng(zlib.crc32(repr(key).encode()))


def median_interval(groups, key, rng, bootstrap=BOOTSTRAP, level=0.95):
  """Median of `key` pooled over `groups`, and a `level` interval by a hierarchical bootstrap.

  Args:
    groups: a list per seed of a list per pair of records (dicts holding `key`); empty seeds and pairs are not
      allowed.
    key: the record field.
    rng: a numpy Generator (the interval is reproducible from its seed).
    bootstrap: resamples.
    level: the interval's coverage.

  Returns:
    (median, low, high) as floats. With one seed the interval reflects pairs only.
  """
  if not groups or any(not seed or any(not pair for pair in seed) for seed in groups):
    raise ValueError("median_interval needs at least one seed, and every seed and pair at least one record.")
  values = [np.asarray([r[key] for r in pair], np.float64) for seed in groups for pair in seed]
  pooled = float(np.median(np.concatenate(values)))
  offsets = np.cumsum([0] + [len(seed) for seed in groups])
  stats = np.empty(bootstrap)
  for b in range(bootstrap):
    picked = []
    for s in rng.integers(len(groups), size=len(groups)):
      picked.extend(values[offsets[s] + p] for p in rng.integers(len(groups[s]), size=len(groups[s])))
    stats[b] = np.median(np.concatenate(picked))
  tail = 100 * (1 - level) / 2
  low, high = np.percentile(stats, [tail, 100 - tail])
  return pooled, float(low), float(high)
