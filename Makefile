# phasegrid — the quality gate. Every target installs what it needs into .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# CPU build from this machine's disk by default; a GPU user sets e.g.
#   make install TORCH_SPEC="torch==2.13.0" TORCH_INDEX="--index-url <your CUDA wheel index>"
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
STAMP := $(VENV)/.installed

.PHONY: install demo lint test test-faults test-slow bench reproduce clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)" $(TORCH_INDEX)
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/phasegrid run campaigns/demo.toml --store results
	$(VENV)/bin/phasegrid aggregate results/demo
	$(VENV)/bin/phasegrid plot results/demo
	@echo "Parquet tables: results/demo/{cells,measurements,predictions,kernels,ensembles,boundaries}"
	@echo "Figures:        results/demo/figures/"

# The quality gate: lint, format and types (config in pyproject.toml), then the tests.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest -q

test-faults: $(STAMP)
	$(PY) -m pytest -q -m faults

test-slow: $(STAMP)
	$(PY) -m pytest -q -m slow

bench: $(STAMP)
	$(PY) -m benchmarks

reproduce: $(STAMP)
	$(PY) -m reproduction

clean:
	rm -rf $(VENV) results .pytest_cache
