"""Two campaign cells at once on one thread each, against one cell on all threads: which trains more images a second?

`launch/paper.sh` (and so `launch/reproduce_dsprites.sh`) runs its cells one at a time unless `JOBS` > 1. On a
CPU machine whose step is bound by its matrix products, one process on every core and several processes on one
core each could differ in total throughput: a step's small, memory-bound ops and its Python overhead do not use
the second core, and a second process could fill those gaps. This script measures it with the launcher itself.

Each round runs, one after the other, (a) one `python -m seatbelt_tf.launch --mode=train` on TensorFlow's default
threads and (b) --processes such runs at once, each with `TF_NUM_INTRAOP_THREADS=1` and
`TF_NUM_INTEROP_THREADS=1`; every run trains --steps steps from step 0 in a fresh temporary workdir and reports
its own `train_images_per_s` (results.json: the launcher leaves the process's first epoch, with its tracing and
compiling, out of it). The table gives each variant's total images a second (the sum over its processes) and the
ratio (b) / (a). Pause anything else that runs on the machine (`launch/campaign_plan.sh --pause python ...`).

The cell is given by a flag file: by default the one the campaign trains at (--flagfile; any workdir's flags.cfg
works, its --mode, --workdir, --train_steps and --steps_per_epoch replaced).

Usage: python benchmarks/parallel_cells.py --flagfile=runs/reproduce/beta_tcdlgm_L2_beta8_seed0/flags.cfg
         [--rounds=2] [--steps=60] [--processes=2]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

REPLACED = ("--mode=", "--workdir=", "--train_steps=", "--steps_per_epoch=")


def base_flags(flagfile, folder):
  """A copy of `flagfile` without the flags each run sets itself; returns its path."""
  with open(flagfile) as f:
    lines = [line for line in f if line.strip() and not line.startswith(REPLACED)]
  path = os.path.join(folder, "base.cfg")
  with open(path, "w") as f:
    f.writelines(lines)
  return path


def run_variant(flags, folder, tag, processes, one_thread, steps):
  """Total train_images_per_s of `processes` launcher runs started together."""
  env = dict(os.environ)
  if one_thread:
    env.update(TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1")
  runs = []
  for i in range(processes):
    workdir = os.path.join(folder, f"{tag}_{i}")
    log = open(os.path.join(folder, f"{tag}_{i}.log"), "w")
    command = [sys.executable, "-m", "seatbelt_tf.launch", f"--flagfile={flags}", "--mode=train",
               f"--workdir={workdir}", f"--train_steps={steps}", f"--steps_per_epoch={max(1, steps // 4)}",
               f"--seed={i}"]
    runs.append((subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), workdir, log))
  total = 0.0
  for process, workdir, log in runs:
    if process.wait() != 0:
      raise SystemExit(f"a training run failed: see {log.name}")
    log.close()
    with open(os.path.join(workdir, "results.json")) as f:
      total += json.load(f)["train_images_per_s"]
  return total


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--flagfile", required=True, help="a workdir's flags.cfg: the cell to train")
  parser.add_argument("--rounds", type=int, default=2)
  parser.add_argument("--steps", type=int, default=60, help="steps per run (a quarter of them is left out)")
  parser.add_argument("--processes", type=int, default=2)
  args = parser.parse_args()
  single, parallel = [], []
  with tempfile.TemporaryDirectory(prefix="parallel_cells_") as folder:
    flags = base_flags(args.flagfile, folder)
    for r in range(args.rounds):
      single.append(run_variant(flags, folder, f"single{r}", 1, False, args.steps))
      parallel.append(run_variant(flags, folder, f"parallel{r}", args.processes, True, args.steps))
      print(f"round {r}: one process, default threads {single[-1]:.0f} images/s; {args.processes} processes, one "
            f"thread each {parallel[-1]:.0f} images/s in all", flush=True)
  print(f"\n{os.cpu_count()} cores; cell: {args.flagfile}; {args.steps} steps per run\n")
  print("| variant | total images/s (median) | min | max | ratio to one process |")
  print("|---|---|---|---|---|")
  base = statistics.median(single)
  for name, values in (("one process, default threads", single),
                       (f"{args.processes} processes, one thread each", parallel)):
    m = statistics.median(values)
    print(f"| {name} | {m:.0f} | {min(values):.0f} | {max(values):.0f} | {m / base:.2f}x |")


if __name__ == "__main__":
  main()
