#!/usr/bin/env bash
# An attack sweep (--mode=attack) split over SHARDS processes: shard i attacks pairs i, i + SHARDS, ... and writes
# <workdir>/attacks/shards/<i>_of_<SHARDS>/; then one merge writes attacks/attack_results.json,
# adversarial_inputs.npz and the figures, exactly as a single process would have (same pairs, same fixed noise).
# By default every shard runs here, in parallel; on several machines (a shared workdir), run each shard with
# INDEX=i and MERGE=0, then once with MERGE_ONLY=1.
#
#   SHARDS=4 launch/attack_shards.sh --flagfile=runs/seatbelt/flags.cfg --attack_pairs=10 --attack_lambdas=50
# Environment: SHARDS (2), INDEX (run only this shard), MERGE (1: merge after the local shards), MERGE_ONLY, PYTHON.
set -euo pipefail
SHARDS=${SHARDS:-2}
PYTHON=${PYTHON:-python}
# --mode=attack after the caller's flags: a workdir's flags.cfg records --mode=train, and absl keeps the last value.
run() { "$PYTHON" -m seatbelt_tf.launch "$@" --mode=attack --attack_shards="$SHARDS"; }
if [ -z "${MERGE_ONLY:-}" ]; then
  if [ -n "${INDEX:-}" ]; then indices=$INDEX; else indices=$(seq 0 $((SHARDS - 1))); fi
  pids=()
  for i in $indices; do
    run "$@" --attack_shard_index="$i" > "attack_shard_$i.log" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do wait "$pid" || { echo "a shard failed: see attack_shard_*.log" >&2; exit 1; }; done
fi
if [ "${MERGE:-1}" = 1 ] || [ -n "${MERGE_ONLY:-}" ]; then
  run "$@" --attack_merge
fi
