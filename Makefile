# The two commands of the README. Each creates .venv if it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
STAMP_TORCH := $(VENV)/.installed-torch

.PHONY: demo test test-torch lint bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(STAMP_RUN): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e .
	touch $@

$(STAMP_DEV): pyproject.toml | $(PY)
	$(PY) -m pip install -q -e '.[dev,gpu,distributed]'
	touch $@ $(STAMP_RUN)

$(STAMP_TORCH): pyproject.toml $(STAMP_DEV)
	$(PY) -m pip install -q -e '.[dev,gpu,distributed,torch]'
	touch $@

# The flagship lesson in full (-u: its epoch table and timings appear as they happen, even when piped).
demo: $(STAMP_RUN)
	$(PY) -u lessons/06_planet_multilabel.py

lint: $(STAMP_DEV)
	$(PY) -m ruff check tinygrad_cv tests lessons benchmarks
	$(PY) -m mypy

test: lint
	$(PY) -m pytest

# The PyTorch and torchvision comparisons only (marked `torch` by tests/conftest.py); none may skip.
test-torch: $(STAMP_TORCH)
	TINYGRAD_CV_REQUIRE_TORCH=1 $(PY) -m pytest -m torch

bench: $(STAMP_DEV)
	$(PY) benchmarks/bench_autograd.py

clean:
	rm -rf $(VENV) .cache
