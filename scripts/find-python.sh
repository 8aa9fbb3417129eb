#!/usr/bin/env bash
# Print the path of a Python interpreter this project supports (3.10 to 3.14), for the
# Makefile and the tool-venv scripts.
#
# The rule, in order:
#   1. $PYTHON, when set: used as given, and refused with a clear message when it does not fit.
#   2. `python3` as PATH finds it, when it fits: the interpreter the user put first is the one
#      they mean (a pyenv or Homebrew Python ahead of the system's).
#   3. Otherwise the newest python3.14 ... python3.10 found on PATH.
# Each candidate is run to read its real version: a name can be a pyenv shim for a version
# that is not active, or a Debian python3.11 that is 3.11.2.
#
# Usage: scripts/find-python.sh            # prints the interpreter's path, exit 0
#        scripts/find-python.sh --all      # every distinct supported interpreter found, one a line
#                                          # ("VERSION PATH"), PATH's and pyenv's, for the CI matrix
# Exit 1, with what to do on stderr, when none fits.
set -uo pipefail

MIN_MINOR=10
MAX_MINOR=14

# "3.12.1 /path/to/python" for an interpreter that fits, nothing otherwise.
describe() {
    local candidate="$1" out
    out="$("$candidate" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3], sys.executable)' 2>/dev/null)" || return 1
    local version="${out%% *}" minor
    minor="$(cut -d. -f2 <<<"$version")"
    [[ "${version%%.*}" == 3 && "$minor" -ge $MIN_MINOR && "$minor" -le $MAX_MINOR ]] || return 1
    echo "$out"
}

need() {
    {
        echo "find-python: $1"
        echo "  This project needs Python 3.$MIN_MINOR to 3.$MAX_MINOR."
        echo "  Install one (e.g. apt-get install python3, pyenv install 3.12, or python.org), or point"
        echo "  make at one:  make demo PYTHON=/path/to/python3.12"
    } >&2
    exit 1
}

if [[ "${1:-}" == "--all" ]]; then
    candidates=()
    for minor in $(seq $MAX_MINOR -1 $MIN_MINOR); do
        while IFS= read -r found; do candidates+=("$found"); done < <(type -ap "python3.$minor")
    done
    while IFS= read -r found; do candidates+=("$found"); done < <(type -ap python3)
    if command -v pyenv >/dev/null; then
        root="$(pyenv root)"
        for dir in "$root"/versions/3.*/bin; do
            [[ -x "$dir/python3" ]] && candidates+=("$dir/python3")
        done
    fi
    declare -A seen=()
    for candidate in "${candidates[@]}"; do
        line="$(describe "$candidate")" || continue
        real="$(readlink -f "${line#* }")"
        [[ -n "${seen[$real]:-}" ]] && continue
        seen[$real]=1
        echo "${line%% *} $real"
    done | sort -t. -k1,1n -k2,2n -k3,3n -u
    exit 0
fi

if [[ -n "${PYTHON:-}" ]]; then
    line="$(describe "$PYTHON")" || need "PYTHON=$PYTHON is not a Python 3.$MIN_MINOR-3.$MAX_MINOR interpreter."
    echo "${line#* }"
    exit 0
fi

if line="$(describe python3)"; then
    echo "${line#* }"
    exit 0
fi
for minor in $(seq $MAX_MINOR -1 $MIN_MINOR); do
    if line="$(describe "python3.$minor")"; then
        echo "${line#* }"
        exit 0
    fi
done
need "no supported Python found on PATH (python3 is $(python3 --version 2>&1 || echo missing))."
