# syncd — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CONFIG ?= config.example.yaml
# 1: the modules every lead passes through are compiled with mypyc (setup.py); 0: pure Python.
SYNCD_COMPILE ?= 1
NATIVE := $(VENV)/.native-$(SYNCD_COMPILE)
# pyproject.toml's [tool.syncd] compiled list: a change to one of them rebuilds.
COMPILED := $(shell sed -n '/^compiled = \[/,/^\]/s/^ *"\([^"]*\)",*$$/\1/p' pyproject.toml)
BUILT := $(foreach m,$(COMPILED),$(basename $(m)).cpython-*.so) syncd/_native__mypyc.cpython-*.so

.PHONY: run test native soak soak-postgres bench bench-quick check lint lock clean

# Every dependency at the version requirements-dev.lock pins (`make lock` writes it). The
# editable install is pure Python whatever SYNCD_COMPILE says (its isolated build has no mypyc);
# the native target compiles.
$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip 'setuptools==80.9.0'
	SYNCD_COMPILE=0 $(BIN)/pip install --quiet -c requirements-dev.lock -e '.[emulators,test,bench,dev]'
	touch $(STAMP)

## Compile the per-lead modules in place (a minute; SYNCD_COMPILE=0: remove them, pure Python).
## Without a C compiler syncd runs on the sources, with a warning.
native: $(NATIVE)
$(NATIVE): $(STAMP) setup.py $(COMPILED)
# A module's .so is a stub that mypyc rewrites only when it changes (the code is in the shared
# _native library), and build_ext copies it in with its old time: touched, each module's .so is
# newer than its source, as tests/conftest.py checks.
	@rm -f $(BUILT) $(VENV)/.native-*
	@if [ "$(SYNCD_COMPILE)" = 1 ]; then \
	  echo "compiling $(words $(COMPILED)) modules with mypyc (log: $(VENV)/native.log)"; \
	  if SYNCD_COMPILE=1 $(BIN)/python setup.py build_ext --inplace >$(VENV)/native.log 2>&1; then \
	    touch $(BUILT); \
	  else \
	    tail -5 $(VENV)/native.log; rm -f $(BUILT); \
	    echo "warning: could not compile (a C compiler and Python's headers are needed);" \
	      "syncd runs on its pure-Python sources, slower"; \
	  fi; \
	fi
	@touch $(NATIVE)

## Run the daemon on the embedded default: loopback emulators of both CRMs, demo leads, SQLite.
run: $(NATIVE)
	$(BIN)/syncd run --config $(CONFIG)

## Install everything (venv, packages, the Debian tools the tests drive if missing), run the
## enforced checks (ruff, ruff format, mypy, import-linter: any finding fails), then the tests.
test: $(NATIVE)
	tests/ensure-tools.sh
	$(MAKE) --no-print-directory check
	SYNCD_COMPILE=$(SYNCD_COMPILE) $(BIN)/python -m pytest

## The long chaos soak (tests/soak): 30 kill rounds, two-daemon rounds, faults on ~30 % of
## calls; rewrites docs/reliability.md. A bounded soak is part of make test.
soak: $(NATIVE)
	$(BIN)/python -m tests.soak

## The long soak with the chaos world's state store on PostgreSQL (a throwaway server on
## loopback), 2,500 leads a CRM so that each plan records several batches on its store thread;
## rewrites docs/reliability-postgresql.md.
soak-postgres: $(NATIVE)
	tests/ensure-tools.sh
	$(BIN)/python -m tests.soak --postgres --leads 2500 --rounds 30 --out docs/reliability-postgresql.md

## Benchmarks (bench/README.md); rewrites docs/benchmarks.md.
bench: $(NATIVE)
	$(BIN)/python -m bench

bench-quick: $(NATIVE)
	$(BIN)/python -m bench --quick

## The enforced checks, with the tools pinned in the 'dev' extra; settings in pyproject.toml.
## Each step runs even when an earlier one fails, so one run reports everything.
check: $(STAMP)
	@status=0; \
	$(BIN)/ruff check syncd connectors rules tests bench setup.py || status=1; \
	$(BIN)/ruff format --check syncd connectors rules tests bench setup.py || status=1; \
	$(BIN)/mypy || status=1; \
	$(BIN)/lint-imports || status=1; \
	exit $$status

## Same as check (the old name).
lint: check

## Pin every dependency: requirements.lock (runtime and the emulators, what the image installs)
## and requirements-dev.lock (every extra, what `make test` and CI install). Existing pins are
## kept; `make lock LOCK_FLAGS=--upgrade` moves everything to the newest allowed versions.
LOCK_FLAGS ?=
## syncd itself is left out (the test extra names syncd[emulators]; pip-compile would pin this
## checkout's path), as pip and setuptools are by default.
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --strip-extras \
	--no-emit-index-url --no-emit-trusted-host --no-emit-find-links \
	--unsafe-package syncd --unsafe-package pip --unsafe-package setuptools $(LOCK_FLAGS)
lock: $(STAMP)
	$(PIP_COMPILE) --extra emulators --output-file requirements.lock pyproject.toml
	$(PIP_COMPILE) --all-extras --output-file requirements-dev.lock pyproject.toml

clean:
	rm -rf $(VENV) var .pytest_cache .hypothesis build $(BUILT)
