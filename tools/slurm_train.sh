#!/usr/bin/env bash
# Training on a Slurm cluster (environment: see slurm_launch.sh):
#   tools/slurm_train.sh PARTITION JOB_NAME CONFIG WORK_DIR [train.py args]
set -euo pipefail
TOOLS=$(cd "$(dirname "$0")" && pwd)
exec "$TOOLS/slurm_launch.sh" "$1" "$2" "$TOOLS/train.py" "$3" \
    --work-dir="$4" "${@:5}"
