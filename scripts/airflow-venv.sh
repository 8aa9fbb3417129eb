#!/usr/bin/env bash
# Build (or reuse) an isolated virtualenv with Apache Airflow, dlt and this project, in which
# tests/test_scheduling.py runs the DAG in deploy/airflow/dags/.
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
REQUIREMENTS=("apache-airflow==$VERSION")
case "$VERSION" in
    2.*) PYTHONS="3.12 3.11 3.10" ;;           # Airflow 2.10's range
    *) PYTHONS="3.14 3.13 3.12 3.11 3.10" ;;   # Airflow 3.3's range (Requires-Python)
esac

# ---- the same below in scripts/dagster-venv.sh ----------------------------------------------
STAMP="$VENV/.installed"
if [[ -f "$STAMP" && "$STAMP" -nt pyproject.toml && "$STAMP" -nt "$CONSTRAINTS" &&
    "$(cat "$STAMP")" == "$CONSTRAINTS" ]]; then
    echo "$VENV"
    exit 0
fi

# "3.X" of an interpreter that runs, that the orchestrator supports and that this project's
# requires-python (simple >=, >, <=, <, ==, != clauses) accepts; nothing otherwise.
supported() {
    local version
    version="$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" || return 1
    [[ " $PYTHONS " == *" $version "* ]] || return 1
    "$1" - "$version" <<'EOF' 2>/dev/null || return 1
import re, sys
spec = re.search(r'^requires-python\s*=\s*"([^"]*)"', open("pyproject.toml").read(), re.M)
have = tuple(int(p) for p in sys.argv[1].split("."))
for clause in (spec.group(1).split(",") if spec else []):
    op, ver = re.fullmatch(r"\s*(>=|<=|==|!=|>|<)\s*([\d.]+)\s*", clause).groups()
    want = tuple(int(p) for p in ver.split("."))[:2]
    ok = {">=": have >= want, ">": have > want, "<=": have <= want, "<": have < want,
          "==": have == want, "!=": have != want}[op]
    if not ok:
        sys.exit(1)
EOF
    echo "$version"
}

python=""
if [[ -n "${PYTHON:-}" ]] && supported "$PYTHON" >/dev/null; then
    python="$PYTHON"
else
    for name in $(printf 'python%s ' $PYTHONS) python3; do
        candidate="$(command -v "$name" || true)"
        if [[ -n "$candidate" ]] && supported "$candidate" >/dev/null; then
            python="$("$candidate" -c 'import sys; print(sys.executable)')"
            break
        fi
    done
    if [[ -z "$python" ]]; then
        echo "$NAME: no usable Python: need one of $PYTHONS that pyproject.toml's" \
            "requires-python accepts (PYTHON=${PYTHON:-unset})" >&2
        exit 1
    fi
    echo "$NAME: PYTHON=${PYTHON:-unset} is not a Python that both it and this project's" \
        "requires-python support ($PYTHONS); using $python instead" >&2
fi

started=$(date +%s)
echo "$NAME: installing ${REQUIREMENTS[*]} and this project into $VENV" \
    "(Python $(supported "$python"), with $([[ -n "${UV:-}" ]] && echo uv || echo pip))" >&2
if [[ -e "$VENV" && ! -f "$VENV/pyvenv.cfg" ]]; then
    echo "$NAME: $VENV exists and is not a virtualenv: not touching it" >&2
    exit 1
fi
rm -rf "$VENV"
mkdir -p "$(dirname "$VENV")"
log="$(mktemp)"
if [[ -n "${UV:-}" ]]; then
    install() {
        "$UV" venv -q -p "$python" "$VENV" &&
            "$UV" pip install -p "$VENV/bin/python" -c "$CONSTRAINTS" "${REQUIREMENTS[@]}" -e .
    }
else
    install() {
        "$python" -m venv "$VENV" &&
            "$VENV/bin/python" -m pip install --disable-pip-version-check --upgrade "pip>=24" &&
            "$VENV/bin/python" -m pip install --disable-pip-version-check -c "$CONSTRAINTS" \
                "${REQUIREMENTS[@]}" -e .
    }
fi
if ! install >"$log" 2>&1; then
    mkdir -p "$VENV" && mv "$log" "$VENV/install.log"
    grep -v "^WARNING: Location" "$VENV/install.log" | tail -20 >&2
    echo "$NAME: FAILED (full log: $VENV/install.log)" >&2
    exit 1
fi
mv "$log" "$VENV/install.log"
echo '*' >"$VENV/.gitignore" # never committed, whatever the repository's .gitignore says
echo "$CONSTRAINTS" >"$STAMP"
echo "$NAME: ready in $(($(date +%s) - started)) s" >&2
echo "$VENV"
