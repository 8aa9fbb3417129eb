"""Helpers the tests share: the suite's credentials and dataset, an emulator with them, a
loader of real pipelines into DuckDB files, and the watch on dlt's real data folder. Test
modules import them from here (``from helpers import ...``); ``conftest.py`` holds the
fixtures."""

from __future__ import annotations

import ast
import os
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
from dlt.common.runtime.run_context import global_dir

from volcengine_live import VolcengineCredentials, volcengine_live_source
from volcengine_live_cli.metrics import last_run_metrics
from volcengine_live_emulator import Emulator

ACCESS_KEY_ID = "AKLTtestsuite"
SECRET_ACCESS_KEY = "test-suite-secret-7f3a9c"
DATASET = "volcengine_live_dataset"


REAL_DLT_DIR = os.path.realpath(global_dir())
"""dlt's own data folder on this machine (``/var/dlt`` as root, else ``~/.dlt``), found
before the suite points dlt elsewhere: the suite must never write into it."""

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
_CHANGING_EVENTS = frozenset(
    {"os.mkdir", "os.remove", "os.rmdir", "os.rename", "os.replace", "os.truncate",
     "os.symlink", "os.link", "os.chmod", "os.utime", "shutil.rmtree", "shutil.copyfile",
     "shutil.move"}
)  # fmt: skip
writes_to_real_dlt_dir: list[str] = []
"""Every change this process made under :data:`REAL_DLT_DIR`; it must stay empty."""


def is_under_real_dlt_dir(path: object) -> bool:
    if isinstance(path, int) or path is None:
        return False
    try:
        name = os.fsdecode(os.fspath(path))  # type: ignore[arg-type]
    except TypeError:
        return False
    full = os.path.realpath(name)
    return full == REAL_DLT_DIR or full.startswith(REAL_DLT_DIR + os.sep)


def _audit_writes(event: str, args: tuple[Any, ...]) -> None:
    if event == "open":
        path, mode, flags = args
        writing = any(c in mode for c in "wax+") if isinstance(mode, str) else False
        if (writing or (isinstance(flags, int) and flags & _WRITE_FLAGS)) and (
            is_under_real_dlt_dir(path)
        ):
            writes_to_real_dlt_dir.append(f"open({path!r}, {mode!r})")
    elif event in _CHANGING_EVENTS:
        for path in args[:2]:
            if isinstance(path, (str, bytes, os.PathLike)) and is_under_real_dlt_dir(path):
                writes_to_real_dlt_dir.append(f"{event}({path!r})")


def now() -> datetime:
    """The current time in UTC, to the second (the API's precision)."""
    return datetime.now(timezone.utc).replace(microsecond=0)


def list_a_task_twice(emulator: Emulator, start: datetime, task_id: str = "listed-twice") -> str:
    """A finished task of one hour from ``start`` that the API lists twice, on page 1."""
    record = {
        "Vhost": "v.example",
        "Domain": "d.example",
        "App": "live",
        "Stream": "listed-twice",
        "StartTime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "EndTime": (start + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Status": "已结束",
        "TaskId": task_id,
    }
    emulator.store.create_task(record, raw=True)
    emulator.store.create_task(record, raw=True)
    return task_id


def make_emulator(tasks: int = 2000, seed: int = 11, **options: Any) -> Emulator:
    """An emulator with the suite's credentials and no rate limit, unless ``options`` say
    otherwise; use it as a context manager."""
    options.setdefault("rate_limit", None)
    return Emulator(
        tasks=tasks,
        seed=seed,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        **options,
    )


def configure_the_command(monkeypatch: pytest.MonkeyPatch, emulator: Emulator) -> None:
    """Point ``volcengine-live`` at ``emulator`` with the suite's credentials, the dlt way
    (environment variables), as a user's configuration would."""
    monkeypatch.setenv("SOURCES__VOLCENGINE_LIVE__ENDPOINT", emulator.endpoint)
    monkeypatch.setenv("SOURCES__VOLCENGINE_LIVE__CREDENTIALS__ACCESS_KEY_ID", ACCESS_KEY_ID)
    monkeypatch.setenv(
        "SOURCES__VOLCENGINE_LIVE__CREDENTIALS__SECRET_ACCESS_KEY", SECRET_ACCESS_KEY
    )


def credentials(
    access_key_id: str = ACCESS_KEY_ID, secret_access_key: str = SECRET_ACCESS_KEY
) -> VolcengineCredentials:
    creds = VolcengineCredentials()
    creds.access_key_id = access_key_id
    creds.secret_access_key = secret_access_key
    return creds


@dataclass
class Loader:
    """One named pipeline into one DuckDB file, run as many times as a test needs."""

    emulator: Emulator
    workdir: Path
    name: str = "volcengine_live_test"

    @property
    def duckdb_path(self) -> Path:
        return self.workdir / "tasks.duckdb"

    def pipeline(self) -> dlt.Pipeline:
        return dlt.pipeline(
            pipeline_name=self.name,
            destination=dlt.destinations.duckdb(str(self.duckdb_path)),
            dataset_name=DATASET,
            pipelines_dir=str(self.workdir / "pipelines"),
        )

    def source(self, **settings: Any) -> Any:
        settings.setdefault("max_attempts", 3)
        settings.setdefault("backoff_seconds", 0.05)
        return volcengine_live_source(
            credentials=credentials(),
            endpoint=self.emulator.endpoint,
            **settings,
        )

    def run(self, **settings: Any) -> dict[str, Any]:
        """Run once; returns the source's metrics for the run (rows_read, rows_written, ...)."""
        pipeline = self.pipeline()
        pipeline.run(self.source(**settings))
        return self.metrics(pipeline)

    @staticmethod
    def metrics(pipeline: dlt.Pipeline) -> dict[str, Any]:
        found = last_run_metrics(pipeline)
        if found is None:
            raise AssertionError("no metrics for pull_record_tasks")
        return found

    def state(self) -> dict[str, Any]:
        sources = self.pipeline().state.get("sources", {})
        resource: dict[str, Any] = sources["volcengine_live"]["resources"]["pull_record_tasks"]
        return resource

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.duckdb_path), read_only=True) as con:
            con.execute(f"SET search_path = '{DATASET}'")
            return con.execute(sql).fetchall()

    def rows(self) -> dict[str, dict[str, Any]]:
        with duckdb.connect(str(self.duckdb_path), read_only=True) as con:
            cursor = con.execute(f"SELECT * FROM {DATASET}.pull_record_tasks")
            names = [column[0] for column in cursor.description]
            return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def assert_matches_emulator(loader: Loader) -> None:
    """The destination holds every task of the emulator once, each with its current status."""
    expected = {
        task["TaskId"]: task["Status"]
        for task in loader.emulator.store.all_tasks()
        if isinstance(task.get("TaskId"), str) and task["TaskId"]
    }
    counts = loader.query("SELECT count(*), count(DISTINCT task_id) FROM pull_record_tasks")
    assert counts[0][0] == counts[0][1], "duplicate task_id rows"
    loaded = {
        row[0]: row[1] for row in loader.query("SELECT task_id, status FROM pull_record_tasks")
    }
    assert loaded.keys() == expected.keys()
    stale = {
        tid: (loaded[tid], status) for tid, status in expected.items() if loaded[tid] != status
    }
    assert not stale, f"stale statuses: {list(stale.items())[:5]}"


def third_party_imports(folder: Path) -> dict[str, set[str]]:
    """Top-level modules imported by the ``.py`` files of ``folder`` (at any depth: also in
    functions and ``TYPE_CHECKING`` blocks), not the standard library's nor relative; each
    with the files that import it."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.partition(".")[0]
                if top not in sys.stdlib_module_names:
                    found.setdefault(top, set()).add(path.name)
    return found
