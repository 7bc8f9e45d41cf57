#!/usr/bin/env bash
# Distributed testing: tools/dist_test.sh CONFIG CHECKPOINT NPROC [test.py args]
set -euo pipefail
TOOLS=$(cd "$(dirname "$0")" && pwd)
exec "$TOOLS/dist_launch.sh" "$3" "$TOOLS/test.py" "$1" "$2" "${@:4}"
