# Two commands do everything on a fresh clone: `make demo` and `make test`.
# Both create or reuse .venv and install the project from pyproject.toml, pinned by constraints.txt.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo notebook test lint typecheck unit bench profile clean ensure-postgres airflow-venv test-airflow

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade "pip>=24"
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev,notebook]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/volcengine-live --demo

notebook: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt "jupyterlab>=4,<5"
	$(VENV)/bin/jupyter lab notebooks/pull_record_tasks_analysis.ipynb

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -q

test: lint typecheck ensure-postgres airflow-venv unit

# PostgreSQL server binaries for the destination tests (each test run starts its own
# throwaway cluster on loopback); installed with apt-get when missing, never fatal.
ensure-postgres:
	@scripts/ensure-postgres.sh

# Airflow in its own venv (.venv-airflow/, about a minute from PyPI) for the DAG tests. Within
# `make test` a failure only skips those tests, loudly; `make test-airflow` insists.
airflow-venv:
	@scripts/airflow-venv.sh >/dev/null || echo "!!! airflow-venv could not be built: the Airflow DAG tests will be SKIPPED" >&2

test-airflow: $(STAMP)
	@scripts/airflow-venv.sh >/dev/null
	VOLCENGINE_LIVE_REQUIRE_AIRFLOW=1 $(PY) -m pytest -q tests/test_scheduling.py

bench: $(STAMP)
	$(PY) benchmarks/run.py

profile: $(STAMP)
	$(PY) benchmarks/profile_scan.py

clean:
	rm -rf $(VENV) .venv-airflow .mypy_cache .ruff_cache .pytest_cache *.egg-info
