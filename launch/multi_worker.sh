#!/usr/bin/env bash
# One worker of a multi-worker training run (tf.distribute.MultiWorkerMirroredStrategy). Run the same command on
# every worker with its own INDEX; WORKERS lists every worker's host:port (the same list everywhere). The chief is
# worker 0: it writes the workdir (checkpoints, results.json, TensorBoard); the others write their share of each
# collective checkpoint save under <workdir>/workers/ and delete it at the end. The workdir must be on a shared file
# system. --batch_size is the global batch, split evenly over the workers.
#
#   worker 0:  WORKERS=hostA:23456,hostB:23456 INDEX=0 launch/multi_worker.sh --flagfile=configs/seatbelt.cfg --workdir=runs/sb
#   worker 1:  WORKERS=hostA:23456,hostB:23456 INDEX=1 launch/multi_worker.sh --flagfile=configs/seatbelt.cfg --workdir=runs/sb
#
# Environment: WORKERS, INDEX, PYTHON (python).
set -euo pipefail
WORKERS=${WORKERS:?set WORKERS=host:port,host:port,... (every worker, the same list on each)}
INDEX=${INDEX:?set INDEX to this worker position in WORKERS (0 is the chief)}
cluster=$(printf '"%s",' ${WORKERS//,/ })
export TF_CONFIG="{\"cluster\": {\"worker\": [${cluster%,}]}, \"task\": {\"type\": \"worker\", \"index\": $INDEX}}"
echo "TF_CONFIG=$TF_CONFIG"
# --strategy after the caller's flags: a workdir's flags.cfg records one, and absl keeps the last value.
exec "${PYTHON:-python}" -m seatbelt_tf.launch "$@" --strategy=multi_worker
