#!/usr/bin/env bash
# Budget study (issue 26, step 1): held-out ELBO and MIG against images seen for one model, trained in CHUNK-step
# increments up to STEPS in one workdir and evaluated after each chunk (held-out ELBO on --eval_examples images, MIG
# of z^L by the histogram protocol on MIG_POINTS grid points). Appends one JSON line per evaluated step to
# ROOT/NAME/curve.jsonl; resumable: a re-run continues the training and skips steps already in the curve.
#
#   NAME=beta_tcvae_b6 FLAGS="--flagfile=configs/beta_tcvae.cfg --beta=6 --free_bits=0" launch/learning_curve.sh
#   NAME=seatbelt_L2_b6 FLAGS="--flagfile=configs/seatbelt.cfg --layers=2 --beta=6 --free_bits=0" \
#     STEPS=100000 CHUNK=5000 launch/learning_curve.sh
# Environment: ROOT (runs/curves), NAME, FLAGS (the run's flags), STEPS (50000), CHUNK (5000), MIG_POINTS (10000),
# PYTHON (python).
# Do not edit the checkout it runs from while it runs: TensorFlow's autograph re-reads Python source when it
# traces a function, so an edit (even one that only shifts line numbers) can break a run mid-campaign (seen: a
# hierarchy's evaluation traced the wrong method). Run long campaigns from a frozen copy, e.g.
#   git worktree add ../campaign HEAD && cd ../campaign && ROOT=$OLDPWD/runs/<folder> PYTHON=... launch/<script>
set -euo pipefail
ROOT=${ROOT:-runs/curves}
NAME=${NAME:?set NAME (the run folder under ROOT)}
FLAGS=${FLAGS:?set FLAGS (e.g. --flagfile=configs/beta_tcvae.cfg --beta=6)}
STEPS=${STEPS:-50000}
CHUNK=${CHUNK:-5000}
MIG_POINTS=${MIG_POINTS:-10000}
PYTHON=${PYTHON:-python}
workdir="$ROOT/$NAME"
curve="$workdir/curve.jsonl"
mkdir -p "$ROOT/logs"
for (( step = CHUNK; step <= STEPS; step += CHUNK )); do
  if [ -f "$curve" ] && grep -q "\"step\": $step," "$curve"; then continue; fi
  # shellcheck disable=SC2086
  "$PYTHON" -m seatbelt_tf.launch $FLAGS --workdir="$workdir" --train_steps="$step" --verbose=2 \
    >> "$ROOT/logs/$NAME.train.log" 2>&1 || { echo "failed: see $ROOT/logs/$NAME.train.log" >&2; exit 1; }
  "$PYTHON" -m seatbelt_tf.launch --flagfile="$workdir/flags.cfg" --mode=evaluate --mig_method=histogram \
    --mig_points="$MIG_POINTS" --eval_images=200 --verbose=0 >> "$ROOT/logs/$NAME.evaluate.log" 2>&1 \
    || { echo "failed: see $ROOT/logs/$NAME.evaluate.log" >&2; exit 1; }
  "$PYTHON" - "$workdir" "$curve" <<'PY'
import json, os, sys
workdir, curve = sys.argv[1:]
results = json.load(open(os.path.join(workdir, "results.json")))
evaluation = json.load(open(os.path.join(workdir, "evaluation", "evaluation.json")))
mig = evaluation.get("mig", {})
line = {"step": results["step"], "images_seen": results["num_examples_seen"], "epochs": results.get("epochs"),
        "elbo": results["elbo"], "kl": results["kl"], "tc": results["tc"], "mig_histogram": mig.get("mig"),
        "mig_per_factor": mig.get("per_factor")}
with open(curve, "a") as f:  # one line per step; a crash mid-write leaves at most a partial last line
  f.write(json.dumps(line, sort_keys=True) + "\n")
print(json.dumps({k: line[k] for k in ("step", "epochs", "elbo", "mig_histogram")}))
PY
done
