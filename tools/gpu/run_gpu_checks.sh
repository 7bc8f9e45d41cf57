#!/usr/bin/env bash
# The checks of `make test-gpu` on a machine with a CUDA GPU, from the
# repository root, with PYTHON set up by the Makefile (mmcv built with CUDA,
# mmdet_lossplug's extension built with CUDA): the whole test suite with its
# CUDA cases, the op benchmark (fp32, fp16, bf16; B = 2 and 8) and the
# RetinaNet iteration comparison (with the loss forward's sync check), written
# to a dated report. Exits non-zero if a test failed, after the benchmarks.
#
#   tools/gpu/run_gpu_checks.sh PYTHON [REPORT]
#   (default REPORT: docs/gpu-report-YYYY-MM-DD.md)
set -euo pipefail
PYTHON=$1
REPORT=${2:-docs/gpu-report-$(date -u +%F).md}
LOGS=$(mktemp -d)

"$PYTHON" -c 'import torch; assert torch.cuda.is_available(), "no GPU"'
device=$("$PYTHON" -c 'import torch; print(torch.cuda.get_device_name())')
versions=$("$PYTHON" -c 'import torch, mmcv, mmdet, mmengine
print(f"torch {torch.__version__} (CUDA {torch.version.cuda}), mmcv "
      f"{mmcv.__version__}, mmdet {mmdet.__version__}, mmengine "
      f"{mmengine.__version__}")')

echo "== test suite" >&2
set +e
"$PYTHON" -m pytest tests -q -rs -p no:cacheprovider 2>&1 | tee "$LOGS/tests"
tests_status=${PIPESTATUS[0]}
set -e

echo "== op benchmark" >&2
# One run: fp32, fp16 and bf16 at B = 2 and 8 side by side (its defaults).
echo "\$ python tools/analysis/benchmark_dr_op.py --device cuda --repeat 20"
"$PYTHON" tools/analysis/benchmark_dr_op.py --device cuda --repeat 20 2>&1 \
    | tee "$LOGS/op"

echo "== iteration benchmark" >&2
"$PYTHON" tools/analysis/benchmark_iteration.py --device cuda 2>&1 \
    | tee "$LOGS/iteration"

{
    echo "# GPU report, $(date -u +%F): $device"
    echo
    echo "Written by \`make test-gpu\` (tools/gpu/run_gpu_checks.sh) on"
    echo "$device; $versions."
    echo
    echo "## Test suite (\`pytest tests\`, CUDA cases included)"
    echo
    echo "Exit status $tests_status. Summary, and every skipped case:"
    echo
    echo '```'
    grep -E '^(SKIPPED|FAILED|ERROR)|passed|failed' "$LOGS/tests" || true
    echo '```'
    echo
    echo "## DR expectation op (tools/analysis/benchmark_dr_op.py)"
    echo
    echo '```'
    grep -v -E 'Warning|warn\(' "$LOGS/op" || true
    echo '```'
    echo
    echo "## RetinaNet R50-FPN iteration (tools/analysis/benchmark_iteration.py)"
    echo
    grep -v -E 'Warning|_bootstrap' "$LOGS/iteration" || true
} > "$REPORT"
echo "report: $REPORT" >&2
exit "$tests_status"
