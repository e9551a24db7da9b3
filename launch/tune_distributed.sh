#!/usr/bin/env bash
# One process of a distributed Keras Tuner search (--mode=tune) using keras-tuner's chief/worker protocol: the chief
# runs the oracle (it hands out trials and records results; it trains nothing), every worker trains trials. All
# processes run the same flags and share --tune_directory (a shared file system: the workers write their trial
# checkpoints there, the chief writes the oracle state); re-running the chief resumes the search.
#
#   chief (machine A):   ROLE=chief  ORACLE_IP=<A's address> launch/tune_distributed.sh --flagfile=configs/tune.cfg
#   worker i (any host): ROLE=worker INDEX=i ORACLE_IP=<A's address> launch/tune_distributed.sh --flagfile=configs/tune.cfg
#
# Environment: ROLE (chief|worker), INDEX (worker number, 0...), ORACLE_IP, ORACLE_PORT (8000), PYTHON (python).
# keras-tuner reads KERASTUNER_TUNER_ID ("chief" or "tuner<i>"), KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT.
set -euo pipefail
ROLE=${ROLE:?set ROLE=chief or ROLE=worker}
ORACLE_IP=${ORACLE_IP:?set ORACLE_IP to the address of the chief}
export KERASTUNER_ORACLE_IP=$ORACLE_IP
export KERASTUNER_ORACLE_PORT=${ORACLE_PORT:-8000}
case "$ROLE" in
  chief) export KERASTUNER_TUNER_ID=chief ;;
  worker) export KERASTUNER_TUNER_ID="tuner${INDEX:?set INDEX=0, 1, ... for each worker}" ;;
  *) echo "ROLE must be chief or worker, not $ROLE" >&2; exit 2 ;;
esac
echo "keras-tuner $KERASTUNER_TUNER_ID, oracle at $KERASTUNER_ORACLE_IP:$KERASTUNER_ORACLE_PORT"
# --mode=tune after the caller's flags: a workdir's flags.cfg records --mode=train, and absl keeps the last value.
exec "${PYTHON:-python}" -m seatbelt_tf.launch "$@" --mode=tune
