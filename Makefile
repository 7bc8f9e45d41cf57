# The two commands of the README:
#   make run   - set up .venv (idempotent) and run the loss comparison on
#                the NEON tree-crown tiles (data from requirements/data.txt)
#   make test  - set up .venv if needed, check style, compile the extension
#                with CUDA against a second torch and run the op's tests
#                with it (cuda-build), run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CSRC := $(wildcard mmdet_lossplug/csrc/*.* mmdet_lossplug/csrc/*/*.*)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: all install run test lint cuda-build gpu-bundle test-gpu

all: run

# torchvision's ImageNet MobileNetV2 (requirements/data.txt) as an mmdet
# backbone checkpoint, where configs/neon_trees load it; made once (a new
# venv does not redo it), and written whole or not at all.
PRETRAINED := data/pretrained/mobilenetv2_torchvision-imagenet_mmdet.pth

install: $(STAMP) $(PRETRAINED)

# torch first, then mmcv compiled against it (about 10 minutes on 2 cores;
# pip's wheel cache makes it once per machine), then us and the rest.
# requirements/constraints.txt pins the exact stack (setup.cfg has ranges).
$(STAMP): setup.cfg setup.py requirements/constraints.txt \
        requirements/build.txt requirements/mmcv.txt requirements/data.txt \
        $(CSRC)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements/build.txt
	MMCV_WITH_OPS=1 MAX_JOBS=$${MAX_JOBS:-2} \
	    $(PY) -m pip install --no-build-isolation -r requirements/mmcv.txt
	$(PY) -m pip install --no-build-isolation \
	    -c requirements/constraints.txt -e '.[tests]'
	$(PY) -m pip install --no-deps -r requirements/data.txt
	$(PY) -c 'import mmcv.ops, mmdet, mmdet_lossplug'
	touch $@

$(PRETRAINED): | $(STAMP)
	$(PY) tools/model_converters/torchvision_mobilenet_v2_to_mmdet.py $@

run: install
	$(PY) tools/analysis/compare_losses.py --work-dir work_dirs/compare_losses

lint: install
	$(PY) -m flake8 mmdet_lossplug tools tests configs
	$(PY) -m isort --check-only --diff mmdet_lossplug tools tests configs
	$(PY) -m yapf --diff --recursive mmdet_lossplug tools tests configs

# The second environment: torch 2.14.1's CUDA 13.0 build, no mmcv/mmdet.
# The whole extension (CUDA kernel and binding) is compiled with nvcc for
# sm_80 and sm_90 and the op's tests run on the CPU against it: every test
# run proves that the CUDA binding compiles and the op works on a second
# torch. Cached: the venv (5.5 GB, about a minute from the local index) is
# redone when requirements/cuda-build.txt changes, the build (about a
# minute on 2 cores) when setup.py or mmdet_lossplug/csrc change.
CUDA_VENV := .venv-cuda
CUDA_PY := $(CUDA_VENV)/bin/python
CUDA_BUILT := $(CUDA_VENV)/build/.built
CUDA_HOME ?= /usr/local/cuda
CUDA_ARCHS ?= 8.0;9.0

$(CUDA_VENV)/.installed: requirements/cuda-build.txt
	rm -rf $(CUDA_VENV)
	$(PYTHON) -m venv $(CUDA_VENV)
	$(CUDA_PY) -m pip install -r requirements/cuda-build.txt
	touch $@

# The torch wheel's NVIDIA packages carry the CUDA headers its own headers
# include (cusparse.h, ...), which a bare toolkit may lack: CPATH puts them
# behind the toolkit's (gcc, which nvcc runs to preprocess, reads it).
wheel_cuda_includes = $$($(1) -c 'import glob, sysconfig; print(":".join( \
    glob.glob(sysconfig.get_paths()["purelib"] + "/nvidia/cu*/include")))')

# nvcc from CUDA_HOME.
$(CUDA_BUILT): $(CUDA_VENV)/.installed setup.py $(CSRC)
	@test -x $(CUDA_HOME)/bin/nvcc || { echo "cuda-build: no \
	    $(CUDA_HOME)/bin/nvcc; set CUDA_HOME to a CUDA toolkit" >&2; exit 1; }
	CPATH=$(call wheel_cuda_includes,$(CUDA_PY)) \
	CUDA_HOME=$(CUDA_HOME) FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST='$(CUDA_ARCHS)' \
	MAX_JOBS=$${MAX_JOBS:-2} $(CUDA_PY) setup.py build_ext --force \
	    --build-lib $(CUDA_VENV)/build/lib --build-temp $(CUDA_VENV)/build/temp
	touch $@

# The sources as they are now, with the CUDA build of _ext in place of the
# in-tree (CPU) one; -P and --import-mode=importlib keep the checkout off
# sys.path, so the tests import this copy.
cuda-build: $(CUDA_BUILT)
	rm -rf $(CUDA_VENV)/pkg
	mkdir -p $(CUDA_VENV)/pkg
	cp -r mmdet_lossplug $(CUDA_VENV)/pkg/
	cp $(CUDA_VENV)/build/lib/mmdet_lossplug/_ext*.so \
	    $(CUDA_VENV)/pkg/mmdet_lossplug/
	PYTHONPATH=$(CUDA_VENV)/pkg $(CUDA_PY) -P -c 'import sys, torch; \
	    import mmdet_lossplug._ext as e, mmdet_lossplug.ops as ops; \
	    assert "$(CUDA_VENV)/pkg/" in ops.__file__, ops.__file__; \
	    assert ops.HAS_EXT and e.has_cuda(), "no CUDA kernel in _ext"; \
	    assert "mmdet" not in sys.modules; \
	    print("cuda-build: torch", torch.__version__, "_ext with CUDA")'
	PYTHONPATH=$(CUDA_VENV)/pkg $(CUDA_PY) -P -m pytest -p no:cacheprovider \
	    --import-mode=importlib tests/test_ops tests/test_input_checks.py

test: install lint cuda-build
	$(PY) -m pytest tests

# A GPU machine with a CUDA PyTorch but no network and no mmcv/mmdet:
#   here:  make gpu-bundle   (wheels + mmcv's sdist into .gpu-bundle/)
#   there: make test-gpu     (the bundle copied beside; mmcv compiled with
#          CUDA, about 10 minutes on 16 cores, kept in .gpu-site/; then
#          the suite, the benchmarks and docs/gpu-report-DATE.md)
GPU_BUNDLE := .gpu-bundle
GPU_SITE := .gpu-site
GPU_PYTHON ?= python3
GPU_PYTHON_VERSION ?= 3.12
GPU_REPORT ?= docs/gpu-report-$(shell date -u +%F).md
GPU_ENV = PYTHONPATH=$(CURDIR):$(CURDIR)/$(GPU_SITE)

# mmcv's sdist: pip prepares its metadata, which imports torch (.venv's).
gpu-bundle: install
	rm -rf $(GPU_BUNDLE)
	$(PY) -m pip download --no-deps --only-binary=:all: -d $(GPU_BUNDLE) \
	    --python-version $(GPU_PYTHON_VERSION) --implementation cp \
	    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	    --platform manylinux2014_x86_64 -r requirements/gpu-bundle.txt
	$(PY) -m pip download --no-deps --no-binary=:all: --no-build-isolation \
	    -d $(GPU_BUNDLE) -c requirements/constraints.txt mmcv

$(GPU_SITE)/.installed: requirements/gpu-bundle.txt requirements/constraints.txt
	@test -d $(GPU_BUNDLE) || { echo "test-gpu: no $(GPU_BUNDLE)/: run \
	    'make gpu-bundle' where there is a network and copy it here" >&2; \
	    exit 1; }
	rm -rf $(GPU_SITE)
	$(GPU_PYTHON) -m pip install --no-index --no-deps --target $(GPU_SITE) \
	    $(GPU_BUNDLE)/*.whl
	$(GPU_ENV) MMCV_WITH_OPS=1 FORCE_CUDA=1 MAX_JOBS=$${MAX_JOBS:-13} \
	    $(GPU_PYTHON) -m pip install --no-index --no-deps \
	    --no-build-isolation --target $(GPU_SITE) $(GPU_BUNDLE)/mmcv-*.tar.gz
	touch $@

# Our extension in place, with CUDA for this machine's GPU; egg_info gives
# the package's metadata (tests/test_packaging.py reads it).
test-gpu: $(GPU_SITE)/.installed
	$(GPU_ENV) CPATH=$(call wheel_cuda_includes,$(GPU_PYTHON)) FORCE_CUDA=1 \
	    MAX_JOBS=$${MAX_JOBS:-13} $(GPU_PYTHON) setup.py build_ext --inplace
	MMDET_LOSSPLUG_WITH_OPS=0 $(GPU_PYTHON) setup.py -q egg_info
	$(GPU_ENV) $(GPU_PYTHON) -c 'import mmcv.ops, mmdet_lossplug._ext as e; \
	    assert e.has_cuda(), "_ext has no CUDA kernel"'
	$(GPU_ENV) tools/gpu/run_gpu_checks.sh $(GPU_PYTHON) $(GPU_REPORT)
