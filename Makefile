# Two commands do all set-up on a fresh machine: `make demo` (the main job) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint audit

# Exactly the tested set: every package of '.[train,dev]' pinned with hashes (requirements/lock.py), then
# the project itself.
$(STAMP): pyproject.toml requirements/dev.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements/dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

## The main job: the whole local stack on embedded defaults, replaying real tweets with a bad buzz in them.
demo: $(STAMP)
	$(BIN)/buzzwatch demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

## The default test run (unit + integration against real local servers); long training and benchmarks are separate.
## The `serial` tests first, alone on an idle machine; then the rest in two processes, a file's tests in one.
test: $(STAMP)
	scripts/ensure-system-packages.sh
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -m serial
	$(BIN)/python -m pytest -m "not serial" -n 2 --dist loadfile

## Known vulnerabilities in the locked dependencies (pip-audit); says so, and what to do, when it cannot run.
audit: $(STAMP)
	$(BIN)/python scripts/audit_dependencies.py
