# Two commands: `make demo` (the main job) and `make test`. Both create .venv on first use.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed-v2

.PHONY: demo test test-all lint format venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip<27"
	$(BIN)/pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install --quiet "setuptools>=77,<81" wheel cython "numpy>=2" \
	    mmengine==0.10.7 mmcv-lite==2.1.0 albumentations opencv-python-headless scipy \
	    json-tricks munkres matplotlib pillow pytest ruff==0.17.6
	# mmpose's chumpy dependency does not build on modern pip; nothing we import needs it.
	$(BIN)/pip install --quiet --no-deps mmpose==1.3.2
	# The PyPI wheel of xtcocotools is built against numpy 1.x: build it against numpy 2.
	$(BIN)/pip install --quiet --no-build-isolation --no-binary xtcocotools xtcocotools==1.14.3
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

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
