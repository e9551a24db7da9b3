#!/usr/bin/env bash
# The paper's dSprites results with seeds (issue 26): Table J.2 (MIG of z^L, L = 2), Figure 3 (held-out ELBO without
# beta against beta) and the robustness claims (Section 5), every cell in its own workdir under ROOT, one per seed.
#
#   launch/reproduce_dsprites.sh                      # the whole campaign (resumable: re-run after any kill)
#   SEEDS=0 STEPS=2000 launch/reproduce_dsprites.sh   # a quick pass
#
# Stages, each skipped where its outputs are newer than the run's latest checkpoint (launch/paper.sh):
#   1. train + evaluate (held-out ELBO; MIG by both protocols, Chen et al.'s exact one and the histogram one) every
#      cell: beta_tcdlgm and seatbelt at L = 2 and beta_tcvae, each at every beta of BETAS;
#   2. train + evaluate + attack (10 pairs x 50 lambdas, latent on all layers and output, both starts, neighbour
#      restarts) the robustness cells: the vanilla VAE, beta_tcvae at ROBUST_BETAS, beta_tcdlgm and seatbelt at
#      L = 2 and 4 and ROBUST_BETAS;
#   3. --mode=report over every cell (ROOT/report/report.md) and docs/reproduction/summary.json
#      (launch/collect_reproduction.py; SUMMARY to write it elsewhere).
# Budget (docs/REPRODUCTION.md records how it was chosen): NETWORK, BATCH, LR, STEPS. The same script runs on a GPU
# machine unchanged (TensorFlow places the work there).
# Environment: ROOT (runs/reproduce), SEEDS ("0 1 2"), BETAS ("1 2 4 6 8 10"), ROBUST_BETAS ("4 8"), NETWORK (conv),
# BATCH (64), LR (0.001), STEPS (30000), PAIRS (10), LAMBDAS (50), MIG_POINTS (0: the full grid), SUMMARY, PYTHON.
# Do not edit the checkout it runs from while it runs: TensorFlow's autograph re-reads Python source when it
# traces a function, so an edit (even one that only shifts line numbers) can break a run mid-campaign (seen: a
# hierarchy's evaluation traced the wrong method). Run long campaigns from a frozen copy, e.g.
#   git worktree add ../campaign HEAD && cd ../campaign && ROOT=$OLDPWD/runs/<folder> PYTHON=... launch/<script>
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
export ROOT=${ROOT:-runs/reproduce}
export SEEDS=${SEEDS:-"0 1 2"}
BETAS=${BETAS:-"1 2 4 6 8 10"}
ROBUST_BETAS=${ROBUST_BETAS:-"4 8"}
export NETWORK=${NETWORK:-conv}
export STEPS=${STEPS:-30000}
export PAIRS=${PAIRS:-10}
export LAMBDAS=${LAMBDAS:-50}
export MIG_POINTS=${MIG_POINTS:-0}
export MIG_METHOD=both
export PYTHON=${PYTHON:-python}
export EXTRA="--batch_size=${BATCH:-64} --learning_rate=${LR:-0.001} --free_bits=0 ${EXTRA:-}"
SUMMARY=${SUMMARY:-$here/docs/reproduction/summary.json}

cells=""
for beta in $BETAS; do cells+=" beta_tcdlgm:2:$beta seatbelt:2:$beta beta_tcvae:1:$beta"; done
robust="vae:1:1"
for beta in $ROBUST_BETAS; do
  robust+=" beta_tcvae:1:$beta"
  for layers in 2 4; do robust+=" beta_tcdlgm:$layers:$beta seatbelt:$layers:$beta"; done
done
echo "== stage 1: train and evaluate ($(wc -w <<< "$cells") cells x seeds $SEEDS)"
RUNS="$cells" ATTACK=0 "$here/launch/paper.sh"
echo "== stage 2: robustness cells ($(wc -w <<< "$robust") cells x seeds $SEEDS)"
RUNS="$robust" ATTACK=1 "$here/launch/paper.sh"
echo "== stage 3: report over every cell, and the summary"
"$PYTHON" -m seatbelt_tf.launch --mode=report --workdir="$ROOT/report" --workdirs="$ROOT" --verbose=0 \
  > "$ROOT/logs/report_all.log" 2>&1 || { echo "failed: see $ROOT/logs/report_all.log" >&2; exit 1; }
"$PYTHON" "$here/launch/collect_reproduction.py" "$ROOT" "$SUMMARY"
