"""Shared fixtures: a real emulator on loopback and real pipelines into DuckDB files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest

from volcengine_live import VolcengineCredentials, volcengine_live_source
from volcengine_live.metrics import last_run_metrics
from volcengine_live_emulator import Emulator

ACCESS_KEY_ID = "AKLTtestsuite"
SECRET_ACCESS_KEY = "test-suite-secret-7f3a9c"
DATASET = "volcengine_live_dataset"


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's own credentials and settings out of the tests."""
    for name in list(os.environ):
        if name.startswith(("SOURCES__VOLCENGINE_LIVE__", "VOLC_")):
            monkeypatch.delenv(name)


def now() -> datetime:
    """The current time in UTC, to the second (the API's precision)."""
    return datetime.now(timezone.utc).replace(microsecond=0)


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


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with make_emulator() as emu:
        yield emu


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


@pytest.fixture
def loader(emulator: Emulator, tmp_path: Path) -> Loader:
    return Loader(emulator, tmp_path)


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
