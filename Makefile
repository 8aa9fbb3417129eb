# Two commands do everything on a fresh clone: `make demo` and `make test`.
#
# Both pick a supported Python (3.10 to 3.14: `python3` when it fits, else the newest
# python3.X on PATH; or PYTHON=/path/to/python), bootstrap uv into .venv-tools/ when no `uv` is
# on PATH, and install the project into .venv from uv.lock, frozen: the same versions on
# every machine and every supported Python. Without make: `uv sync --extra cli --extra dev --extra
# notebook && uv run volcengine-live --demo`, or `pip install .` for the package alone.
SHELL := /bin/bash
VENV ?= .venv
TOOLS ?= .venv-tools
UV_VERSION := 0.13.9
override PYTHON := $(shell PYTHON="$(PYTHON)" scripts/find-python.sh)
ifeq ($(PYTHON),)
$(error no supported Python (3.10 to 3.14): see the message above)
endif
UV ?= $(or $(shell command -v uv),$(TOOLS)/bin/uv)
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# uv never downloads an interpreter of its own: the venv is the Python make picked.
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
export UV

.PHONY: install demo notebook test lint lock-check typecheck unit edge-check matrix wheel-check bench \
	profile clean ensure-postgres ensure-chromium airflow-venv dagster-venv test-airflow \
	test-dagster

$(TOOLS)/bin/uv:
	@echo "make: bootstrapping uv $(UV_VERSION) into $(TOOLS)/ (no uv on PATH)"
	@$(PYTHON) -m venv $(TOOLS)
	@$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(STAMP): pyproject.toml uv.lock | $(UV)
	@echo "make: Python $$($(PYTHON) -c 'import platform; print(platform.python_version())') at $(PYTHON)"
	@if [[ -x $(PY) ]] && [[ "$$($(PY) -c 'import sys; print(sys.version)')" != "$$($(PYTHON) -c 'import sys; print(sys.version)')" ]]; then \
		echo "make: $(VENV) was built with another Python; rebuilding it"; rm -rf $(VENV); fi
	$(UV) sync --frozen --quiet --extra cli --extra dev --extra notebook --python $(PYTHON)
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/volcengine-live --demo

notebook: $(STAMP)
	$(UV) pip install --quiet --python $(PY) "jupyterlab>=4,<5"
	$(VENV)/bin/jupyter lab notebooks/pull_record_tasks_analysis.ipynb

# The lock must match pyproject.toml: a dependency changed without `uv lock` fails here.
lock-check: | $(UV)
	$(UV) lock --check --python $(PYTHON)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -q

test: lock-check lint typecheck ensure-postgres ensure-chromium airflow-venv dagster-venv unit edge-check matrix wheel-check

# The wheel on a user's own environment at both ends of its dlt range: the newest dlt, duckdb
# and sqlglot that `pip install "dlt[duckdb]"` gives, and the oldest dlt the package allows;
# a short subset of the tests in each. Needs PyPI.
edge-check: | $(UV)
	@scripts/edge-check.sh $(PYTHON)

# Every other supported Python on this machine: a fresh venv from the lock, the demo and a fast
# subset of the tests; an interpreter that is absent is reported as skipped.
matrix: | $(UV)
	@scripts/python-matrix.sh $(PYTHON)

# The wheel alone, in a clean venv, from an empty folder, runs the demo.
wheel-check: | $(UV)
	@scripts/wheel-check.sh $(PYTHON)

# PostgreSQL server binaries for the destination tests (each test run starts its own
# throwaway cluster on loopback); installed with apt-get when missing, never fatal.
ensure-postgres:
	@scripts/ensure-postgres.sh

# Debian's Chromium for the report's rendering test; installed when missing, never fatal.
ensure-chromium:
	@scripts/ensure-chromium.sh

# Airflow in its own venv (.venv-airflow/) for the DAG tests. Within `make test` a failure
# only skips those tests, loudly; `make test-airflow` insists.
airflow-venv: | $(UV)
	@PYTHON=$(PYTHON) UV=$(UV) scripts/airflow-venv.sh >/dev/null || echo "!!! airflow-venv could not be built: the Airflow DAG tests will be SKIPPED" >&2

test-airflow: $(STAMP) | $(UV)
	@PYTHON=$(PYTHON) UV=$(UV) scripts/airflow-venv.sh >/dev/null
	VOLCENGINE_LIVE_REQUIRE_AIRFLOW=1 $(PY) -m pytest -q tests/deploy/test_scheduling.py

dagster-venv: | $(UV)
	@PYTHON=$(PYTHON) scripts/dagster-venv.sh >/dev/null || echo "!!! dagster-venv could not be built: the Dagster tests will be SKIPPED" >&2

test-dagster: $(STAMP) | $(UV)
	@PYTHON=$(PYTHON) UV=$(UV) scripts/dagster-venv.sh >/dev/null
	VOLCENGINE_LIVE_REQUIRE_DAGSTER=1 $(PY) -m pytest -q tests/deploy/test_dagster.py

# The last commit before the one-pass scan and the window-model rate limiter: the busy-account
# benchmark runs its source beside this tree's, in the same command.
BENCH_BASELINE ?= 6925227

# The command as its users install it: pinned by the lock, the `cli` extra only (so no
# pandas). The benchmark runs the source here, as a scheduled run would.
RUNTIME_VENV ?= .venv-runtime

$(RUNTIME_VENV)/.installed: pyproject.toml uv.lock | $(UV)
	UV_PROJECT_ENVIRONMENT=$(RUNTIME_VENV) $(UV) sync --frozen --quiet --extra cli --python $(PYTHON)
	@touch $@

bench: $(STAMP) $(RUNTIME_VENV)/.installed
	$(PY) benchmarks/run.py --runtime-python $(RUNTIME_VENV)/bin/python
	$(PY) benchmarks/rate_limit.py
	$(PY) benchmarks/busy_account.py --baseline $(BENCH_BASELINE)

profile: $(STAMP)
	$(PY) benchmarks/profile_scan.py

clean:
	rm -rf $(VENV) $(TOOLS) $(RUNTIME_VENV) .venv-airflow .venv-airflow2 .venv-dagster .venv-matrix dist build .mypy_cache \
		.ruff_cache .pytest_cache *.egg-info
