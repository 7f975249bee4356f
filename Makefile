# The quick start is two commands: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv

.PHONY: serve test lint worker simulator migrate

$(VENV)/.installed: pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

## Run labbot on its embedded default (SQLite under ./var, worker included).
serve: $(VENV)/.installed
	$(VENV)/bin/labbot serve

## Install what the tests need, make sure PostgreSQL and Redis run, lint and run every test.
test:
	scripts/test

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

worker: $(VENV)/.installed
	$(VENV)/bin/labbot worker

simulator: $(VENV)/.installed
	$(VENV)/bin/labbot dev github --seed-demo

migrate: $(VENV)/.installed
	$(VENV)/bin/labbot db upgrade
