#!/usr/bin/env bash
# The wheel works on its own: build it, install it with the command's extra (`[cli]`, with the
# lock's versions of its dependencies) into a clean venv, and run `volcengine-live --demo` from
# an empty folder, so that nothing the demo or the CLI needs is left behind in the checkout;
# then the report from the demo's file (its SQL comes from the package).
#
# Usage: scripts/wheel-check.sh PYTHON     (UV: a uv binary; the Makefile exports it)
set -euo pipefail
cd "$(dirname "$0")/.."

python="${1:?usage: wheel-check.sh PYTHON}"
uv="${UV:?UV must name a uv binary (the Makefile sets it)}"
export UV_PYTHON_DOWNLOADS=never
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$uv" build --quiet --wheel --out-dir "$work/dist" --python "$python"
wheel="$(ls "$work"/dist/*.whl)"
echo "wheel-check: built $(basename "$wheel")"
# What the wheel must hold: the source, the emulator, the CLI and the SQL files.
contents="$("$python" -m zipfile -l "$wheel")"
for needed in volcengine_live/__init__.py volcengine_live_emulator/__init__.py \
    volcengine_live_cli/command.py volcengine_live_cli/sql/upcoming_tasks.sql; do
    grep -q "$needed" <<<"$contents" || { echo "wheel-check: FAILED: $needed is not in the wheel" >&2; exit 1; }
done

"$uv" venv --quiet --python "$python" "$work/venv"
"$uv" export --quiet --frozen --no-hashes --no-emit-project --no-dev --extra cli >"$work/pins.txt"
"$uv" pip install --quiet --python "$work/venv/bin/python" -c "$work/pins.txt" "$wheel[cli]"
mkdir "$work/empty"
cd "$work/empty"
"$work/venv/bin/volcengine-live" --demo --progress none --pipelines-dir "$work/pipelines" >"$work/demo.log" 2>&1 ||
    { cat "$work/demo.log" >&2; echo "wheel-check: FAILED: the demo did not run from the wheel" >&2; exit 1; }
rows="$("$work/venv/bin/python" -c "import duckdb; print(duckdb.connect('volcengine_live_demo.duckdb', read_only=True).sql('SELECT COUNT(*) FROM volcengine_live_dataset.pull_record_tasks').fetchone()[0])")"
[[ "$rows" -gt 0 ]] || { echo "wheel-check: FAILED: the demo loaded no task" >&2; exit 1; }
"$work/venv/bin/volcengine-live" report --duckdb volcengine_live_demo.duckdb --output report.html >>"$work/demo.log" 2>&1 &&
    grep -q "<img" report.html ||
    { cat "$work/demo.log" >&2; echo "wheel-check: FAILED: the report did not run from the wheel" >&2; exit 1; }
echo "wheel-check: passed: the wheel alone, from an empty folder, loaded $rows demo tasks and wrote the report"
