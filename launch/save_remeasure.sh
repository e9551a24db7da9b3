#!/usr/bin/env bash
# Copies the finished runs' results of a campaign folder into the repository (results.json per run, no
# checkpoints) and regenerates the tables: docs/remeasure/<run>.results.json, elbo_vs_beta.md and, once attacks
# exist, robustness.md.   launch/save_remeasure.sh [ROOT=runs/remeasure] [OUT=docs/remeasure]
set -euo pipefail
ROOT=${ROOT:-runs/remeasure}
OUT=${OUT:-docs/remeasure}
PYTHON=${PYTHON:-python}
here=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$OUT"
for run in "$ROOT"/*/; do
  name=$(basename "$run")
  [ -f "$run/results.json" ] && cp "$run/results.json" "$OUT/$name.results.json" && cp "$run/config.json" "$OUT/$name.config.json"
  [ -f "$run/attacks/attack_results.json" ] && cp "$run/attacks/attack_results.json" "$OUT/$name.attack_results.json"
done
# Each table is written beside its file and renamed over it: a failed table never leaves a truncated one.
"$PYTHON" "$here/launch/collect_results.py" "$ROOT" > "$OUT/elbo_vs_beta.md.tmp" \
  || { rm -f "$OUT/elbo_vs_beta.md.tmp"; exit 1; }
mv "$OUT/elbo_vs_beta.md.tmp" "$OUT/elbo_vs_beta.md"
if "$PYTHON" "$here/launch/collect_attacks.py" "$ROOT" > "$OUT/robustness.md.tmp" 2> /dev/null; then
  mv "$OUT/robustness.md.tmp" "$OUT/robustness.md"
else
  rm -f "$OUT/robustness.md.tmp"  # no attacks under ROOT yet: the committed table, if any, stays
fi
ls "$OUT"
