#!/usr/bin/env bash
# The paper's Figure 3 trend on procedural dSprites: the ELBO without beta of beta-TCVAEs against Seatbelt-VAEs
# (and a beta-TC DLGM) trained at beta = 1 and beta = 6. Each run has its own workdir under ROOT, so re-running
# the script resumes unfinished runs and only re-evaluates finished ones; the table (mean and spread over SEEDS)
# is printed at the end.
#   launch/elbo_vs_beta.sh [ROOT=runs/elbo_vs_beta] [STEPS=3000] [BETAS="1 6"] [SEEDS="0 1 2"] [FREE_BITS=0]
set -euo pipefail
ROOT=${ROOT:-runs/elbo_vs_beta}
STEPS=${STEPS:-3000}
BETAS=${BETAS:-"1 6"}
PYTHON=${PYTHON:-python}
SEEDS=${SEEDS:-0}
FREE_BITS=${FREE_BITS:-}  # set: every family trains with these free bits (else each config's own)
RUNS=${RUNS:-"beta_tcvae:1 seatbelt:2 seatbelt:3 seatbelt:4 beta_tcdlgm:3"}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$ROOT"
for seed in $SEEDS; do
for beta in $BETAS; do
  for run in $RUNS; do
    model=${run%%:*}
    layers=${run##*:}
    name="${model}_L${layers}_beta${beta}_seed${seed}"
    extra=(--seed="$seed")
    [ "$model" != beta_tcvae ] && extra+=(--layers="$layers")
    [ -n "$FREE_BITS" ] && extra+=(--free_bits="$FREE_BITS")
    echo "== $name"
    "$PYTHON" -m seatbelt_tf.launch --flagfile="$here/configs/$model.cfg" --workdir="$ROOT/$name" \
      --beta="$beta" --train_steps="$STEPS" --verbose=2 "${extra[@]}" > "$ROOT/$name.log" 2>&1 \
      || { echo "failed: see $ROOT/$name.log" >&2; exit 1; }
  done
done
done
"$PYTHON" "$here/launch/collect_results.py" "$ROOT"
