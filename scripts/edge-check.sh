#!/usr/bin/env bash
# The package on a user's own environment, at both ends of its dlt range: the lock pins one
# set of versions, but `pip install "dlt[duckdb]"` gives a user the newest dlt, duckdb and
# sqlglot, and the package allows dlt as old as its lower bound. For each end, the wheel goes
# into a fresh venv built the way a user builds one, and a short subset of the tests runs the
# source through plain dlt there, importing the package from the venv, not the checkout:
#
#   newest  plain pip: `pip install "dlt[duckdb]"`, then the wheel with no extras. Fails if
#           installing the package changed dlt, duckdb or sqlglot, or brought the command's
#           dependencies (matplotlib, tqdm, duckdb-cli).
#   oldest  `dlt[duckdb]==<lower bound>.*` (from sources/volcengine_live/requirements.txt),
#           then the wheel; uv installs it (the same resolution, faster).
#
# Needs PyPI (or PIP_INDEX_URL / UV_INDEX_URL): without it this fails, loudly.
# Usage: scripts/edge-check.sh PYTHON     (UV: a uv binary; the Makefile exports it)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

python="${1:?usage: edge-check.sh PYTHON}"
uv="${UV:?UV must name a uv binary (the Makefile sets it)}"
export UV_PYTHON_DOWNLOADS=never PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONNOUSERSITE=1
unset PYTHONPATH VIRTUAL_ENV
started=$SECONDS
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "edge-check: FAILED: $*" >&2; exit 1; }
installs="$work/install.log"
install() {  # WHAT COMMAND...: an installation, its output kept for when it fails
    local what="$1"
    shift
    "$@" >>"$installs" 2>&1 || { tail -30 "$installs" >&2; fail "could not install $what (above)"; }
}

# Through plain dlt: the native script, the deletion read-back on a DuckDB file and on Parquet
# files, the incremental rules. Postgres needs a server and psycopg2: the lock's suite covers it.
SUBSET=(tests/integration/test_dlt_native.py tests/integration/test_deleted_task_ids.py
    tests/integration/test_deleted_tasks.py tests/integration/test_incremental.py
    "tests/integration/test_deleted_destinations.py::test_parquet_files_append_the_flag_and_the_latest_row_query_agrees")
TEST_TOOLS=("pytest>=8,<10" "pytest-timeout>=2.3,<3" "psutil>=5.9,<8")
COMMAND_ONLY=(matplotlib tqdm duckdb-cli)

oldest="$(sed -n 's/^dlt\[[a-z,]*\]>=\([0-9]*\.[0-9]*\).*/\1/p' sources/volcengine_live/requirements.txt)"
[[ -n "$oldest" ]] || fail "no dlt lower bound (dlt[...]>=X.Y) in sources/volcengine_live/requirements.txt"

index="${PIP_INDEX_URL:-https://pypi.org/simple}"
"$python" - "$index" <<'EOF' || fail "the package index ($index) cannot be reached: this check installs the newest dlt from it"
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[1].rstrip("/") + "/dlt/", timeout=20).read(1)
except OSError as error:
    sys.exit(f"edge-check: {error}")
EOF

"$uv" build --quiet --wheel --out-dir "$work/dist" --python "$python"
wheel="$(ls "$work"/dist/*.whl)"
echo "edge-check: built $(basename "$wheel"); oldest dlt: $oldest"

versions() {  # NAME==VERSION of dlt, duckdb and sqlglot in a `pip freeze`
    grep -iE '^(dlt|duckdb|sqlglot)==' "$1" | sort -f
}

run_subset() {  # VENV LABEL: the test tools, then the subset, from the tests folder
    local venv="$1" label="$2" log="$work/$2.log" begun=$SECONDS
    install "the test tools" "$uv" pip install --quiet --python "$venv/bin/python" "${TEST_TOOLS[@]}"
    "$venv/bin/python" -m pip freeze >"$work/$label-tested.txt"
    [[ "$(versions "$work/$label-tested.txt")" == "$(versions "$work/$label-before.txt")" ]] ||
        fail "$label: installing the test tools changed dlt, duckdb or sqlglot"
    # From tests/ (never the checkout's root, whose volcengine_live_cli/ and
    # volcengine_live_emulator/ folders would shadow the installed ones): what pytest imports.
    (cd tests && "$venv/bin/python" -c '
import sys, sysconfig, volcengine_live, volcengine_live_cli, volcengine_live_emulator
import dlt, duckdb, sqlglot, pyarrow, numpy, requests
site = sysconfig.get_paths()["purelib"]
for module in (volcengine_live, volcengine_live_cli, volcengine_live_emulator):
    print(f"  {module.__name__}: {module.__file__}")
    if not module.__file__.startswith(site):
        sys.exit(f"{module.__name__} is imported from {module.__file__}, not the venv")
print("  python " + sys.version.split()[0], *(f"{m.__name__} {m.__version__}"
      for m in (dlt, duckdb, sqlglot, pyarrow, numpy, requests)))
') || fail "$label: the tests would not import the installed package"
    (cd tests && "$venv/bin/python" -m pytest -q -p no:cacheprovider -c "$repo/pyproject.toml" \
        --rootdir "$repo" -k "not postgres" "${SUBSET[@]/#tests\//}") >"$log" 2>&1 ||
        { tail -40 "$log" >&2; fail "$label: the tests failed (above)"; }
    echo "edge-check: $label: $(tail -1 "$log" | tr -d '=') (tests $((SECONDS - begun)) s)"
}

# newest: what `pip install "dlt[duckdb]"` gives a user, then the package with plain pip.
echo "edge-check: newest: pip install \"dlt[duckdb]\", then the wheel"
"$python" -m venv "$work/newest"
install '"dlt[duckdb]" with pip' "$work/newest/bin/python" -m pip install --quiet "dlt[duckdb]"
"$work/newest/bin/python" -m pip freeze >"$work/newest-before.txt"
install "the wheel with pip" "$work/newest/bin/python" -m pip install --quiet "$wheel"
"$work/newest/bin/python" -m pip freeze >"$work/newest-after.txt"
if [[ "$(versions "$work/newest-after.txt")" != "$(versions "$work/newest-before.txt")" ]]; then
    diff <(versions "$work/newest-before.txt") <(versions "$work/newest-after.txt") >&2 || true
    fail "newest: installing the package changed dlt, duckdb or sqlglot (above): its ranges must allow what pip gives a user"
fi
for name in "${COMMAND_ONLY[@]}"; do
    ! grep -iqE "^${name//-/[-_]}==" "$work/newest-after.txt" ||
        fail "newest: the package alone installed $name, which only the cli extra may bring"
done
echo "edge-check: newest: $(versions "$work/newest-after.txt" | tr '\n' ' ')unchanged by the package"
run_subset "$work/newest" newest

# oldest: the package's lower bound for dlt, with whatever else pip pairs it with today.
echo "edge-check: oldest: dlt[duckdb]==$oldest.*, then the wheel"
"$uv" venv --quiet --python "$python" "$work/oldest"
install "dlt[duckdb]==$oldest.*" "$uv" pip install --quiet --python "$work/oldest/bin/python" \
    "dlt[duckdb]==$oldest.*" pip
"$work/oldest/bin/python" -m pip freeze >"$work/oldest-before.txt"
install "the wheel beside dlt $oldest" "$uv" pip install --quiet --python "$work/oldest/bin/python" "$wheel"
"$work/oldest/bin/python" -m pip freeze >"$work/oldest-after.txt"
[[ "$(versions "$work/oldest-after.txt")" == "$(versions "$work/oldest-before.txt")" ]] ||
    fail "oldest: installing the package moved dlt, duckdb or sqlglot off dlt $oldest"
echo "edge-check: oldest: $(versions "$work/oldest-after.txt" | tr '\n' ' ')"
run_subset "$work/oldest" oldest

echo "edge-check: passed: the newest and the oldest dlt ($oldest) in $((SECONDS - started)) s"
