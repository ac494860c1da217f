# relance — the two commands: `make demo` (run the nightly job on sample data) and `make test`.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
HOME_DIR := .relance
AS_OF ?= $(shell TZ=Europe/Paris date +%F)
CUSTOMERS ?= 2000
HISTORY_DAYS ?= 30
HISTORY_START = $(shell date -d "$(AS_OF) - $(HISTORY_DAYS) days" +%F)
HISTORY_END = $(shell date -d "$(AS_OF) - 1 day" +%F)

.PHONY: install demo test test-deps lint bench bench-dispatch serve stop clean

install: $(STAMP)

# Reproducible install: every package pinned in requirements.lock, then the project itself.
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --disable-pip-version-check -q -r requirements.lock
	$(BIN)/pip install --disable-pip-version-check -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# The sample source, a replay of the last HISTORY_DAYS days (nothing is sent: it gives the ladder
# and the report's trends some history), then tonight's run for today, rendered into the outbox.
# It starts clean: the database, the outbox and the reports of an earlier demo go together (an
# outbox kept without its database would get a second print batch of the same letters).
demo: install
	rm -rf $(HOME_DIR)/relance.duckdb $(HOME_DIR)/relance.duckdb.wal $(HOME_DIR)/outbox $(HOME_DIR)/reports $(HOME_DIR)/sample
	$(BIN)/relance sample-data --out $(HOME_DIR)/sample --customers $(CUSTOMERS) --as-of $(AS_OF)
	$(BIN)/relance backfill --start $(HISTORY_START) --end $(HISTORY_END) --source $(HOME_DIR)/sample --db $(HOME_DIR)/relance.duckdb
	$(BIN)/relance run --as-of $(AS_OF) --source $(HOME_DIR)/sample --db $(HOME_DIR)/relance.duckdb --outbox $(HOME_DIR)/outbox

# Two pytest workers (pytest-xdist), a test file at a time: each file's module fixtures are built
# once, and the slowest files start first (tests/conftest.py). TEST_JOBS=0 runs in one process.
TEST_JOBS ?= 2
test: install test-deps lint
	$(BIN)/python -m pytest -q $(if $(filter-out 0,$(TEST_JOBS)),-n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder)

# Fast checks before the tests: ruff (lint + format), sqlfluff on sql/ (configs: pyproject.toml,
# .sqlfluff). The import direction is a test (tests/test_layers.py). Fixes: scripts/dev/format_all.sh.
lint: install
	$(BIN)/ruff check --quiet .
	$(BIN)/ruff format --check --quiet .
	$(BIN)/sqlfluff lint sql/ --processes 2 --disable-progress-bar

# System packages the tests need: Chromium renders the finance report headlessly. Installed
# with apt-get when missing (as root, or through sudo without a password).
test-deps:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo "sudo -n" ); \
	  echo "installing chromium with apt-get (for the report rendering test)"; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Optional third command: a local Prefect server + worker with the nightly and backfill deployments.
serve: install
	bash scripts/serve.sh

stop:
	bash scripts/stop.sh

# RELANCE_BENCH_FLEET=1 also runs the fleet bench (bench/fleet.py: N shards vs one database, long).
bench: install
	$(BIN)/python -m bench.run
	@if [ -n "$$RELANCE_BENCH_FLEET" ]; then $(BIN)/python -m bench.fleet; fi

# Dispatch alone: a big synthetic night rendered into an outbox, emails to a loopback SendGrid fake.
bench-dispatch: install
	$(BIN)/python -m bench.dispatch

clean:
	rm -rf $(VENV) $(HOME_DIR) .pytest_cache
