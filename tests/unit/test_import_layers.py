"""The source's modules import one way: from the API's edge up to the run, never back.

Each shipped module of ``sources/volcengine_live`` has a tier; a module may import modules
of its own tier or a lower one (read from the source with ``ast``, imports inside
functions included), and the imports between modules form no cycle. A new module must be
given a tier here, which is the point: where it stands is decided, not drifted into.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "sources" / "volcengine_live"

TIERS: list[tuple[str, set[str]]] = [
    ("facts", {"errors", "times", "checks", "settings", "load_format"}),
    ("api", {"signing", "credentials", "transport", "responses", "rate_limit", "client"}),
    ("scan", {"coverage", "scan"}),
    (
        "rows",
        {
            "records",
            "state",
            "open_tasks",
            "incremental",
            "reader",
            "task_filter",
            "writer",
            "destination_rows",
            "deletions",
            "record_files",
        },
    ),
    ("run", {"run"}),
    ("source", {"accounts", "__init__"}),
]
TIER_OF = {module: level for level, (_, modules) in enumerate(TIERS) for module in modules}


def _imports(module: str) -> set[str]:
    """The package's modules that ``module`` imports, wherever in the file."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            parts = (node.module or "").split(".")
            if node.level == 1 or parts[0] == "volcengine_live":
                inner = parts[1:] if parts[0] == "volcengine_live" else parts
                if inner and inner[0]:
                    found.add(inner[0])
                else:  # `from . import settings` names modules, or the package itself
                    found.update(alias.name for alias in node.names if alias.name in TIER_OF)
                    if not any(alias.name in TIER_OF for alias in node.names):
                        found.add("__init__")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "volcengine_live":
                    found.add(parts[1] if len(parts) > 1 else "__init__")
    found.discard(module)
    return found


def _graph() -> dict[str, set[str]]:
    return {path.stem: _imports(path.stem) for path in sorted(PACKAGE.glob("*.py"))}


def test_every_module_of_the_source_has_a_tier() -> None:
    modules = {path.stem for path in PACKAGE.glob("*.py")}
    assert modules - set(TIER_OF) == set(), "give the new module a tier in TIERS"
    assert set(TIER_OF) - modules == set(), "a module in TIERS is gone"


def test_no_module_imports_one_of_a_higher_tier() -> None:
    name = {module: TIERS[level][0] for module, level in TIER_OF.items()}
    upward = [
        f"{module} ({name[module]}) imports {imported} ({name[imported]})"
        for module, imported_modules in _graph().items()
        for imported in sorted(imported_modules)
        if TIER_OF[imported] > TIER_OF[module]
    ]
    assert upward == []


def test_the_modules_import_each_other_in_no_cycle() -> None:
    graph = _graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = [*path[path.index(module) :], module]
            raise AssertionError("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for imported in sorted(graph[module]):
            visit(imported, [*path, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_the_client_knows_nothing_of_scanning_and_settings_nothing_of_the_state() -> None:
    graph = _graph()
    assert not graph["client"] & {"scan", "coverage", "reader"}
    assert "state" not in graph["settings"]
