#!/usr/bin/env bash
# The quickstart: a miniature of the whole paper on procedural dSprites, in about 7-12 minutes on 2 CPU cores.
# Four small models (a vanilla VAE, a beta-TCVAE at beta = 6, Seatbelt-VAEs with L = 2 at beta = 1 and 6; MLP
# networks, 700 steps each, 5,000 images held out), each evaluated (ELBO, MIG, noise robustness, samples, traversals) and attacked (latent
# and output attacks on PAIRS pairs x LAMBDAS lambdas), then one report: runs/mini_paper/report/report.md.
# Every setting of launch/paper.sh can be overridden from the environment, e.g. STEPS=3000 NETWORK=conv.
set -euo pipefail
export ROOT=${ROOT:-runs/mini_paper}
export RUNS=${RUNS:-"vae:1:1 beta_tcvae:1:6 seatbelt:2:1 seatbelt:2:6"}
export STEPS=${STEPS:-700}
export NETWORK=${NETWORK:-mlp}
export PAIRS=${PAIRS:-2}
export LAMBDAS=${LAMBDAS:-6}
export MIG_POINTS=${MIG_POINTS:-5000}
export EVAL_IMAGES=${EVAL_IMAGES:-500}
export EXTRA=${EXTRA:---eval_examples=5000}  # a smaller held-out split than the configs' 10,000: faster evaluations
exec "$(dirname "$0")/paper.sh"
