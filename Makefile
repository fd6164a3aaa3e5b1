# gracestop: every target creates .venv and installs what it needs on first use.
# Only python3 and make are required on the machine.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
# Most tests wait on subprocesses, sockets and signals rather than the CPU.
PYTEST_WORKERS ?= 4
# Iterations of make chaos.
N ?= 500

.DEFAULT_GOAL := help
.PHONY: help install demo test lint format typecheck pytest docs bench bench-smoke chaos clean

help:
	@echo "make demo       gracestop demo: a job worker and an HTTP service get SIGTERM under load; timeline and counts"
	@echo "make test       lint, format check, mypy --strict, pytest on asyncio and trio with coverage >= 90%"
	@echo "make lint       ruff check and ruff format --check"
	@echo "make format     ruff format and ruff check --fix"
	@echo "make typecheck  mypy --strict on src/, examples/, benchmarks/ and tests/typing; pyright strict on src/ and tests/typing"
	@echo "make docs       build the documentation site with mkdocs build --strict"
	@echo "make bench      compare gracestop with its peers and baselines: one table, benchmarks/results.json"
	@echo "make bench-smoke  run every benchmark briefly (checks they run; CI runs it)"
	@echo "make chaos      signal a job service at random moments N times (N=500), audit its SQLite file, print the counts"
	@echo "make clean      remove .venv and build artefacts"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,docs,bench]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m gracestop demo

lint: $(STAMP)
	$(BIN)/ruff check src tests examples benchmarks docs/hooks conftest.py
	$(BIN)/ruff format --check src tests examples benchmarks docs/hooks conftest.py

format: $(STAMP)
	$(BIN)/ruff format src tests examples benchmarks docs/hooks conftest.py
	$(BIN)/ruff check --fix src tests examples benchmarks docs/hooks conftest.py

# pyright's wrapper would ask PyPI for a newer release on every run: the installed one is used.
typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy --strict examples benchmarks docs/hooks
	MYPYPATH=tests/process $(BIN)/mypy --strict conftest.py
	$(BIN)/mypy --strict tests/typing
	PYRIGHT_PYTHON_IGNORE_WARNINGS=1 $(BIN)/pyright src tests/typing

pytest: $(STAMP)
	rm -f .coverage .coverage.*
	$(BIN)/coverage run -m pytest -n $(PYTEST_WORKERS)
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage report

test: lint typecheck pytest

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

bench-smoke: $(STAMP)
	$(BIN)/python benchmarks/run.py --smoke

chaos: $(STAMP)
	$(BIN)/python tests/chaos/run.py --iterations $(N) --parallel 2

clean:
	rm -rf $(VENV) site build dist .coverage .coverage.* .mypy_cache .ruff_cache
