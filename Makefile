# The README's commands are these targets. Each creates the virtual environment itself.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
CONFIG ?= config.yaml

.PHONY: run test lint typecheck unit system-deps bench clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/integration-monitor serve --config $(CONFIG)

system-deps:
	bash scripts/install-system-deps.sh

lint: $(VENV)/.installed
	$(BIN)/ruff check exporter tests bench grafana deploy
	$(BIN)/ruff format --check exporter tests bench grafana deploy

typecheck: $(VENV)/.installed
	$(BIN)/mypy exporter

unit: $(VENV)/.installed
	$(BIN)/pytest $(PYTEST_ARGS)

test: $(VENV)/.installed system-deps lint typecheck unit

bench: $(VENV)/.installed system-deps
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
