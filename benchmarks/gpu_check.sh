#!/usr/bin/env bash
# One command for a machine with a GPU (under 10 minutes): checks that training and attack ops run on the GPU, then
# prints training throughput (conv and mlp, graph and XLA) and the attack sweep time of each optimizer (lbfgs on
# both backends, scipy, tfp) on a short-trained conv Seatbelt-VAE. Record what it prints in docs/BENCHMARKS.md
# ("GPU check").
#   benchmarks/gpu_check.sh [OUT=runs/gpu_check] [PYTHON=python] [ALLOW_CPU=1: a dry run on a CPU machine, smaller]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
PYTHON=${PYTHON:-python}
OUT=${OUT:-runs/gpu_check}
mkdir -p "$OUT"
if [ -n "${ALLOW_CPU:-}" ]; then
  placement="--allow_cpu"; steps=20; rounds=1; pairs=2; lambdas=4; iters=20
else
  placement=""; steps=300; rounds=3; pairs=10; lambdas=10; iters=100
fi
echo "== 1. device placement"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "(no nvidia-smi)"
"$PYTHON" benchmarks/gpu_placement.py $placement
echo "== 2. training throughput (beta-TCVAE, batch 256; graph and XLA)"
"$PYTHON" benchmarks/train_throughput.py --batch_size=256 --rounds=$rounds --steps=5 --no_torch --tables=backends
echo "== 3. attack sweep: $pairs pairs x $lambdas lambdas, latent attack on all layers, each optimizer"
"$PYTHON" -m seatbelt_tf.launch --flagfile=configs/seatbelt.cfg --workdir="$OUT/seatbelt_L2" --layers=2 \
  --train_steps=$steps --steps_per_epoch=$steps --eval_examples=1000 --verbose=0 > "$OUT/train.log" 2>&1 \
  || { tail -20 "$OUT/train.log"; exit 1; }
"$PYTHON" benchmarks/attack_sweep.py --workdir="$OUT/seatbelt_L2" --pairs=$pairs --lambdas=$lambdas \
  --max_iterations=$iters --optimizers=lbfgs,lbfgs_tf,scipy,tfp
