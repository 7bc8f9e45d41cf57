#!/usr/bin/env bash
# install_mmcv.sh PYTHON CONSTRAINTS
# Install mmcv (the version CONSTRAINTS pins) with its compiled ops into
# PYTHON's environment, compiled against the torch already there. PyPI has
# only mmcv's source, and OpenMMLab's prebuilt wheels stop at torch 2.1
# (and live off PyPI), so it is compiled: 11-30 minutes on two cores.
#
# Each build is kept in its own folder, named by mmcv, torch and Python
# version, under MMCV_WHEEL_CACHE (default ~/.cache/mmdet_lossplug/mmcv),
# and only a wheel from that folder is installed. pip's own wheel cache is
# bypassed: it keys a built wheel on mmcv's source alone, so it hands a
# wheel compiled against one torch to another (an ABI mismatch at import).
# The result is checked by importing mmcv.ops against this torch.
set -euo pipefail
PY=$1
CONSTRAINTS=$2
VERSION=$(sed -n 's/^mmcv==\([^ ]*\).*/\1/p' "$CONSTRAINTS")
test -n "$VERSION" || { echo "install_mmcv.sh: no mmcv==VERSION in \
$CONSTRAINTS" >&2; exit 1; }
CACHE=${MMCV_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/mmdet_lossplug/mmcv}
KEY=$("$PY" -c 'import sys, torch; print(f"torch{torch.__version__}-"
    f"cp{sys.version_info[0]}{sys.version_info[1]}")')
DIR="$CACHE/mmcv$VERSION-$KEY"
if ! compgen -G "$DIR/mmcv-$VERSION-*.whl" >/dev/null; then
    echo "install_mmcv.sh: compiling mmcv $VERSION against $KEY into $DIR"
    rm -rf "$DIR" "$DIR.partial"
    mkdir -p "$DIR.partial"
    MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-2} "$PY" -m pip wheel --no-deps \
        --no-cache-dir --no-build-isolation -w "$DIR.partial" \
        "mmcv==$VERSION"
    mv "$DIR.partial" "$DIR"  # whole or not at all
fi
"$PY" -m pip install -c "$CONSTRAINTS" --only-binary=mmcv \
    --find-links "$DIR" "mmcv==$VERSION"
"$PY" -c 'import mmcv, mmcv.ops, torch; print("install_mmcv.sh: mmcv",
    mmcv.__version__, "with its ops on torch", torch.__version__)'
