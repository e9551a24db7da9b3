"""Where a campaign stands (launch/reproduce_dsprites.sh, launch/paper.sh): one row per run, from its workdir under
ROOT and its row in the campaign's summary, with how long its training still takes at the pace of its last epochs.

  python launch/campaign_status.py runs/reproduce [docs/reproduction/summary.json]

Per run: what the summary records (budget, and whether both attacks are there, the latent one as the paper attacks the
family, the output one's objective over the protocol's noise draws, both by the current attack driver), the latest
checkpoint's step against the budget the run is training to, the seconds its last epochs took
(median of the last three Keras epoch lines of ROOT/logs/<run>.train.log, and the fastest of the last ten: epoch times
include whatever else the machine ran meanwhile), the training time left at both paces, whether its evaluation and its
attacks are newer than its checkpoint (done), older (stale: the run was trained on since) or absent (attacks done
but with the output objective over fewer noise draws than the protocol's, or made by an older attack driver
than `config.ATTACK_DRIVER_VERSION`, are out of date), and how long ago
its training log was last written (a campaign that is running writes it every epoch), and how many training-health
warnings (`seatbelt_tf.health`: a gradient norm or a layer's KL at 100× its running median) the log holds, with
the latest. Runs the summary records but
ROOT lacks (a new machine) are listed too. Reads files only; no TensorFlow.
"""

import os
import re
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import collect_reproduction  # noqa: E402

EPOCH_LINE = re.compile(r"^\s*(\d+)/(\d+) - (\d+)s - ", re.M)  # Keras verbose=2: "200/200 - 544s - 3s/step - ..."
# seatbelt_tf.health.spike_message: "Training health: at step 244 grad_norm_q_z2_given_z1 jumped to 1234, 103 times ..."
HEALTH_LINE = re.compile(r"Training health: at step (\d+) (\S+) jumped to \S+, (\S+) times its running median")


def _flag(path, name):
  """The last value of --name=... in a flagfile, or None."""
  if not os.path.isfile(path):
    return None
  values = re.findall(rf"^--{name}=(.*)$", open(path).read(), re.M)
  return values[-1] if values else None


def checkpoint_step(workdir):
  """The step of the run's latest checkpoint (checkpoints/checkpoint), or None."""
  path = os.path.join(workdir, "checkpoints", "checkpoint")
  if not os.path.isfile(path):
    return None
  match = re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', open(path).read(), re.M)
  return int(match.group(1)) if match else None


def epoch_seconds(log_path):
  """(median of the last 3, fastest of the last 10) seconds per full epoch in a training log (Keras's verbose=2
  lines), or (None, None)."""
  if not os.path.isfile(log_path):
    return None, None
  times = [int(s) for done, total, s in EPOCH_LINE.findall(open(log_path, errors="replace").read()) if done == total]
  return (statistics.median(times[-3:]), min(times[-10:])) if times else (None, None)


def health_warnings(log_path):
  """(how many training-health warnings a training log holds, the latest as "step S: QUANTITY at R× its running
  median"); (None, None) without a log. The log keeps every call's output (launch/paper.sh appends), so a run
  trained on through several budgets or resumed after a cut-off shows all of its warnings."""
  if not os.path.isfile(log_path):
    return None, None
  found = HEALTH_LINE.findall(open(log_path, errors="replace").read())
  if not found:
    return 0, None
  step, quantity, ratio = found[-1]
  return len(found), f"step {step}: {quantity} at {ratio}× its running median"


def _stage(path, checkpoint_path):
  if not os.path.isfile(path):
    return "—"
  if os.path.isfile(checkpoint_path) and os.path.getmtime(path) < os.path.getmtime(checkpoint_path):
    return "stale"
  return "done"


def _hours(seconds):
  return "—" if seconds is None else f"{seconds / 3600:.1f} h"


def _age(seconds):
  if seconds is None:
    return "—"
  return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def _recorded(row):
  if row is None:
    return "—"
  attacked, paper, draws, driver = collect_reproduction.attack_state(row)
  what = "attacked" if attacked else "trained"
  if attacked and not paper:
    what += ", not the paper's latent attack"
  if attacked and not draws:
    what += (f", output objective on {collect_reproduction.output_draws(row)} noise draw(s) (the protocol's: "
             f"{collect_reproduction.OBJECTIVE_DRAWS})")
  if attacked and not driver:
    what += (f", by attack driver {collect_reproduction.attack_driver(row)} "
             f"(current: {collect_reproduction.DRIVER_VERSION}; attacked again)")
  return f"{row['train_steps']} steps, {what}"


def run_status(root, name, row=None, now=None):
  """One run's status as a dict (see the module docstring); `row`: its summary row, if any."""
  now = time.time() if now is None else now
  workdir = os.path.join(root, name)
  if not os.path.isdir(workdir):
    return {"run": name, "recorded": _recorded(row), "step": None, "target": None, "epoch_s": None,
            "fastest_s": None, "left_s": None, "fastest_left_s": None, "evaluated": "—", "attacked": "—",
            "log_age_s": None, "health_warnings": None, "latest_warning": None,
            "note": "no workdir: the summary's record only"}
  flags = os.path.join(workdir, "flags.cfg")
  target = _flag(flags, "train_steps")
  per_epoch = _flag(flags, "steps_per_epoch")
  step = checkpoint_step(workdir)
  log = os.path.join(root, "logs", f"{name}.train.log")
  epoch_s, fastest_s = epoch_seconds(log)
  warnings_found, latest_warning = health_warnings(log)
  left = fastest_left = None
  if target is not None and per_epoch and epoch_s is not None:
    epochs_left = max(int(target) - (step or 0), 0) / int(per_epoch)
    left, fastest_left = epochs_left * epoch_s, epochs_left * fastest_s
  checkpoint = os.path.join(workdir, "checkpoints", "checkpoint")
  attacked = _stage(os.path.join(workdir, "attacks", "attack_results.json"), checkpoint)
  draws, driver = collect_reproduction.sweep_state(workdir) if attacked == "done" else (None, None)
  if attacked == "done" and draws != collect_reproduction.OBJECTIVE_DRAWS:
    attacked = ("out of date: " + (f"output objective on {draws} noise draw(s), the protocol's "
                                   f"{collect_reproduction.OBJECTIVE_DRAWS}" if draws else "no output attack"))
  elif attacked == "done" and driver != collect_reproduction.DRIVER_VERSION:
    attacked = f"out of date: attack driver {driver}, the current {collect_reproduction.DRIVER_VERSION}"
  return {"run": name, "recorded": _recorded(row), "step": step, "target": int(target) if target else None,
          "epoch_s": epoch_s, "fastest_s": fastest_s, "left_s": left, "fastest_left_s": fastest_left,
          "evaluated": _stage(os.path.join(workdir, "evaluation", "evaluation.json"), checkpoint),
          "attacked": attacked,
          "log_age_s": now - os.path.getmtime(log) if os.path.isfile(log) else None,
          "health_warnings": warnings_found, "latest_warning": latest_warning, "note": ""}


def status(root, summary=None, now=None):
  """Every run under `root` (a folder with config.json or checkpoints/) and every run `summary` records."""
  rows = {}
  if summary:
    rows = {r["run"]: r for r in collect_reproduction.read_json(summary) or []}
  names = set(rows)
  if os.path.isdir(root):
    names |= {n for n in os.listdir(root) if os.path.isfile(os.path.join(root, n, "config.json"))
              or os.path.isdir(os.path.join(root, n, "checkpoints"))}
  return [run_status(root, name, rows.get(name), now) for name in sorted(names)]


def markdown(statuses):
  lines = ["| run | in the summary | checkpoint / budget | s per epoch: median of the last 3 (fastest of the last "
           "10) | training left at that pace (at the fastest) | evaluated | attacked | training log written | "
           "training-health warnings in the log (the latest) |",
           "|---" * 9 + "|"]
  for s in statuses:
    at = "—" if s["target"] is None else f"{s['step'] if s['step'] is not None else 0} / {s['target']}"
    epoch = "—" if s["epoch_s"] is None else f"{s['epoch_s']:.0f} ({s['fastest_s']:.0f})"
    left = "—" if s["left_s"] is None else f"{_hours(s['left_s'])} ({_hours(s['fastest_left_s'])})"
    age = _age(s["log_age_s"]) + (" ago" if s["log_age_s"] is not None else "")
    health = "—" if s["health_warnings"] is None else str(s["health_warnings"]) + (
        f" ({s['latest_warning']})" if s["latest_warning"] else "")
    lines.append(f"| {s['run']} | {s['recorded']} | {at if not s['note'] else s['note']} | {epoch} | "
                 f"{left} | {s['evaluated']} | {s['attacked']} | {age} | {health} |")
  return "\n".join(lines)


def main(argv):
  if len(argv) not in (1, 2):
    sys.exit(__doc__)
  root, summary = argv[0], (argv[1] if len(argv) == 2 else None)
  if not os.path.isdir(root) and not (summary and os.path.isfile(summary)):
    sys.exit(f"No campaign folder {root} (and no summary given): pass the ROOT the campaign ran with, e.g. "
             "runs/reproduce, and its summary, e.g. docs/reproduction/summary.json.")
  statuses = status(root, summary)
  print(markdown(statuses))
  left = sum(s["left_s"] or 0 for s in statuses)
  fastest = sum(s["fastest_left_s"] or 0 for s in statuses)
  print(f"\n{len(statuses)} runs; training left in the runs that have a workdir: {_hours(left)} at their recent "
        f"pace ({_hours(fastest)} at their fastest). Epoch times include whatever else ran on the machine meanwhile.")


if __name__ == "__main__":
  try:
    main(sys.argv[1:])
  except collect_reproduction.UnreadableFileError as e:
    sys.exit(f"error: {e}")
