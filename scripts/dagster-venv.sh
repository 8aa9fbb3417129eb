#!/usr/bin/env bash
# Build (or reuse) an isolated virtualenv with Dagster, dagster-dlt, dlt and this project, in
# which tests/deploy/test_dagster.py materializes the assets of deploy/dagster/definitions.py.
#
# Dagster pins its own dependency set (protobuf, grpcio, ...), so it gets its own venv, in
# .venv-dagster/ (git-ignored), from a constraints file resolved once for every supported
# Python (deploy/dagster/constraints-dagster.txt, its header says how). With uv ($UV)
# about 10 s from PyPI, with pip about a minute.
#
# The interpreter is $PYTHON when Dagster and this project both support it; otherwise the
# newest supported python3.X (or python3) on PATH (the script says which it took).
#
# Usage: scripts/dagster-venv.sh             # create or reuse; prints the venv path
#        DAGSTER_VENV=/some/dir scripts/dagster-venv.sh
# Exit status 0 when the venv is ready, 1 when it could not be built (log in the venv).
set -euo pipefail
cd "$(dirname "$0")/.."

NAME=dagster-venv
VENV="${DAGSTER_VENV:-.venv-dagster}"
CONSTRAINTS="${DAGSTER_CONSTRAINTS:-deploy/dagster/constraints-dagster.txt}"
pinned() { sed -n "s/^$1==\([^ ;]*\).*/\1/p" "$CONSTRAINTS" | head -1; }
# The source brings no destination: the tests load into DuckDB, as an image would name its own.
REQUIREMENTS=("dagster==$(pinned dagster)" "dagster-dlt==$(pinned dagster-dlt)" "dlt[duckdb]")
PYTHONS="3.14 3.13 3.12 3.11 3.10" # Dagster 1.13's range (Requires-Python)

source scripts/tool-venv.sh
