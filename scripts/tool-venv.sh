# Shared by scripts/airflow-venv.sh and scripts/dagster-venv.sh, which source it after setting
# NAME (for messages), VENV, CONSTRAINTS, REQUIREMENTS (an array) and PYTHONS (the "3.X"
# versions the orchestrator supports, newest first): build or reuse the venv, print its path.
# shellcheck shell=bash
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
