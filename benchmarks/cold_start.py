"""Cold start of the launcher: wall seconds of one `python -m seatbelt_tf.launch` run in a fresh process (importing
TensorFlow, building and tracing the model, the few steps and the evaluation of the tiny config, the checkpoints),
this working tree against a git revision, the two taking turns in every round so that machine noise hits both.

Every test that starts the launcher, every campaign stage and every user's first command pays this; the steps
themselves are a small part of it for the tiny config.

Usage: python benchmarks/cold_start.py --baseline=HEAD [--rounds=3]
       [--flags="--flagfile=configs/tiny.cfg --model=seatbelt --layers=2"]
"""

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def launch_seconds(root, flags, workdir):
  """Wall seconds of one launcher run of the package in `root` (run from there, so it imports that package)."""
  args = [a.replace("configs/", os.path.join(root, "configs") + "/", 1) if a.startswith("--flagfile=configs/") else a
          for a in flags]
  env = {**os.environ, "PYTHONPATH": root, "TF_CPP_MIN_LOG_LEVEL": "2"}
  start = time.perf_counter()
  done = subprocess.run([sys.executable, "-m", "seatbelt_tf.launch", *args, f"--workdir={workdir}", "--verbose=0"],
                        cwd=root, env=env, capture_output=True, text=True, check=False)
  seconds = time.perf_counter() - start
  if done.returncode:
    raise SystemExit(f"the launcher failed in {root}:\n{done.stderr[-2000:]}")
  return seconds


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--baseline", required=True, help="git revision to compare the working tree with")
  parser.add_argument("--rounds", type=int, default=3)
  parser.add_argument("--flags", default="--flagfile=configs/tiny.cfg --model=seatbelt --layers=2")
  args = parser.parse_args()
  flags = shlex.split(args.flags)
  with tempfile.TemporaryDirectory() as scratch:
    baseline = os.path.join(scratch, "baseline")
    subprocess.run(["git", "-C", REPO, "worktree", "add", "--detach", "-q", baseline, args.baseline], check=True)
    try:
      commit = baseline_commit(baseline)
      roots = {args.baseline if args.baseline.startswith(commit) else f"{args.baseline} ({commit})": baseline,
               "working tree": REPO}
      times = {name: [] for name in roots}
      for r in range(args.rounds):
        for i, (name, root) in enumerate(roots.items()):
          times[name].append(launch_seconds(root, flags, os.path.join(scratch, f"run_{r}_{i}")))
    finally:
      subprocess.run(["git", "-C", REPO, "worktree", "remove", "--force", baseline], check=False)
  first = statistics.median(next(iter(times.values())))
  print(f"\nCold launcher runs: python -m seatbelt_tf.launch {' '.join(flags)}; median of {args.rounds}, alternating")
  print("| code | runs (s) | median s | ratio to the first |")
  print("|---|---|---|---|")
  for name, values in times.items():
    median = statistics.median(values)
    print(f"| {name} | {', '.join(f'{v:.1f}' for v in values)} | {median:.1f} | {median / first:.2f} |")


def baseline_commit(root):
  return subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                        check=True).stdout.strip()


if __name__ == "__main__":
  main()
