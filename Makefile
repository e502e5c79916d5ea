# quantgraph — the two commands of the quickstart are `make serve` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: serve test lint check bench bench-realtime bench-realtime-quick install test-servers clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(INSTALLED)

install: $(INSTALLED)

## Install and start the server on the embedded default (SQLite, in-process broadcast, simulated feed).
serve: install
	$(BIN)/quantgraph serve

test-servers:
	bash scripts/install-test-servers.sh
	bash scripts/install-browser.sh

## Install everything and run the whole test suite (starts its own PostgreSQL and Redis).
test: install test-servers
	$(BIN)/pytest

## Static checks: lint, formatting, types, and the checked-in schema.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/mypy examples/python_client.py

check: test lint

bench: install
	$(BIN)/python -m bench.backtest_speed

## Realtime/HTTP/ingest benchmarks against PostgreSQL + Redis, next to Node peers (needs npm).
bench-realtime: install test-servers
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m bench.run

bench-realtime-quick: install test-servers
	$(BIN)/python -m pip install --quiet -e ".[dev,bench]"
	$(BIN)/python -m bench.run --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
