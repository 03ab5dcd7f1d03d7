# syncd — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config.example.yaml

.PHONY: run test bench bench-quick check lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[emulators,test,bench,dev]'
	touch $(STAMP)

## Run the daemon on the embedded default: loopback emulators of both CRMs, demo leads, SQLite.
run: $(STAMP)
	$(BIN)/syncd run --config $(CONFIG)

## Install everything (venv, packages, PostgreSQL server if missing) and run the tests.
test: $(STAMP)
	tests/ensure-tools.sh
	$(BIN)/python -m pytest

## Benchmarks (bench/README.md); rewrites docs/benchmarks.md.
bench: $(STAMP)
	$(BIN)/python -m bench

bench-quick: $(STAMP)
	$(BIN)/python -m bench --quick

## The enforced checks, with the tools pinned in the 'dev' extra; settings in pyproject.toml.
## Each step runs even when an earlier one fails, so one run reports everything.
check: $(STAMP)
	@status=0; \
	$(BIN)/ruff check syncd connectors rules tests bench || status=1; \
	$(BIN)/ruff format --check syncd connectors rules tests bench || status=1; \
	$(BIN)/mypy || status=1; \
	$(BIN)/lint-imports || status=1; \
	exit $$status

## Same as check (the old name).
lint: check

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis
