#!/usr/bin/env bash
# Step b of the GPU command (docs/gpu.md), right after step a on the same
# machine: mmcv and the rest from the carried bundle (already built by step
# a's background job when the machine stayed warm; else about 5 minutes
# more), mmdet_lossplug installed editable (its extension as step a built
# it), the whole test suite with its CUDA cases, and the RetinaNet R50-FPN
# 800x1333 iteration comparison with and without AMP. About 6 minutes with
# mmcv built, estimated from its parts; every log, and the report
# step-b.md, is written under $OUT as it goes.
#
#   OUT=DIR tools/gpu/step_b_suite.sh [PYTHON]
set -uo pipefail
PYTHON=${1:-python3}
OUT=${OUT:-gpu-out}
REPORT=$OUT/step-b.md
. "$(dirname "$0")/report.sh"
export PYTHONUNBUFFERED=1
echo "# GPU command, step b (suite, iteration): $(date -u '+%F %H:%M UTC')" \
    > "$REPORT"

part site 540 tools/gpu/gpu_site.sh "$PYTHON" || {
    cp .gpu-site.log "$OUT/site-background.log" 2> /dev/null
    excerpt site 'error|Error'
    cat "$REPORT"
    exit 1
}
export PYTHONPATH=$PWD/.gpu-site
# Editable, as a user installs it (tests/test_tools/test_train_test.py
# runs MMDetection's own train.py without the checkout on the path), with
# the extension step a built in place: not built again (OPS=0), unless
# the machine is a fresh one.
if ! "$PYTHON" -c 'import mmdet_lossplug._ext as e; assert e.has_cuda()' \
        2> /dev/null; then
    CPATH=$("$PYTHON" -c 'import glob, sysconfig; print(":".join(glob.glob(
        sysconfig.get_paths()["purelib"] + "/nvidia/cu*/include")))')
    part build 240 env CPATH="$CPATH" FORCE_CUDA=1 MAX_JOBS=16 \
        "$PYTHON" setup.py build_ext --inplace
fi
part install 120 env MMDET_LOSSPLUG_WITH_OPS=0 "$PYTHON" -m pip install \
    --no-index --no-deps --no-build-isolation -e .
versions=$("$PYTHON" -c 'import torch, mmcv, mmdet, mmengine
import mmdet_lossplug._ext as e
print(f"{torch.cuda.get_device_name()}, torch {torch.__version__} (CUDA "
      f"{torch.version.cuda}), mmcv {mmcv.__version__}, mmdet "
      f"{mmdet.__version__}, mmengine {mmengine.__version__}, _ext with "
      f"CUDA: {e.has_cuda()}")' 2>&1 | tail -n 1)
note "" "$versions"

part suite 330 "$PYTHON" -m pytest tests -q -rs -p no:cacheprovider
excerpt suite '^(SKIPPED|FAILED|ERROR)|passed|failed'

part iteration 200 "$PYTHON" tools/analysis/benchmark_iteration.py \
    --device cuda --warmup 3 --iters 10
excerpt iteration '^[#|]|sync'

note "" "Step b: $([ "$FAILED" -eq 0 ] && echo 'every part passed' ||
    echo 'a part FAILED (see above)')."
cat "$REPORT"
exit "$FAILED"
