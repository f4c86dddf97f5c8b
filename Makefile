# kmm: every target that needs Python creates .venv and installs what it needs first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP_DEV := $(VENV)/.installed-dev
STAMP_RUN := $(VENV)/.installed-run

.PHONY: run test lint types check bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[analysis,research]'
	touch $@

$(STAMP_DEV): pyproject.toml scripts/install-sdk.sh scripts/install-system.sh | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev,analysis,research]'
	sh scripts/install-sdk.sh $(BIN)/python
	sh scripts/install-system.sh chromium:chromium systemd-analyze:systemd
	touch $@ $(STAMP_RUN)

## run: install and run kmm with no arguments (see README)
run: $(STAMP_RUN)
	$(BIN)/python -m kmm

## test: install the dev tools and run the whole test suite
test: $(STAMP_DEV)
	$(BIN)/python -m pytest

lint: $(STAMP_DEV)
	$(BIN)/ruff check src tests bench probe.py
	$(BIN)/ruff format --check src tests bench probe.py

types: $(STAMP_DEV)
	$(BIN)/mypy --strict src

check: lint types test

## bench: hot-path figures next to a baseline measured in the same run
bench: $(STAMP_DEV)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
