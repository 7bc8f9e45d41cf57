#!/usr/bin/env bash
# torchrun one of our tools on NPROC processes of this node:
#   dist_launch.sh NPROC SCRIPT [args]
# Used by dist_train.sh and dist_test.sh. The tools import mmdet_lossplug
# as installed (editable or not, with its compiled op), never the checkout.
# Several nodes: run it on each with NNODES, NODE_RANK (0 .. NNODES - 1),
# MASTER_ADDR (node 0's address) and PORT, as MMDetection's own scripts
# read them. Without GPUs the processes use the gloo backend
# (tools/launch_utils.py). PYTHON picks the interpreter (default: python).
set -euo pipefail
NPROC=$1
SCRIPT=$2
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" "$SCRIPT" "${@:3}" --launcher pytorch
