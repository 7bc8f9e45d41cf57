#!/usr/bin/env bash
# Step a of the GPU command (docs/gpu.md): the DR op alone, no mmcv or
# mmdet, on a machine with a CUDA GPU and a CUDA PyTorch. About 5 minutes
# on one H200, estimated from its parts (each capped, and all within
# STEP_SECONDS, to fit one 10-minute command):
#   build      the extension in place, with CUDA for this GPU      ~1 min
#   tests      the op's CUDA tests (float64 checks at RetinaNet
#              scale, > 256 chunks, one anchor a chunk, C = 1, ...) ~1.5 min
#   memcheck,  compute-sanitizer over tools/gpu/dr_op_cases.py     ~1 min
#   racecheck
#   ncu        speed of light, executed instructions and DRAM
#              bytes of each kernel at RetinaNet scale             ~0.5 min
#   kernels    the kernels alone vs the whole call, CUDA events,
#              against a copy (fp32/bf16, B = 2/8, C = 80/1)        ~1 min
#   benchmark  tools/analysis/benchmark_dr_op.py against copy
#              bandwidth (fp32/fp16/bf16, B = 2 and 8)             ~1 min
# Every log, and the report step-a.md, is written under $OUT as it goes.
# With .gpu-bundle/ carried, mmcv's build for step b starts in the
# background first (tools/gpu/gpu_site.sh).
#
#   OUT=DIR tools/gpu/step_a_op.sh [PYTHON]
set -uo pipefail
PYTHON=${1:-python3}
OUT=${OUT:-gpu-out}
REPORT=$OUT/step-a.md
. "$(dirname "$0")/report.sh"
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1

if [ -d .gpu-bundle ] && [ ! -f .gpu-site/.installed ]; then
    setsid nohup tools/gpu/gpu_site.sh "$PYTHON" > .gpu-site.log 2>&1 &
    site_note='mmcv for step b: building in the background (.gpu-site.log).'
else
    site_note='mmcv for step b: not started (no .gpu-bundle/, or built).'
fi
device=$("$PYTHON" -c 'import torch
print(torch.cuda.get_device_name(), "| torch", torch.__version__,
      "| CUDA", torch.version.cuda)')
{
    echo "# GPU command, step a (the DR op): $(date -u '+%F %H:%M UTC')"
    echo
    echo "$device; nvcc $(nvcc --version | grep -o 'release [0-9.]*')."
    echo "$site_note"
} > "$REPORT"

# The torch wheel's NVIDIA packages carry headers its own headers include.
CPATH=$("$PYTHON" -c 'import glob, sysconfig; print(":".join(glob.glob(
    sysconfig.get_paths()["purelib"] + "/nvidia/cu*/include")))')
arch=$("$PYTHON" -c 'import torch
print("%d.%d" % torch.cuda.get_device_capability())')
part build 150 env CPATH="$CPATH" FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$arch" \
    MAX_JOBS=4 "$PYTHON" setup.py build_ext --inplace &&
    part has-cuda 30 "$PYTHON" -c 'import mmdet_lossplug._ext as e
assert e.has_cuda(), "_ext has no CUDA kernel"' || {
    excerpt build 'error|Error'
    cat "$REPORT"
    exit 1
}

part tests 180 "$PYTHON" -m pytest tests/test_ops -k cuda -q -rs \
    -p no:cacheprovider
excerpt tests '^(SKIPPED|FAILED|ERROR)|passed|failed'

for tool in memcheck racecheck; do
    part "$tool" 75 compute-sanitizer --tool "$tool" --error-exitcode 99 \
        "$PYTHON" tools/gpu/dr_op_cases.py
    excerpt "$tool" 'ERROR SUMMARY|RACECHECK SUMMARY|Error|WRONG|hazard'
done

# Executed instructions (warp level: x 32 / elements is the per-element
# figure the SASS check estimates), DRAM bytes and time of each kernel.
part ncu 60 ncu --clock-control none --section SpeedOfLight \
    --metrics smsp__inst_executed.sum,dram__bytes_read.sum,dram__bytes_write.sum,gpu__time_duration.sum \
    -k 'regex:chunk_sums|image_stats|grad_kernel' -c 6 \
    "$PYTHON" tools/gpu/dr_op_cases.py --retinanet
excerpt ncu 'chunk_sums|image_stats|grad_kernel|inst_executed|dram__bytes|duration|Throughput'

part kernels 90 "$PYTHON" tools/analysis/benchmark_dr_op.py --device cuda \
    --kernels --iters 50 --batches 2 8 --dtypes float32 bfloat16 \
    --classes 80 1
excerpt kernels '^[#|]'

part benchmark 60 "$PYTHON" tools/analysis/benchmark_dr_op.py \
    --device cuda --repeat 10
excerpt benchmark '^[#|]'

note "" "Step a: $([ "$FAILED" -eq 0 ] && echo 'every part passed' ||
    echo 'a part FAILED (see above)')."
cat "$REPORT"
exit "$FAILED"
