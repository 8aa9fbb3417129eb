"""What the package declares is what it uses, and `make` installs what uv.lock pins.

The package's ranges are wide (a user's `pip install "dlt[duckdb]"` brings the newest dlt,
duckdb and sqlglot; the oldest dlt allowed is proven by `scripts/edge-check.sh`); the
suite itself runs on the lock's exact versions, checked here. The source (``volcengine_live``)
and the emulator install without extras, so they may import only the standard library and
the package's own dependencies; duckdb, matplotlib and tqdm belong to the command's ``cli``
extra."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, packages_distributions, requires, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from helpers import DATASET, Loader, third_party_imports

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "volcengine-live-dlt"

TRANSITIVE = {"urllib3": "requests"}
"""Modules a package imports from a dependency's own dependency, and which dependency that
is: the client catches urllib3's exception types, which requests raises through."""


def lock_versions() -> dict[str, set[str]]:
    """Every package of uv.lock and its versions (one per Python where markers split it)."""
    text = (ROOT / "uv.lock").read_text(encoding="utf-8")
    found: dict[str, set[str]] = {}
    for name, pinned in re.findall(
        r'^\[\[package\]\]\nname = "([^"]+)"\nversion = "([^"]+)"', text, re.M
    ):
        found.setdefault(canonicalize_name(name), set()).add(pinned)
    return found


def declared(extra: str | None = None) -> dict[str, Requirement]:
    """The package's requirements (from its installed metadata, which pyproject.toml makes):
    those without an extra, or those of ``extra``."""
    found: dict[str, Requirement] = {}
    for line in requires(PROJECT) or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or "extra" not in str(marker):
            wanted = extra is None
        else:
            wanted = extra is not None and marker.evaluate({"extra": extra})
        if wanted:
            found[canonicalize_name(requirement.name)] = requirement
    return found


def undeclared(folder: Path, allowed: set[str], first_party: set[str]) -> dict[str, set[str]]:
    """The modules ``folder`` imports whose distribution is not in ``allowed``."""
    owners = packages_distributions()
    wrong: dict[str, set[str]] = {}
    for module, files in third_party_imports(folder).items():
        if module in first_party:
            continue
        distributions = {canonicalize_name(d) for d in owners.get(module, [module])}
        via = TRANSITIVE.get(module)
        if not distributions & allowed and not (via and canonicalize_name(via) in allowed):
            wrong[module] = files
    return wrong


def test_make_installed_the_versions_the_lock_pins() -> None:
    locked = lock_versions()
    for name in ("dlt", "duckdb", "sqlglot", "pyarrow", "numpy", "requests"):
        assert version(name) in locked[name], f"{name} {version(name)}: the lock has {locked[name]}"
    drift = {}
    for name, pinned in locked.items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            continue  # another platform's or extra's package
        if installed not in pinned:
            drift[name] = (installed, sorted(pinned))
    assert not drift, f"installed differs from uv.lock (run `make install`): {drift}"


def test_the_source_imports_only_the_standard_library_and_its_declared_dependencies() -> None:
    base = set(declared())
    assert {"dlt", "pyarrow", "numpy", "requests"} <= base
    wrong = undeclared(ROOT / "sources" / "volcengine_live", base, {"volcengine_live"})
    assert not wrong, f"imported by the source but not its dependencies: {wrong}"


def test_the_emulator_installs_with_the_source_and_needs_nothing_more() -> None:
    wrong = undeclared(ROOT / "volcengine_live_emulator", set(declared()), set())
    assert not wrong, f"imported by the emulator but not the package's dependencies: {wrong}"


def test_the_command_alone_uses_duckdb_matplotlib_and_tqdm_from_its_cli_extra() -> None:
    cli = set(declared("cli"))
    assert {"duckdb", "tqdm", "matplotlib"} <= cli
    assert not {"duckdb", "tqdm", "matplotlib", "duckdb-cli"} & set(declared())
    command = ROOT / "volcengine_live_cli"
    ours = {"volcengine_live", "volcengine_live_cli", "volcengine_live_emulator"}
    wrong = undeclared(command, set(declared()) | cli, ours)
    assert not wrong, f"imported by the command but not the package's or the cli extra's: {wrong}"
    uses = third_party_imports(command)
    assert "duckdb" in uses  # the check above would pass vacuously on a renamed folder


def test_the_sources_requirements_file_says_what_the_package_declares() -> None:
    """``dlt init``-style installs read sources/volcengine_live/requirements.txt: the same
    requirements as the package's own, the dlt lower bound included."""
    path = ROOT / "sources" / "volcengine_live" / "requirements.txt"
    lines = [line.split("#")[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    listed = {canonicalize_name(r.name): r for r in map(Requirement, filter(None, lines))}
    base = declared()
    assert listed.keys() == base.keys()
    for name, requirement in listed.items():
        assert requirement.specifier == base[name].specifier, name
        assert requirement.extras == base[name].extras, name


def test_importing_the_source_loads_no_module_of_the_command() -> None:
    """In a fresh interpreter: what a user's ``import volcengine_live`` costs."""
    code = (
        "import sys, volcengine_live\n"
        "print(sorted(m for m in ('duckdb', 'matplotlib', 'tqdm') if m in sys.modules))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"


def test_tasks_reach_duckdb_as_parquet(loader: Loader) -> None:
    pipeline = loader.pipeline()
    info = pipeline.run(loader.source())
    formats = {
        job.job_file_info.file_format
        for package in info.load_packages
        for job in package.jobs["completed_jobs"]
        if job.job_file_info.table_name == "pull_record_tasks"
    }
    # The data as Parquet, then the merge statement; never dlt's row-by-row insert_values.
    assert formats == {"parquet", "sql"}
    assert pipeline.dataset_name == DATASET
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name("pull_record_tasks")
        [(rows,)] = client.execute_sql(f"SELECT count(*) FROM {table}")
    assert rows == loader.emulator.store.count


def test_the_import_check_finds_an_import_in_a_function_and_allows_relative_ones(
    tmp_path: Path,
) -> None:
    (tmp_path / "module.py").write_text(
        "from __future__ import annotations\nimport json\nfrom . import sibling\n"
        "import urllib3.exceptions\n\ndef f() -> None:\n    import duckdb\n"
        "    from pendulum import now\n",
        encoding="utf-8",
    )
    assert undeclared(tmp_path, {"requests"}, set()).keys() == {"duckdb", "pendulum"}
