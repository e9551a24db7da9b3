#!/usr/bin/env bash
# The paper's robustness comparison (Figures 5-7) on procedural dSprites: a vanilla VAE, a beta-TCVAE (beta = 6) and
# a Seatbelt-VAE (L = 4, beta = 6), each trained from configs/ (base.cfg shared), then attacked with the full
# protocol (PAIRS pairs x LAMBDAS lambdas, latent attack on all layers and output attack). One workdir per model
# under ROOT (one per seed of SEEDS); re-running resumes unfinished training and skips attacks already made on the
# latest checkpoint (a run trained on with a larger STEPS is attacked again). The table
# (pooled over seeds, with each seed's median) is printed at the end.
#   launch/robustness.sh [ROOT=runs/robustness] [STEPS=3000] [PAIRS=10] [LAMBDAS=50] [SEEDS="0 1 2"] [FREE_BITS=0]
set -euo pipefail
ROOT=${ROOT:-runs/robustness}
STEPS=${STEPS:-3000}
PAIRS=${PAIRS:-10}
LAMBDAS=${LAMBDAS:-50}
PYTHON=${PYTHON:-python}
SEEDS=${SEEDS:-0}
FREE_BITS=${FREE_BITS:-}  # set: every family trains with these free bits (else each config's own)
RUNS=${RUNS:-"vae:1:1 beta_tcvae:1:6 seatbelt:4:6"}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$ROOT"
for seed in $SEEDS; do
for run in $RUNS; do
  IFS=: read -r model layers beta <<< "$run"
  name="${model}_L${layers}_beta${beta}_seed${seed}"
  extra=(--seed="$seed")
  case "$model" in seatbelt|beta_tcdlgm) extra+=(--layers="$layers") ;; esac
  [ -n "$FREE_BITS" ] && extra+=(--free_bits="$FREE_BITS")
  echo "== $name: train"
  "$PYTHON" -m seatbelt_tf.launch --flagfile="$here/configs/$model.cfg" --workdir="$ROOT/$name" \
    --beta="$beta" --train_steps="$STEPS" --verbose=2 "${extra[@]}" > "$ROOT/$name.train.log" 2>&1 \
    || { echo "failed: see $ROOT/$name.train.log" >&2; exit 1; }
  # Attacked already, at this checkpoint (a run trained on since its attack is attacked again).
  if [ "$ROOT/$name/attacks/attack_results.json" -nt "$ROOT/$name/checkpoints/checkpoint" ]; then
    echo "== $name: attacked already"; continue
  fi
  echo "== $name: attack"
  "$PYTHON" -m seatbelt_tf.launch --flagfile="$ROOT/$name/flags.cfg" --mode=attack --attack_pairs="$PAIRS" \
    --attack_lambdas="$LAMBDAS" --attack_modes=latent,output --attack_layers=all --verbose=0 \
    > "$ROOT/$name.attack.log" 2>&1 || { echo "failed: see $ROOT/$name.attack.log" >&2; exit 1; }
done
done
"$PYTHON" "$here/launch/collect_attacks.py" "$ROOT"
