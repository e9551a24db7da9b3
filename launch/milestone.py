"""Keeps a run's evaluation (and attacks) before training extends it, so a campaign that trains its runs on to a
larger budget (launch/reproduce_dsprites.sh with a larger STEPS) still has the numbers of every earlier budget.

launch/paper.sh calls it ahead of every train stage. When WORKDIR's training finished at fewer steps than STEPS
and its evaluation is of that latest checkpoint (evaluation.json newer than the checkpoint index), it copies
results.json, evaluation/evaluation.json and, when it is of the same checkpoint, attacks/attack_results.json into
WORKDIR/milestones/step<k>/ (k: the finished step count), atomically (a temporary folder, then a rename). It does
nothing for a run that has not finished, has not been evaluated at its latest checkpoint, is already at STEPS, or
whose milestone exists; launch/collect_reproduction.py reads the milestones back.

  python launch/milestone.py WORKDIR STEPS
"""

import json
import os
import shutil
import sys
import tempfile

MILESTONES = "milestones"
FILES = (("results.json", True), ("evaluation/evaluation.json", True), ("attacks/attack_results.json", False))


def _is_of_checkpoint(path, checkpoint):
  return os.path.isfile(path) and os.path.getmtime(path) >= os.path.getmtime(checkpoint)


def archive(workdir, steps):
  """Archives WORKDIR's finished budget before training on to `steps`; returns the new milestone folder, or None
  when there is nothing to keep (or it is kept already)."""
  results_path = os.path.join(workdir, "results.json")
  checkpoint = os.path.join(workdir, "checkpoints", "checkpoint")
  if not (os.path.isfile(results_path) and os.path.isfile(checkpoint)):
    return None
  with open(results_path) as f:
    step = int(json.load(f)["step"])
  if step >= steps:
    return None
  if not _is_of_checkpoint(os.path.join(workdir, "evaluation", "evaluation.json"), checkpoint):
    return None
  target = os.path.join(workdir, MILESTONES, f"step{step}")
  if os.path.isdir(target):
    return None
  os.makedirs(os.path.dirname(target), exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".step", dir=os.path.dirname(target))
  try:
    for name, required in FILES:
      source = os.path.join(workdir, name)
      if required or _is_of_checkpoint(source, checkpoint):
        shutil.copy2(source, os.path.join(tmp, os.path.basename(name)))
    os.chmod(tmp, 0o755)
    os.rename(tmp, target)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return target


def milestones(workdir):
  """[(step, {file name: parsed json})] of WORKDIR's milestones, by step."""
  root = os.path.join(workdir, MILESTONES)
  out = []
  if not os.path.isdir(root):
    return out
  for name in os.listdir(root):
    if not (name.startswith("step") and name[4:].isdigit()):
      continue
    files = {}
    for file_name in os.listdir(os.path.join(root, name)):
      with open(os.path.join(root, name, file_name)) as f:
        files[file_name] = json.load(f)
    out.append((int(name[4:]), files))
  return sorted(out, key=lambda item: item[0])


if __name__ == "__main__":
  if len(sys.argv) != 3 or not sys.argv[2].isdigit():
    sys.exit(__doc__)
  kept = archive(sys.argv[1], int(sys.argv[2]))
  if kept:
    print(f"kept the evaluation at {os.path.basename(kept)} in {kept}")
