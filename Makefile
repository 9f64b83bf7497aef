# The two set-up commands of the README: `make up` and `make test`.
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")

.PHONY: up test lint bench sync docs docs-build

sync:
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen

up: sync
	$(UV) run --frozen tenantform up

# Two test processes (pytest-xdist), each with its own Prefect server, warm process and worker;
# a file's tests stay in one process (its module fixtures are built once).
TEST_PROCESSES ?= 2

test: sync
	$(UV) run --frozen pytest -n $(TEST_PROCESSES) --dist loadfile

lint: sync
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

bench: sync
	$(UV) run --frozen python bench/run_all.py

# The docs site (mkdocs.yml): `make docs` serves it with live reload on DOCS_ADDR (not 8000:
# that is the gateway's), `make docs-build` builds it into site/ the way CI does (strict: a
# warning fails the build; offline).
DOCS_ADDR ?= 127.0.0.1:8001

docs: sync
	NO_MKDOCS_2_WARNING=1 $(UV) run --frozen mkdocs serve --dev-addr $(DOCS_ADDR)

docs-build: sync
	NO_MKDOCS_2_WARNING=1 $(UV) run --frozen mkdocs build --strict
