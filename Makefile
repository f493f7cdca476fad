# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
CACHE := .cache

.PHONY: setup models lint test demo bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# uv resolves and downloads in parallel: about 2 minutes here where pip took 10.
	$(PY) -m pip install --quiet --upgrade pip uv
	$(VENV)/bin/uv pip install --quiet --python $(PY) -e '.[dev]'
	touch $(STAMP)

# Test and demo models built offline by the project (no hub): see tests/support/build_models.py
models: setup
	$(PY) -m tests.support.build_models --out $(CACHE)/models

lint: setup
	$(VENV)/bin/ruff check bridge tests benchmarks
	$(VENV)/bin/ruff format --check bridge tests benchmarks
	$(VENV)/bin/mypy

test: setup models lint
	$(PY) -m pytest

# The data check runs first, with the system python and nothing installed: a clone without
# ../shared stops at once, saying what it needs. DEMO_ARGS passes options (e.g. --queries 10);
# `make demo TRAIN=1` adds the optional training step (README "Train your own reranker").
demo:
	@$(PYTHON) bridge/devtools/demo_data.py
	@$(MAKE) --no-print-directory setup models
	$(PY) -m bridge.devtools.demo $(DEMO_ARGS) $(if $(TRAIN),--train)

bench: setup models
	$(PY) benchmarks/vs_flashrank.py

clean:
	rm -rf $(VENV) $(CACHE)
