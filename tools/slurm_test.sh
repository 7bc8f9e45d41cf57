#!/usr/bin/env bash
# Testing on a Slurm cluster (environment: see slurm_launch.sh):
#   tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args]
set -euo pipefail
TOOLS=$(cd "$(dirname "$0")" && pwd)
exec "$TOOLS/slurm_launch.sh" "$1" "$2" "$TOOLS/test.py" "$3" "$4" "${@:5}"
