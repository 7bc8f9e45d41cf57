#!/usr/bin/env bash
# torchrun one of our tools on NPROC processes: dist_launch.sh NPROC SCRIPT [args]
# Used by dist_train.sh and dist_test.sh. Without GPUs the processes use the
# gloo backend (tools/launch_utils.py).
set -euo pipefail
NPROC=$1
SCRIPT=$2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHONPATH="$ROOT:${PYTHONPATH:-}" \
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" "$SCRIPT" "${@:3}" --launcher pytorch
