#!/usr/bin/env bash
# Build (or reuse) an isolated virtualenv with Apache Airflow, dlt and this project, in which
# tests/deploy/test_scheduling.py runs the DAG in deploy/airflow/dags/.
#
# Airflow pins its own dependency set, so it cannot share .venv with the project's tools. The
# venv lives in .venv-airflow/ (git-ignored); the versions come from a constraints file
# resolved once for every supported Python (deploy/airflow/constraints-airflow3.txt, its
# header says how), so every machine gets the same set. With uv ($UV) about 10 s from PyPI,
# with pip about a minute.
#
# The interpreter is $PYTHON when Airflow and this project both support it; otherwise the
# newest supported python3.X (or python3) on PATH (the script says which it took).
#
# Usage: scripts/airflow-venv.sh             # create or reuse; prints the venv path
#        AIRFLOW_VENV=/some/dir scripts/airflow-venv.sh
#        AIRFLOW_VENV=.venv-airflow2 AIRFLOW_CONSTRAINTS=deploy/airflow/constraints-airflow2.txt \
#            scripts/airflow-venv.sh          # Airflow 2.10 instead (Python 3.10 to 3.12)
# Exit status 0 when the venv is ready, 1 when it could not be built (log in the venv).
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=airflow-venv
VENV="${AIRFLOW_VENV:-.venv-airflow}"
CONSTRAINTS="${AIRFLOW_CONSTRAINTS:-deploy/airflow/constraints-airflow3.txt}"
VERSION="$(sed -n 's/^apache-airflow==\([^ ;]*\).*/\1/p' "$CONSTRAINTS" | head -1)"
# The source brings no destination: the tests load into DuckDB, as an image would name its own.
REQUIREMENTS=("apache-airflow==$VERSION" "dlt[duckdb]")
case "$VERSION" in
    2.*) PYTHONS="3.12 3.11 3.10" ;;           # Airflow 2.10's range
    *) PYTHONS="3.14 3.13 3.12 3.11 3.10" ;;   # Airflow 3.3's range (Requires-Python)
esac

source scripts/tool-venv.sh
