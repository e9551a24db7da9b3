"""A stand-in for `python -m seatbelt_tf.launch` in tests of the shell scripts (launch/mini_paper.sh, paper.sh).

It takes a launcher command line exactly as the launcher does before TensorFlow starts (`launch._parse`: absl
flags, nested flagfiles, no stray arguments; then `launch._settings_from_flags`: `RunConfig.validate`), refuses a
workdir whose recorded settings differ (as `runs.prepare_workdir` does), and then, instead of running the mode,
leaves the files the scripts look for:

* train: `config.json` and `flags.cfg` (what `runs.prepare_workdir` writes) and a checkpoint state file at
  `--train_steps` (left alone when it is already there: a finished run saves no checkpoint);
* evaluate: `evaluation/evaluation.json`; attack: `attacks/attack_results.json`; report: `report.md`.

Each accepted call is appended to the file named by $DRY_RUN_CALLS as one JSON line: {"argv": [...], "config":
the validated settings (`RunConfig.flat()`)}. An invalid command line exits 2 with the launcher's own message, so
the script under test stops as it would.

    python tests/launch_dry_run.py --flagfile=configs/vae.cfg --workdir=runs/x
"""

import json
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from seatbelt_tf import launch  # noqa: E402  pylint: disable=g-import-not-at-top


def _write(path, text):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  with open(path, "w", encoding="utf-8") as f:
    f.write(text)


def _check_workdir(config):
  """The launcher's refusal of a workdir that holds another run (`runs.prepare_workdir`), without TensorFlow."""
  path = os.path.join(config.workdir, "config.json")
  if not os.path.exists(path):
    return
  with open(path, encoding="utf-8") as f:
    diff = config.identity_differences(json.load(f))
  if diff:
    details = ", ".join(f"{k}: workdir has {a!r}, requested {b!r}" for k, (a, b) in sorted(diff.items()))
    sys.exit(f"error: {config.workdir} holds a run with different settings ({details})")


def main(argv):
  rest = launch._parse(["seatbelt_tf.launch", *argv])  # pylint: disable=protected-access
  if len(rest) > 1:
    sys.exit(f"error: Unexpected arguments: {' '.join(rest[1:])}.")
  try:
    config = launch._settings_from_flags()  # pylint: disable=protected-access
  except Exception as e:  # pylint: disable=broad-except  (app.UsageError: the launcher's exit 2)
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  workdir = config.workdir
  if config.mode in ("train", "evaluate", "attack"):
    _check_workdir(config)
  if config.mode == "train":
    _write(os.path.join(workdir, "config.json"), config.to_json())
    _write(os.path.join(workdir, "flags.cfg"), config.to_flagfile())
    step, state = config.train.train_steps, os.path.join(workdir, "checkpoints", "checkpoint")
    text = f'model_checkpoint_path: "ckpt-{step}"\nall_model_checkpoint_paths: "ckpt-{step}"\n'
    if not os.path.isfile(state) or open(state, encoding="utf-8").read() != text:  # a finished run saves nothing
      _write(state, text)
  elif config.mode == "evaluate":
    _write(os.path.join(workdir, "evaluation", "evaluation.json"), "{}\n")
  elif config.mode == "attack":
    _write(os.path.join(workdir, "attacks", "attack_results.json"), "[]\n")
  elif config.mode == "report":
    _write(os.path.join(workdir, "report.md"), "# dry run\n")
  with open(os.environ["DRY_RUN_CALLS"], "a", encoding="utf-8") as f:
    f.write(json.dumps({"argv": argv, "config": config.flat()}) + "\n")


if __name__ == "__main__":
  main(sys.argv[1:])
