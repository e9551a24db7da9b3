#!/usr/bin/env bash
# The paper's experiments end to end on procedural dSprites: train a grid of models from configs/, evaluate each
# (--mode=evaluate: ELBO without beta, MIG, noise robustness, weight norms, samples, traversals), attack each
# (--mode=attack: latent attack on all layers and output attack, PAIRS pairs x LAMBDAS lambdas), and write one
# report over all of them (--mode=report: ROOT/report/report.md and its figures).
#
# Attacks: the latent attack on all layers (eq. 15) and the output attack (eq. 12); a beta-TC DLGM's latent attack
# also on z^1 alone (eq. 14, the paper's for that family).
# The grid: every family in HIERARCHIES at every L in LAYERS and beta in BETAS (Figures 3, 6-7), beta-TCVAEs at
# every |z| in LATENT_DIMS and beta in BETAS (the beta x |z| grid of Figure J.35) and the vanilla VAE; or an explicit
# RUNS list of family:L:beta[:latent_dim] entries. One workdir per model under ROOT. Re-running resumes unfinished
# training and skips every stage whose outputs are newer than the run's latest checkpoint; re-running with a
# larger STEPS trains every run on, after keeping its evaluation at the old budget in <workdir>/milestones/
# (launch/milestone.py); a run whose checkpoint is already past STEPS is left as it is (not evaluated off budget).
#
#   launch/paper.sh                                  # the full grid (hours on CPU; use a GPU, JOBS > 1 there)
#   RUNS="vae:1:1 seatbelt:4:6" STEPS=500 launch/paper.sh
# Environment: ROOT (runs/paper), STEPS (3000), PAIRS (10), LAMBDAS (50), BETAS ("1 2 4 6 8 10"), LAYERS
# ("1 2 3 4 5"), HIERARCHIES ("seatbelt beta_tcdlgm"), LATENT_DIMS ("6 10 20"), NETWORK (conv), MIG_POINTS (10000),
# MIG_METHOD (histogram; both: also Chen et al.'s exact protocol), EVAL_IMAGES (1000), SEEDS (unset: one run per
# entry, named without a seed; "0 1 2": one workdir per seed, <name>_seed<s>), ATTACK (1; 0 skips the attacks),
# EXTRA (more flags for every stage), JOBS (1: runs one at a time; more: that many runs at once, for a machine with
# cores or a GPU to spare, each process taking GPU memory as it needs it), RECORDED (run names, e.g.
# vae_L1_beta1_seed0, whose results a campaign's summary already holds at this budget: skipped whole, workdir or
# not; launch/reproduce_dsprites.sh sets it), LAYER_MIG (a folder: each hierarchy's MIG of every layer, exact
# protocol on MIG_POINTS grid points, 0 the full grid, written there as <name>_step<step>.json by
# launch/layer_mig.py after its attacks, or its evaluation where it is not attacked; unset: not computed), AFTER_CELL
# (a bash command run after each cell that was not skipped, after each evaluation, and after a hierarchy's attacks
# where its every-layer MIG follows, e.g. a campaign's summary, so a finished cell is recorded before the next one
# starts, a cell's evaluation before its attacks, and its attacks before its every-layer MIG, which a session's end
# may cut off; with JOBS > 1 one at a time under flock where there is one; its failure stops the script),
# PYTHON (python).
set -euo pipefail
ROOT=${ROOT:-runs/paper}
STEPS=${STEPS:-3000}
PAIRS=${PAIRS:-10}
LAMBDAS=${LAMBDAS:-50}
BETAS=${BETAS:-"1 2 4 6 8 10"}
LAYERS=${LAYERS:-"1 2 3 4 5"}
HIERARCHIES=${HIERARCHIES:-"seatbelt beta_tcdlgm"}
LATENT_DIMS=${LATENT_DIMS:-"6 10 20"}
NETWORK=${NETWORK:-conv}
MIG_POINTS=${MIG_POINTS:-10000}
EVAL_IMAGES=${EVAL_IMAGES:-1000}
MIG_METHOD=${MIG_METHOD:-histogram}
SEEDS=${SEEDS:-}
ATTACK=${ATTACK:-1}
EXTRA=${EXTRA:-}
JOBS=${JOBS:-1}
PYTHON=${PYTHON:-python}
here=$(cd "$(dirname "$0")/.." && pwd)

if [ -z "${RUNS:-}" ]; then
  RUNS="vae:1:1"
  for beta in $BETAS; do
    for family in $HIERARCHIES; do
      for layers in $LAYERS; do RUNS+=" $family:$layers:$beta"; done
    done
    for dim in $LATENT_DIMS; do RUNS+=" beta_tcvae:1:$beta:$dim"; done
  done
fi

mkdir -p "$ROOT/logs"
started=$(date +%s)
logged() {  # logged NAME LOG COMMAND...: runs one command, its output appended to LOG, and stops the script on failure
  # Appended under a dated header: a run trained on (the next budget), resumed after a kill, or attacked again keeps
  # its earlier calls' output (training-health warnings, epoch lines) in the same log.
  local name=$1 log=$2
  shift 2
  echo "  $name, log $(basename "$log") ($(( $(date +%s) - started )) s elapsed)"
  { echo "== $(date -u '+%Y-%m-%d %H:%M:%S') UTC: $name"; "$@"; } >> "$log" 2>&1 ||
    { echo "failed: see $log" >&2; tail -5 "$log" >&2; exit 1; }
}
stage() {  # stage NAME LOG ARGS...: one launcher call (logged), EXTRA's flags last
  local name=$1 log=$2
  shift 2
  # shellcheck disable=SC2086
  logged "$name" "$log" "$PYTHON" -m seatbelt_tf.launch "$@" $EXTRA
}

checkpoint_step() {  # checkpoint_step WORKDIR: the step of WORKDIR's latest checkpoint (ckpt-<step>), or nothing
  sed -n 's/^model_checkpoint_path: "ckpt-\([0-9]*\)"$/\1/p' "$1/checkpoints/checkpoint" 2> /dev/null || true
}

cell() {  # cell SEED RUN NAME WORKDIR: trains, evaluates and attacks one run (each stage skipped where it is done)
  local seed=$1 run=$2 name=$3 workdir=$4 family layers beta dim flags checkpoint at out attacked=0
  IFS=: read -r family layers beta dim <<< "$run"
  flags=(--flagfile="$here/configs/$family.cfg" --beta="$beta" --network="$NETWORK")
  case "$family" in
    seatbelt|beta_tcdlgm) flags+=(--layers="$layers") ;;
  esac
  if [ -n "${dim:-}" ]; then flags+=(--latent_dim="$dim"); fi
  if [ "$seed" != none ]; then flags+=(--seed="$seed"); fi
  echo "== $name"
  at=$(checkpoint_step "$workdir")
  if [ -n "$at" ] && [ "$at" -gt "$STEPS" ]; then  # e.g. the budget probe resumed: never evaluate an off-budget step
    echo "  its checkpoint is at step $at, past STEPS=$STEPS: left as it is (STEPS >= $at trains and evaluates it)"
    return 0
  fi
  if [ -f "$workdir/results.json" ]; then  # a finished run trained on further: keep its evaluation first
    "$PYTHON" "$here/launch/milestone.py" "$workdir" "$STEPS" || { echo "failed: milestone of $workdir" >&2; exit 1; }
  fi
  stage train "$ROOT/logs/$name.train.log" "${flags[@]}" --workdir="$workdir" --train_steps="$STEPS" --verbose=2
  checkpoint="$workdir/checkpoints/checkpoint"
  if [ ! "$workdir/evaluation/evaluation.json" -nt "$checkpoint" ]; then
    stage evaluate "$ROOT/logs/$name.evaluate.log" --flagfile="$workdir/flags.cfg" --mode=evaluate \
      --mig_points="$MIG_POINTS" --mig_method="$MIG_METHOD" --eval_images="$EVAL_IMAGES" --verbose=0
    after_cell  # the evaluation is recorded now, not only once the attacks and the every-layer MIG below are done
  fi
  if [ "$ATTACK" = 1 ] && { [ ! "$workdir/attacks/attack_results.json" -nt "$checkpoint" ] ||
                              ! "$PYTHON" "$here/launch/collect_reproduction.py" --current-attack "$workdir"; }; then
    # The paper's latent attack on a beta-TC DLGM matches z^1 alone (eq. 14: its decoder sees only z^1); every
    # layer (eq. 15) is attacked too, as for every other family. A sweep whose output objective used fewer noise
    # draws than the protocol's (earlier sweeps: one, which the attack overfits) is run again.
    local layer_sets=all
    if [ "$family" = beta_tcdlgm ]; then layer_sets=first,all; fi
    stage attack "$ROOT/logs/$name.attack.log" --flagfile="$workdir/flags.cfg" --mode=attack \
      --attack_pairs="$PAIRS" --attack_lambdas="$LAMBDAS" --attack_modes=latent,output \
      --attack_layers="$layer_sets" --verbose=0
    attacked=1
  fi
  if [ -n "${LAYER_MIG:-}" ] && [[ "$family" == seatbelt || "$family" == beta_tcdlgm ]]; then
    # Where the factors went: J.2 scores z^L alone; this scores every layer at the checkpoint just evaluated.
    at=$(checkpoint_step "$workdir")
    if [ -z "$at" ]; then echo "failed: $workdir has no checkpoint after training" >&2; exit 1; fi
    out="$LAYER_MIG/${name}_step${at}.json"
    if [ ! -f "$out" ]; then
      # The attacks just run are recorded before this diagnostic, which a session's end may cut off (the
      # after_cell that follows the cell records the diagnostic itself).
      if [ "$attacked" = 1 ]; then after_cell; fi
      mkdir -p "$LAYER_MIG"
      logged layer_mig "$ROOT/logs/$name.layer_mig.log" "$PYTHON" "$here/launch/layer_mig.py" "$workdir" "$out" \
        --points="$MIG_POINTS"
    fi
  fi
}

after_cell() {  # runs AFTER_CELL, if set (with JOBS > 1, cells end concurrently: one at a time under a lock)
  if [ -z "${AFTER_CELL:-}" ]; then return 0; fi
  if [ "$JOBS" -gt 1 ] && command -v flock > /dev/null; then
    flock "$ROOT/logs/.after_cell.lock" bash -c "$AFTER_CELL"
  else
    bash -c "$AFTER_CELL"
  fi || { echo "failed: AFTER_CELL ($AFTER_CELL)" >&2; exit 1; }
}

run_name() {  # run_name SEED RUN: prints the run's name and workdir
  local seed=$1 family layers beta dim name
  IFS=: read -r family layers beta dim <<< "$2"
  name="${family}_L${layers}_beta${beta}"
  if [ -n "${dim:-}" ]; then name="${family}_z${dim}_beta${beta}"; fi
  if [ "$seed" != none ]; then name="${name}_seed${seed}"; fi
  echo "$name $ROOT/$name"
}

for run in $RUNS; do  # a typo in the last entry must not wait hours for the entries before it to finish
  if ! [[ "$run" =~ ^(vae|beta_tcvae|beta_tcdlgm|seatbelt):[0-9]+:[0-9]+(\.[0-9]+)?(:[0-9]+)?$ ]] \
      || [ ! -f "$here/configs/${run%%:*}.cfg" ]; then
    echo "RUNS entry '$run' is not family:L:beta[:latent_dim] with a model family (vae, beta_tcvae," \
      "beta_tcdlgm, seatbelt), e.g. seatbelt:2:4 or beta_tcvae:1:6:10" >&2
    exit 2
  fi
done
if [ "$JOBS" -gt 1 ]; then
  export TF_FORCE_GPU_ALLOW_GROWTH=true  # processes sharing a GPU take memory as they need it, not all of it
fi
workdirs=()
failed=0
for seed in ${SEEDS:-none}; do
for run in $RUNS; do
  read -r name workdir < <(run_name "$seed" "$run")
  if [[ " $(echo ${RECORDED:-}) " == *" $name "* ]]; then
    echo "== $name: already in the campaign's summary at this budget (RECORDED): skipped"
    continue
  fi
  workdirs+=("$workdir")
  if [ "$JOBS" -gt 1 ]; then
    while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || failed=1; done
    { cell "$seed" "$run" "$name" "$workdir"; after_cell; } &
  else
    cell "$seed" "$run" "$name" "$workdir"
    after_cell
  fi
done
done
while [ "$(jobs -rp | wc -l)" -gt 0 ]; do wait -n || failed=1; done
if [ "$failed" = 1 ]; then echo "a run failed: see the logs named above" >&2; exit 1; fi
if [ ${#workdirs[@]} = 0 ]; then echo "== no report: every run was skipped"; exit 0; fi
joined=$(IFS=,; echo "${workdirs[*]}")  # (IFS only here: EXTRA below still splits on spaces)
echo "== report"
stage report "$ROOT/logs/report.log" --mode=report --workdir="$ROOT/report" --workdirs="$joined"
echo "Report: $ROOT/report/report.md ($(( $(date +%s) - started )) s in all)"
