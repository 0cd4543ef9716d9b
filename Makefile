# The README's commands are these targets. Each creates the virtual environment itself.
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
CONFIG ?= config.yaml

.PHONY: run test test-fast lint typecheck unit system-deps bench clean

# Two stamps: `make run` installs the service (the `server` extra), `make test` adds the test
# tools. The base distribution alone is the client and the job wrapper (docs/client.md).
RUN_DEPS := $(VENV)/.installed-run
TEST_DEPS := $(VENV)/.installed-test

$(RUN_DEPS): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[server]'
	touch $@

$(TEST_DEPS): $(RUN_DEPS) pyproject.toml
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

run: $(RUN_DEPS)
	$(BIN)/integration-monitor serve --config $(CONFIG)

system-deps:
	bash scripts/install-system-deps.sh

lint: $(TEST_DEPS)
	$(BIN)/ruff check exporter tests bench grafana deploy rules
	$(BIN)/ruff format --check exporter tests bench grafana deploy rules
	$(BIN)/lint-imports

typecheck: $(TEST_DEPS)
	$(BIN)/mypy exporter

unit: $(TEST_DEPS)
	$(BIN)/pytest $(PYTEST_ARGS)

test: $(TEST_DEPS) system-deps lint typecheck unit

# The unit and in-process tests only, in under 30 s: pytest -m "not system", without lint and
# typecheck. `make test` runs these and the system tests (the marker is in pyproject.toml).
test-fast: $(TEST_DEPS)
	$(BIN)/pytest -m "not system" $(PYTEST_ARGS)

bench: $(TEST_DEPS) system-deps
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
