#!/usr/bin/env bash
# Train one run from a flagfile, then print its held-out results.
#   launch/train.sh configs/quickstart.cfg [--flag=value ...]
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 FLAGFILE [--flag=value ...]" >&2
  exit 2
fi
flagfile=$1
shift
python -m seatbelt_tf.launch --flagfile="$flagfile" --mode=train "$@"
