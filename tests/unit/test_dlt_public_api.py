"""The source depends on dlt's public API only: what dlt documents for source authors, or
what dlt's own verified sources import. A release of dlt may move anything else; the source
installs into projects at any dlt of its range, so it must not reach for it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = [*sorted((ROOT / "sources" / "volcengine_live").glob("*.py"))]
SHIPPED.append(ROOT / "sources" / "volcengine_live_pipeline.py")

PUBLIC = {
    "dlt": "the top-level API: dlt.source, dlt.resource, dlt.mark, dlt.current, dlt.config",
    "dlt.sources": "DltSource, DltResource, incremental",
    "dlt.sources.helpers.rest_client.auth": "AuthConfigBase, the documented auth base",
    "dlt.common.configuration.specs": "configspec, documented for custom credentials",
    "dlt.common.configuration.providers": "ConfigProvider, documented for custom providers",
    "dlt.common.configuration.exceptions": "the configuration errors dlt documents",
    "dlt.common.typing": "TSecretStrValue, documented for secrets",
    "dlt.common.json": "dlt's JSON, as the verified sources import it",
    "dlt.common.time": "time helpers, as the verified sources import them",
    "dlt.common.libs.deltalake": "get_delta_tables, documented for Delta tables",
}
"""Module -> what the source takes from it, and why that counts as public."""


def dlt_imports(path: Path) -> list[tuple[str, str]]:
    """(module, name) for every ``import dlt...`` and ``from dlt... import name`` in a file."""
    found: list[tuple[str, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names if a.name.split(".")[0] == "dlt"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "dlt":
            found += [(str(node.module), a.name) for a in node.names if node.level == 0]
    return found


def test_the_shipped_source_imports_only_public_dlt_modules() -> None:
    used = {(path.name, module, name) for path in SHIPPED for module, name in dlt_imports(path)}
    assert used, "no dlt import found: the scan is broken"
    private = sorted(
        (file, module, name)
        for file, module, name in used
        if module not in PUBLIC or name.startswith("_")
    )
    assert not private, f"dlt internals imported: {private}"


def test_the_source_reads_no_private_dlt_machinery_by_name() -> None:
    """What the source used to reach for: the injection's hidden arguments and the provider
    container. Names in strings and attributes count too (getattr, kwargs)."""
    for path in SHIPPED:
        text = path.read_text()
        for name in ("get_orig_args", "last_config", "PluggableRunContext", "Container()"):
            assert name not in text, f"{path.name} uses {name}"
        assert "_dlt_orig_args" not in text and "_dlt_last_config" not in text
