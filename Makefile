# Two commands: `make demo` (the main job) and `make test`. Both create .venv on first use
# (about 75 s or more; each install step prints one line).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-v3

.PHONY: demo test test-all lint format venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@echo "[1/7] creating the virtual environment $(VENV)/ (first run only)"
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "[2/7] upgrading pip"
	@$(BIN)/pip install --quiet --upgrade "pip<27"
	@echo "[3/7] installing torch 2.14.1 + torchvision 0.29.1 (the largest download)"
	@$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	@echo "[4/7] installing mmengine, mmcv-lite, albumentations, opencv, scipy, pytest, ruff, mmpretrain's needs, timm, ..."
	@$(BIN)/pip install --quiet "setuptools>=77,<81" wheel cython "numpy>=2" \
	    mmengine==0.10.7 mmcv-lite==2.1.0 albumentations opencv-python-headless scipy \
	    json-tricks munkres matplotlib pillow pytest ruff==0.17.6 \
	    einops mat4py model-index "importlib-metadata<8" timm==1.0.31
	@echo "[5/7] building xtcocotools against numpy 2 (its PyPI wheel targets numpy 1.x)"
	@$(BIN)/pip install --quiet --no-build-isolation --no-binary xtcocotools xtcocotools==1.14.3
	@# mmpose goes in after every install that resolves dependencies: its
	@# chumpy requirement (unbuildable on modern pip, and nothing we import
	@# uses it) would otherwise make pip print a "mmpose 1.3.2 requires
	@# chumpy, which is not installed" conflict after each later install.
	@# mmpretrain likewise: its needs (einops, mat4py, model-index,
	@# importlib-metadata < 8) are installed above; pip knows model-index
	@# under another name (modelindex) and would report it missing.
	@echo "[6/7] installing mmpose 1.3.2 without its chumpy dependency (nothing here uses chumpy; a pip note that mmpose requires chumpy is expected) and mmpretrain 1.2.0"
	@$(BIN)/pip install --quiet --no-deps mmpose==1.3.2 mmpretrain==1.2.0
	@echo "[7/7] installing this project (editable)"
	@$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)
	@echo "done: $(VENV)/ is ready"

demo: $(STAMP)
	$(BIN)/python tools/demo.py --work-dir work_dirs/demo

test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow" tests

# Formatting and lint rules live in pyproject.toml ([tool.ruff]); CI runs this.
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test-all: $(STAMP)
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) work_dirs
