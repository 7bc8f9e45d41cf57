# The two commands of the README:
#   make run   - set up .venv (idempotent) and run the loss comparison on
#                the NEON tree-crown tiles (data from requirements/data.txt)
#   make test  - set up .venv if needed, check style, run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: all install run test lint

all: run

install: $(STAMP)

# torch first, then mmcv compiled against it (about 10 minutes on 2 cores;
# pip's wheel cache makes it once per machine), then us and the rest.
$(STAMP): setup.cfg setup.py requirements/build.txt requirements/mmcv.txt \
        requirements/data.txt \
        $(wildcard mmdet_lossplug/csrc/*.* mmdet_lossplug/csrc/*/*.*)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install -r requirements/build.txt
	MMCV_WITH_OPS=1 MAX_JOBS=$${MAX_JOBS:-2} \
	    $(PY) -m pip install --no-build-isolation -r requirements/mmcv.txt
	$(PY) -m pip install --no-build-isolation -e '.[tests]'
	$(PY) -m pip install --no-deps -r requirements/data.txt
	$(PY) -c 'import mmcv.ops, mmdet, mmdet_lossplug'
	touch $@

run: install
	$(PY) tools/analysis/compare_losses.py --work-dir work_dirs/compare_losses

lint: install
	$(PY) -m flake8 mmdet_lossplug tools tests configs
	$(PY) -m isort --check-only --diff mmdet_lossplug tools tests configs
	$(PY) -m yapf --diff --recursive mmdet_lossplug tools tests configs

test: install lint
	$(PY) -m pytest tests
