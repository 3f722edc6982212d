# tickstore: `make demo` and `make test` each bootstrap .venv from nothing (Python 3.11 only).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PIP_VERSION := 26.3

.DEFAULT_GOAL := help
# Root installs Debian packages directly; anyone else through sudo.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: help venv lock redis demo demo-live test test-fast lint fmt typecheck bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

# constraints.txt pins every package below tickstore's own pins, so a clean clone installs what CI passed with
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/pip install --quiet -e '.[dev]' -c constraints.txt
	touch $(STAMP)

venv: $(STAMP) ## Create .venv with every dependency

lock: ## Resolve pyproject.toml afresh into constraints.txt (after changing its dependencies)
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet pip==$(PIP_VERSION)
	.venv-lock/bin/pip install --quiet -e '.[dev]'
	grep '^# ' constraints.txt | grep -v '^# Resolved' > .venv-lock/header
	echo "# Resolved $$(date -u +%F) by make lock: pip $(PIP_VERSION), $$(.venv-lock/bin/python -V), $$(uname -sm)." >> .venv-lock/header
	.venv-lock/bin/pip freeze --exclude-editable | LC_ALL=C sort -f | cat .venv-lock/header - > constraints.txt
	rm -rf .venv-lock
	@echo "constraints.txt re-resolved: see git diff constraints.txt; make test installs it into .venv and tests it"

redis: ## Install redis-server (Debian package) if missing: the Redis online store's tests use it
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq redis-server; }

demo: $(STAMP) ## The whole product once: broker, replay, sink, SQL, features, training, live scoring
	$(BIN)/tickstore demo

demo-live: $(STAMP) ## Record 60 s of the live Coinbase feed, sink it, show it (needs internet)
	$(BIN)/tickstore broker start
	$(BIN)/tickstore ingest coinbase --products BTC-USD,ETH-USD --duration 60
	$(BIN)/tickstore sink --until-idle
	$(BIN)/tickstore sql "SELECT product_id, count(*) AS ticks, min(event_time), max(event_time) FROM ticks GROUP BY ALL"
	$(BIN)/tickstore broker stop

test: $(STAMP) redis ## Run every test (real broker, lake, Redis, MLflow, Flask)
	$(BIN)/pytest

test-fast: $(STAMP) redis ## Tests without the slow ones
	$(BIN)/pytest -m "not slow"

lint: $(STAMP) ## ruff lint + format check, mypy
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: $(STAMP) ## Format and fix with ruff
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP) ## Run the benchmarks in bench/
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/compaction.py
	$(BIN)/python bench/offline.py
	$(BIN)/python bench/dataset.py
	$(BIN)/python bench/train.py
	$(BIN)/python bench/serve.py

clean: ## Remove .venv and the default data directory
	rm -rf $(VENV) .tickstore
