# The two set-up commands of the README: `make up` and `make test`.
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: up test lint bench sync

sync:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen

up: sync
	$(UV) run --frozen tenantform up

test: sync
	$(UV) run --frozen pytest

lint: sync
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

bench: sync
	$(UV) run --frozen python bench/run_all.py
