# Every target creates .venv from requirements.lock on first use; a fresh machine needs only
# Python 3.11 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
UV_VERSION := 0.13.8
PROTO_GEN := proto/gen
CODE_DIRS := engine ingest payorch analytics dashboard tools tests bench $(PROTO_GEN)
# pytest-xdist worker processes for `make test` (this 2-core machine: about 4 min against 8 in one);
# `make test TEST_WORKERS=0` runs the suite in this process, in file order.
TEST_WORKERS ?= 2

.PHONY: help install lock test lint typecheck schema-check proto bench demo clean

help:
	@echo "make demo    start the platform on the embedded default"
	@echo "make test    lint, type checks, schema checks and every test"
	@echo "make lint    ruff, mypy --strict, import-linter, buf lint"
	@echo "make bench   the benchmarks under bench/"
	@echo "make proto   regenerate the Python bindings from proto/"
	@echo "make lock    re-resolve requirements.lock from pyproject.toml"

install: $(STAMP)

# Bytecode is compiled at install (uv, unlike pip, does not by default): where
# PYTHONDONTWRITEBYTECODE is set, as on this team's machines, nothing writes it later, and every
# process compiled its imports again (about 1 s of each `payorch` start).
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --compile-bytecode --python $(BIN)/python --require-hashes -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps --no-build-isolation -e .
	touch $@

lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --generate-hashes --python-version 3.11 \
		--quiet -o requirements.lock

proto: $(STAMP)
	$(BIN)/python -m tools.protogen --out $(PROTO_GEN)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/buf lint proto

typecheck: $(STAMP)
	$(BIN)/mypy

schema-check: $(STAMP)
	$(BIN)/python -m tools.protogen --check $(PROTO_GEN)
	$(BIN)/python -m tools.schema_check

# The project's own bytecode too, fresh for each run (the tests start many `payorch` processes).
test: lint schema-check
	$(BIN)/python -m compileall -q -j 0 $(CODE_DIRS)
	$(BIN)/python -m pytest -n $(TEST_WORKERS)

bench: $(STAMP)
	$(BIN)/python -m bench

demo: $(STAMP)
	$(BIN)/payorch demo

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
