#!/usr/bin/env bash
# Re-measures docs/RESULTS.md's Figure 3 table and robustness comparison with healthy hierarchies (issue 20):
# every family at free bits 0, seeds 0-2, 3,000 steps (conv, batch 64). Resumable: each run has its own workdir
# under ROOT, finished training is only re-evaluated and finished attacks are skipped, so re-running after a kill
# continues where it stopped. Writes the two tables to ROOT/elbo_vs_beta.md and ROOT/robustness.md.
#   launch/health_remeasure.sh [ROOT=runs/remeasure] [STEPS=3000] [SEEDS="0 1 2"]
# Do not edit the checkout it runs from while it runs: TensorFlow's autograph re-reads Python source when it
# traces a function, so an edit (even one that only shifts line numbers) can break a run mid-campaign (seen: a
# hierarchy's evaluation traced the wrong method). Run long campaigns from a frozen copy, e.g.
#   git worktree add ../campaign HEAD && cd ../campaign && ROOT=$OLDPWD/runs/<folder> PYTHON=... launch/<script>
set -euo pipefail
ROOT=${ROOT:-runs/remeasure}
STEPS=${STEPS:-3000}
SEEDS=${SEEDS:-"0 1 2"}
PYTHON=${PYTHON:-python}
here=$(cd "$(dirname "$0")/.." && pwd)
export ROOT STEPS PYTHON FREE_BITS=0
for seed in $SEEDS; do  # seed by seed, so an interrupted campaign leaves whole seeds behind
  SEEDS="$seed" BETAS="1 6" RUNS="beta_tcvae:1 seatbelt:2 seatbelt:4 beta_tcdlgm:2" \
    "$here/launch/elbo_vs_beta.sh" > /dev/null
done
"$PYTHON" "$here/launch/collect_results.py" "$ROOT" > "$ROOT/elbo_vs_beta.md.tmp" && mv "$ROOT/elbo_vs_beta.md.tmp" "$ROOT/elbo_vs_beta.md"
# The beta = 1 beta-TCVAE is the vanilla VAE (its objective is the plain ELBO); the runs above are reused.
for seed in $SEEDS; do
  SEEDS="$seed" RUNS="beta_tcvae:1:1 beta_tcvae:1:6 seatbelt:4:6" "$here/launch/robustness.sh" > /dev/null
done
"$PYTHON" "$here/launch/collect_attacks.py" "$ROOT" > "$ROOT/robustness.md.tmp" && mv "$ROOT/robustness.md.tmp" "$ROOT/robustness.md"
cat "$ROOT/elbo_vs_beta.md" "$ROOT/robustness.md"
