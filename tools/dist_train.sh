#!/usr/bin/env bash
# Distributed training: tools/dist_train.sh CONFIG NPROC [train.py args]
set -euo pipefail
TOOLS=$(cd "$(dirname "$0")" && pwd)
exec "$TOOLS/dist_launch.sh" "$2" "$TOOLS/train.py" "$1" "${@:3}"
