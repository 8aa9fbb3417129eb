#!/usr/bin/env bash
# Build (or reuse) an isolated virtualenv with Apache Airflow, dlt and this project, in which
# tests/test_scheduling.py imports and runs the DAG in deploy/airflow/dags/.
#
# Airflow pins its own, older dependency set (SQLAlchemy 1.4, Flask 2.2, ...), so it cannot
# share .venv with the project's tools. The venv lives in .venv-airflow/ (git-ignored); the
# versions come from deploy/airflow/constraints-airflow.txt (a `pip freeze` of a working
# install), so every machine gets the same set. About a minute from PyPI.
#
# Usage: scripts/airflow-venv.sh             # create or reuse; prints the venv path
#        AIRFLOW_VENV=/some/dir scripts/airflow-venv.sh
# Exit status 0 when the venv is ready, 1 when it could not be built (log in the venv).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${AIRFLOW_VENV:-.venv-airflow}"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"
CONSTRAINTS="deploy/airflow/constraints-airflow.txt"
AIRFLOW_VERSION="$(sed -n 's/^apache-airflow==//p' "$CONSTRAINTS")"
STAMP="$VENV/.installed"

if [[ -f "$STAMP" && "$STAMP" -nt pyproject.toml && "$STAMP" -nt "$CONSTRAINTS" ]]; then
    echo "$VENV"
    exit 0
fi

started=$(date +%s)
echo "airflow-venv: installing apache-airflow==$AIRFLOW_VERSION, dlt and this project into $VENV" >&2
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
log="$VENV/install.log"
if ! {
    "$VENV/bin/python" -m pip install --disable-pip-version-check --upgrade "pip>=24" &&
        "$VENV/bin/python" -m pip install --disable-pip-version-check -c "$CONSTRAINTS" \
            "apache-airflow==$AIRFLOW_VERSION" -e .
} >"$log" 2>&1; then
    grep -v "^WARNING: Location" "$log" | tail -20 >&2
    echo "airflow-venv: FAILED (full log: $log)" >&2
    exit 1
fi
touch "$STAMP"
echo "airflow-venv: ready in $(($(date +%s) - started)) s" >&2
echo "$VENV"
