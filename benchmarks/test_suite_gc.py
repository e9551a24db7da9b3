"""The test suite with and without tests/conftest.py's per-test clean-up (Keras state cleared, garbage collected,
survivors frozen), the two taking turns.

Each round runs pytest twice on the same test files with the README's two workers, once with `--keep_graphs` (the
clean-up off) and once without, and prints each run's pytest time and their ratio. Used for docs/BENCHMARKS.md,
"The test suite's garbage".

Usage: python benchmarks/test_suite_gc.py [--rounds=1] [--workers=2] [test files ...]
"""

import argparse
import os
import re
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_FILES = ["tests/test_export.py", "tests/test_hierarchy.py", "tests/test_reproduction.py"]


def run_pytest(files, workers, keep_graphs):
  """Seconds pytest reports for one run (the wall time if it reports none); raises if a test fails."""
  command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *files]
  if workers:
    command += ["-n", str(workers), "--dist", "worksteal"]  # as the README's test command
  if keep_graphs:
    command.append("--keep_graphs")
  start = time.perf_counter()
  proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
  wall = time.perf_counter() - start
  summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""
  if proc.returncode != 0:
    raise RuntimeError(f"pytest failed (exit {proc.returncode}): {summary}\n{proc.stdout[-3000:]}")
  match = re.search(r" in ([0-9.]+)s", summary)
  return float(match.group(1)) if match else wall


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("files", nargs="*", default=DEFAULT_FILES)
  parser.add_argument("--rounds", type=int, default=1)
  parser.add_argument("--workers", type=int, default=2, help="pytest-xdist workers (0: one process)")
  args = parser.parse_args(argv)
  print(f"files: {' '.join(args.files)}; workers: {args.workers}")
  print("| round | clean-up off (`--keep_graphs`) | clean-up on | on / off |")
  print("|---|---|---|---|")
  for r in range(args.rounds):
    # Alternate which arm goes first, so a drift in the machine's speed does not favour one.
    order = [True, False] if r % 2 == 0 else [False, True]
    times = {}
    for keep in order:
      times[keep] = run_pytest(args.files, args.workers, keep)
    print(f"| {r + 1} | {times[True]:.0f} s | {times[False]:.0f} s | {times[False] / times[True]:.2f} |", flush=True)


if __name__ == "__main__":
  main()
