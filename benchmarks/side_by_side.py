"""Helpers of the benchmarks that time two implementations of one thing in one process (not a benchmark itself).

`alternate` runs the variants in turn within every round, so machine noise hits them alike (the medians;
`alternate_times` every round's time); `swapped` puts a
variant in place of a module attribute while a function that uses it is traced.
"""

import contextlib
import statistics
import time


def alternate_times(fns, rounds, calls):
  """Seconds per call of each of `fns` ({name: callable}) in every round ({name: [rounds floats]}), after one
  warm-up call each, the callables taking turns within every round (`calls` calls per turn)."""
  for fn in fns.values():
    fn()
  times = {name: [] for name in fns}
  for _ in range(rounds):
    for name, fn in fns.items():
      start = time.perf_counter()
      for _ in range(calls):
        fn()
      times[name].append((time.perf_counter() - start) / calls)
  return times


def alternate(fns, rounds, calls):
  """Median seconds per call of each of `fns` over the rounds of `alternate_times`."""
  return {name: statistics.median(t) for name, t in alternate_times(fns, rounds, calls).items()}


@contextlib.contextmanager
def swapped(module, name, value):
  """`module.name` is `value` inside the block (graph functions traced there keep it) and its own again after."""
  original = getattr(module, name)
  setattr(module, name, value)
  try:
    yield
  finally:
    setattr(module, name, original)
