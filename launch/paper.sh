#!/usr/bin/env bash
# The paper's experiments end to end on procedural dSprites: train a grid of models from configs/, evaluate each
# (--mode=evaluate: ELBO without beta, MIG, noise robustness, weight norms, samples, traversals), attack each
# (--mode=attack: latent attack on all layers and output attack, PAIRS pairs x LAMBDAS lambdas), and write one
# report over all of them (--mode=report: ROOT/report/report.md and its figures).
#
# The grid: every family in HIERARCHIES at every L in LAYERS and beta in BETAS (Figures 3, 6-7), beta-TCVAEs at
# every |z| in LATENT_DIMS and beta in BETAS (the beta x |z| grid of Figure J.35) and the vanilla VAE; or an explicit
# RUNS list of family:L:beta[:latent_dim] entries. One workdir per model under ROOT. Re-running resumes unfinished
# training and skips every stage whose outputs are newer than the run's latest checkpoint.
#
#   launch/paper.sh                                  # the full grid (hours on CPU; use a GPU or JOBS > 1)
#   RUNS="vae:1:1 seatbelt:4:6" STEPS=500 launch/paper.sh
# Environment: ROOT (runs/paper), STEPS (3000), PAIRS (10), LAMBDAS (50), BETAS ("1 2 4 6 8 10"), LAYERS
# ("1 2 3 4 5"), HIERARCHIES ("seatbelt beta_tcdlgm"), LATENT_DIMS ("6 10 20"), NETWORK (conv), MIG_POINTS (10000),
# MIG_METHOD (histogram; both: also Chen et al.'s exact protocol), EVAL_IMAGES (1000), SEEDS (unset: one run per
# entry, named without a seed; "0 1 2": one workdir per seed, <name>_seed<s>), ATTACK (1; 0 skips the attacks),
# EXTRA (more flags for every stage), PYTHON (python).
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
stage() {  # stage NAME LOG ARGS...: runs one launcher call, its output in LOG, and stops the script on failure
  local name=$1 log=$2
  shift 2
  echo "  $name ($(( $(date +%s) - started )) s elapsed)"
  # shellcheck disable=SC2086
  "$PYTHON" -m seatbelt_tf.launch "$@" $EXTRA > "$log" 2>&1 || { echo "failed: see $log" >&2; tail -5 "$log" >&2; exit 1; }
}

workdirs=()
for seed in ${SEEDS:-none}; do
for run in $RUNS; do
  IFS=: read -r family layers beta dim <<< "$run"
  flags=(--flagfile="$here/configs/$family.cfg" --beta="$beta" --network="$NETWORK")
  name="${family}_L${layers}_beta${beta}"
  case "$family" in
    seatbelt|beta_tcdlgm) flags+=(--layers="$layers") ;;
  esac
  if [ -n "${dim:-}" ]; then
    flags+=(--latent_dim="$dim")
    name="${family}_z${dim}_beta${beta}"
  fi
  if [ "$seed" != none ]; then
    flags+=(--seed="$seed")
    name="${name}_seed${seed}"
  fi
  workdir="$ROOT/$name"
  workdirs+=("$workdir")
  echo "== $name"
  stage train "$ROOT/logs/$name.train.log" "${flags[@]}" --workdir="$workdir" --train_steps="$STEPS" --verbose=2
  checkpoint="$workdir/checkpoints/checkpoint"
  if [ ! "$workdir/evaluation/evaluation.json" -nt "$checkpoint" ]; then
    stage evaluate "$ROOT/logs/$name.evaluate.log" --flagfile="$workdir/flags.cfg" --mode=evaluate \
      --mig_points="$MIG_POINTS" --mig_method="$MIG_METHOD" --eval_images="$EVAL_IMAGES" --verbose=0
  fi
  if [ "$ATTACK" = 1 ] && [ ! "$workdir/attacks/attack_results.json" -nt "$checkpoint" ]; then
    stage attack "$ROOT/logs/$name.attack.log" --flagfile="$workdir/flags.cfg" --mode=attack \
      --attack_pairs="$PAIRS" --attack_lambdas="$LAMBDAS" --attack_modes=latent,output --attack_layers=all \
      --verbose=0
  fi
done
done
joined=$(IFS=,; echo "${workdirs[*]}")  # (IFS only here: EXTRA below still splits on spaces)
echo "== report"
stage report "$ROOT/logs/report.log" --mode=report --workdir="$ROOT/report" --workdirs="$joined"
echo "Report: $ROOT/report/report.md ($(( $(date +%s) - started )) s in all)"
