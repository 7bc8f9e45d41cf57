#!/usr/bin/env bash
# Installs what step b needs beside the device image's PyTorch, from the
# bundle `make gpu-bundle` made (carried as .gpu-bundle/), into .gpu-site/:
# the wheels, then mmcv compiled with CUDA for this GPU (about 5 minutes on
# 16 cores). Idempotent, and one at a time: step a starts it in the
# background (setsid) for step b, which runs it again and so waits for it.
#
#   tools/gpu/gpu_site.sh PYTHON
set -euo pipefail
PYTHON=$1
SITE=.gpu-site
exec 9> .gpu-site.lock
flock 9
if [ -f "$SITE/.installed" ]; then
    echo "gpu_site: $SITE already installed"
    exit 0
fi
test -d .gpu-bundle || {
    echo "gpu_site: no .gpu-bundle/: run 'make gpu-bundle' where there is" \
        "a network and carry it" >&2
    exit 1
}
rm -rf "$SITE"
"$PYTHON" -m pip install --no-index --no-deps --no-compile --target "$SITE" \
    .gpu-bundle/*.whl
arch=$("$PYTHON" -c 'import torch
print("%d.%d" % torch.cuda.get_device_capability())')
PYTHONPATH=$PWD/$SITE MMCV_WITH_OPS=1 FORCE_CUDA=1 \
    TORCH_CUDA_ARCH_LIST=$arch MAX_JOBS=${MAX_JOBS:-12} \
    "$PYTHON" -m pip install --no-index --no-deps --no-build-isolation \
    --no-compile --target "$SITE" .gpu-bundle/mmcv-*.tar.gz
touch "$SITE/.installed"
echo "gpu_site: installed into $SITE"
