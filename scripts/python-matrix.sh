#!/usr/bin/env bash
# For every supported Python on this machine other than the one `make test` used: a fresh venv
# from uv.lock (frozen), `volcengine-live --demo` from an empty folder, and a fast subset of the
# tests. Proves that the universal lock installs and runs on each interpreter a user may have
# (Debian's own python3.11 included). A supported minor version that is absent is reported as
# SKIPPED, never a failure.
#
# Usage: scripts/python-matrix.sh MAIN_PYTHON     (UV: a uv binary; the Makefile exports it)
# Exit 1 when any interpreter that is present fails.
set -uo pipefail
cd "$(dirname "$0")/.."

main="$(readlink -f "${1:?usage: python-matrix.sh MAIN_PYTHON}")"
uv="${UV:?UV must name a uv binary (the Makefile sets it)}"
export UV_PYTHON_DOWNLOADS=never
# Fast, and between them they touch every dependency: the pinned versions together, the
# signer against the official SDK, record conversion, the incremental rules, the CLI.
SUBSET=(tests/deploy/test_dependencies.py tests/unit/test_signing.py tests/unit/test_records.py
    tests/integration/test_incremental.py tests/integration/test_auth.py)

declare -A present=()
failed=()
summary=()
while read -r version path; do
    minor="${version%.*}"
    present[$minor]=1
    if [[ "$(readlink -f "$path")" == "$main" ]]; then
        summary+=("python $version ($path): the main suite's interpreter")
        continue
    fi
    started=$(date +%s)
    venv=".venv-matrix/$version"
    log="$venv.log"
    mkdir -p .venv-matrix
    echo "matrix: Python $version at $path: venv from the lock, demo, fast tests" >&2
    work="$(mktemp -d)"
    if UV_PROJECT_ENVIRONMENT="$venv" "$uv" sync --frozen --quiet --extra cli --extra dev --python "$path" >"$log" 2>&1 &&
        [[ "$("$venv/bin/python" -c 'import platform; print(platform.python_version())')" == "$version" ]] &&
        (cd "$work" && "$OLDPWD/$venv/bin/volcengine-live" --demo --progress none \
            --pipelines-dir "$work/pipelines") >>"$log" 2>&1 &&
        [[ -f "$work/volcengine_live_demo.duckdb" ]] &&
        DLT_DATA_DIR="$work/dlt" "$venv/bin/python" -m pytest -q -p no:cacheprovider "${SUBSET[@]}" >>"$log" 2>&1; then
        summary+=("python $version ($path): passed in $(($(date +%s) - started)) s ($(tail -1 "$log" | tr -d '='))")
    else
        tail -30 "$log" >&2
        summary+=("python $version ($path): FAILED (log: $log)")
        failed+=("$version")
    fi
    rm -rf "$work"
done < <(scripts/find-python.sh --all)

for minor in 3.10 3.11 3.12 3.13 3.14; do
    [[ -n "${present[$minor]:-}" ]] || summary+=("python $minor: not on this machine, SKIPPED")
done
echo "matrix:"
printf '  %s\n' "${summary[@]}"
[[ ${#failed[@]} -eq 0 ]]
