"""Other dlt destinations load the same table as DuckDB: a real PostgreSQL server on loopback,
Parquet files on the filesystem destination, and Delta tables.

Each test runs the DuckDB reference pipeline and the destination under test side by side
against one emulator, several times, changing the emulator's tasks between runs (status
changes, new tasks, tasks created late with an old StartTime), and compares the tables
after every run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from volcengine_live_emulator import Emulator

from helpers import DATASET, Loader, assert_matches_emulator, now
from postgres_server import PostgresServer, postgres_server_or_skip

COLUMNS = "task_id, status, status_code, start_time, end_time"

Row = tuple[Any, ...]


def normalised(rows: list[Row]) -> set[Row]:
    """Timestamps as UTC instants: each database hands them back in its own time zone."""
    return {
        tuple(v.astimezone(timezone.utc) if isinstance(v, datetime) else v for v in row)
        for row in rows
    }


def duckdb_rows(loader: Loader) -> set[Row]:
    return normalised(loader.query(f"SELECT {COLUMNS} FROM pull_record_tasks"))


# ------------------------------------------------------------------ the changing account


@dataclass
class Account:
    """The emulator's task list, changed step by step the same way for every destination."""

    emulator: Emulator
    ids: dict[str, str] = field(default_factory=dict)
    # a UTC day well below the lookback window, whole: tasks placed on it share its day
    old_day: datetime = field(
        default_factory=lambda: (now() - timedelta(days=30)).replace(hour=0, minute=0, second=0)
    )

    def create(self, name: str, start: datetime, hours: float, status: str) -> None:
        task = self.emulator.store.create_task(
            StartTime=start, EndTime=start + timedelta(hours=hours), Status=status
        )
        self.ids[name] = str(task["TaskId"])

    def set_status(self, name: str, status: str) -> None:
        self.emulator.store.set_status(self.ids[name], status)

    def first_with_status(self, status: str) -> str:
        return next(
            str(task["TaskId"])
            for task in self.emulator.store.all_tasks()
            if task["Status"] == status and task["TaskId"] not in self.ids.values()
        )

    # The steps. Each is followed by one run of every pipeline.

    def start(self, *, open_old_task: bool) -> None:
        """Before the first run: a scheduled task and (optionally) a task recording for 30
        days and still open."""
        if open_old_task:
            self.create("old_open", self.old_day + timedelta(hours=1), 31 * 24, "生效中")
        self.create("scheduled", now() + timedelta(hours=3), 1, "未开始")

    def statuses_change_and_tasks_arrive(self) -> None:
        """Open tasks move on, new tasks appear, one of them back-dated 40 days."""
        self.set_status("scheduled", "生效中")
        self.emulator.store.set_status(self.first_with_status("生效中"), "已结束")
        self.emulator.store.set_status(self.first_with_status("未开始"), "停用")
        self.create("recent", now() - timedelta(hours=1), 0.5, "已结束")
        self.create("upcoming", now() + timedelta(hours=2), 1, "未开始")
        self.create("back_dated", now() - timedelta(days=40), 1, "已结束")

    def late_task_beside_an_open_one(self) -> None:
        """A task created late on the old open task's day: that day is re-read, so the open
        task (written anyway, being open) arrives twice in one load."""
        self.create("late_beside_open", self.old_day + timedelta(hours=2), 1, "已结束")
        self.emulator.store.update_task(self.ids["recent"], EndTime=now() - timedelta(minutes=5))

    def everything_settles(self) -> None:
        if "old_open" in self.ids:
            self.set_status("old_open", "已结束")
        self.set_status("upcoming", "停用")
        self.set_status("scheduled", "已结束")


# ------------------------------------------------------------------ side by side


@dataclass
class Target:
    """A destination under test: how to run the pipeline into it, how to read it back."""

    name: str
    pipeline: Callable[[], dlt.Pipeline]
    rows: Callable[[], set[Row]]
    run_args: dict[str, Any] = field(default_factory=dict)
    after_run: Callable[[dlt.Pipeline], None] | None = None


def side_by_side(
    loader: Loader, target: Target, steps: list[Callable[[], None]]
) -> list[dict[str, Any]]:
    """Run DuckDB and the target after each step; their tables must agree every time.
    Returns the source's metrics of each DuckDB run."""
    metrics: list[dict[str, Any]] = []
    for number, step in enumerate(steps, 1):
        step()
        metrics.append(loader.run())
        pipeline = target.pipeline()
        pipeline.run(loader.source(), **target.run_args)
        expected = duckdb_rows(loader)
        found = target.rows()
        assert found == expected, (
            f"{target.name} differs from DuckDB after run {number}: "
            f"missing {sorted(expected - found)[:3]}, extra {sorted(found - expected)[:3]}"
        )
        if target.after_run is not None:
            target.after_run(pipeline)
    assert_matches_emulator(loader)  # and DuckDB itself holds the emulator's current list
    return metrics


def _pipeline(loader: Loader, name: str, destination: Any, dataset: str = DATASET) -> Any:
    return lambda: dlt.pipeline(
        pipeline_name=name,
        destination=destination,
        dataset_name=dataset,
        pipelines_dir=str(loader.workdir / "pipelines"),
    )


# ------------------------------------------------------------------ PostgreSQL


@pytest.fixture
def postgres() -> PostgresServer:
    return postgres_server_or_skip()


def _pg_query(server: PostgresServer, sql: str) -> list[Row]:
    connection: Any = server.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
            return list(cursor.fetchall())
    finally:
        connection.close()


def test_incremental_merge_into_postgres_equals_duckdb(
    loader: Loader, postgres: PostgresServer
) -> None:
    schema = "merge_side_by_side"
    table = f"{schema}.pull_record_tasks"

    def no_duplicates(_: dlt.Pipeline) -> None:
        [(rows, distinct)] = _pg_query(
            postgres, f"SELECT count(*), count(DISTINCT task_id) FROM {table}"
        )
        assert rows == distinct, "duplicate task_id rows in Postgres"

    account = Account(loader.emulator)
    metrics = side_by_side(
        loader,
        Target(
            name="postgres",
            pipeline=_pipeline(
                loader, "pg_merge", dlt.destinations.postgres(credentials=postgres.url), schema
            ),
            rows=lambda: normalised(_pg_query(postgres, f"SELECT {COLUMNS} FROM {table}")),
            after_run=no_duplicates,
        ),
        [
            lambda: account.start(open_old_task=True),
            account.statuses_change_and_tasks_arrive,
            account.late_task_beside_an_open_one,
            account.everything_settles,
        ],
    )
    # runs 2 and 3 re-read a day below the window; run 3's held the open task a second time
    assert [m["late_days"] for m in metrics] == [0, 1, 1, 0]
    late = account.ids["late_beside_open"]
    [(status,)] = _pg_query(postgres, f"SELECT status FROM {table} WHERE task_id = '{late}'")
    assert status == "已结束"
    [(column_type,)] = _pg_query(
        postgres,
        "SELECT data_type FROM information_schema.columns WHERE table_schema = "
        f"'{schema}' AND table_name = 'pull_record_tasks' AND column_name = 'start_time'",
    )
    assert column_type == "timestamp with time zone"


# ------------------------------------------------------------------ filesystem: Parquet


LATEST_PER_TASK = """
    SELECT {columns} FROM read_parquet('{files}', union_by_name = true)
    QUALIFY row_number() OVER (PARTITION BY task_id ORDER BY seen_at DESC) = 1
"""
"""How to read the appended Parquet files: the latest version of each task wins."""


def test_parquet_files_read_back_with_duckdb_equal_the_duckdb_load(loader: Loader) -> None:
    """dlt cannot merge into plain files: it falls back to append. Every run adds a Parquet
    file with the rows it wrote; reading the latest row per task gives the merged table."""
    bucket = loader.workdir / "lake"
    files = f"{bucket}/{DATASET}/pull_record_tasks/*.parquet"
    written: list[int] = []
    tasks_at_run: list[int] = []

    def latest() -> set[Row]:
        with duckdb.connect() as con:
            sql = LATEST_PER_TASK.format(columns=COLUMNS, files=files)
            return normalised(con.execute(sql).fetchall())

    def appended(pipeline: dlt.Pipeline) -> None:
        counts = pipeline.last_trace.last_normalize_info.row_counts
        written.append(counts.get("pull_record_tasks", 0))
        tasks_at_run.append(loader.emulator.store.count)
        with duckdb.connect() as con:
            [(rows,)] = con.execute(f"SELECT count(*) FROM read_parquet('{files}')").fetchall()
        assert rows == sum(written)  # append: nothing is ever replaced

    account = Account(loader.emulator)
    side_by_side(
        loader,
        Target(
            name="filesystem parquet",
            pipeline=_pipeline(
                loader, "fs_parquet", dlt.destinations.filesystem(bucket_url=bucket.as_uri())
            ),
            rows=latest,
            run_args={"loader_file_format": "parquet"},
            after_run=appended,
        ),
        [
            lambda: account.start(open_old_task=True),
            account.statuses_change_and_tasks_arrive,
            account.late_task_beside_an_open_one,
            account.everything_settles,
        ],
    )
    parquet_files = list((bucket / DATASET / "pull_record_tasks").glob("*.parquet"))
    assert len(parquet_files) == 4  # one file per run
    assert written[0] == tasks_at_run[0]  # the first run writes every task
    assert all(0 < count < written[0] / 2 for count in written[1:])


# ------------------------------------------------------------------ filesystem: Delta


def _delta_rows(bucket: Path) -> set[Row]:
    """The Delta table's current files, read with DuckDB (the deltalake package lists them)."""
    from deltalake import DeltaTable

    table = DeltaTable(str(bucket / DATASET / "pull_record_tasks"))
    files = ", ".join(f"'{uri}'" for uri in table.file_uris())
    with duckdb.connect() as con:
        rows = con.execute(f"SELECT {COLUMNS} FROM read_parquet([{files}])").fetchall()
    assert len(rows) == len({row[0] for row in rows}), "duplicate task_id rows in Delta"
    return normalised(rows)


def _delta_target(loader: Loader) -> Target:
    bucket = loader.workdir / "delta"
    return Target(
        name="filesystem delta",
        pipeline=_pipeline(
            loader, "fs_delta", dlt.destinations.filesystem(bucket_url=bucket.as_uri())
        ),
        rows=lambda: _delta_rows(bucket),
        run_args={"table_format": "delta"},
    )


def test_delta_merge_equals_the_duckdb_load(loader: Loader) -> None:
    """On Delta, dlt merges (strategy ``upsert`` on task_id): one row per task, as DuckDB."""
    pytest.importorskip("deltalake")
    account = Account(loader.emulator)
    side_by_side(
        loader,
        _delta_target(loader),
        [
            lambda: account.start(open_old_task=False),
            account.statuses_change_and_tasks_arrive,
            account.everything_settles,
        ],
    )
    files = list((loader.workdir / "delta" / DATASET / "pull_record_tasks").glob("*.parquet"))
    assert len(files) >= 2  # merges rewrote files; the log says which are current


def test_delta_merge_survives_a_task_read_twice_in_one_run(
    loader: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("deltalake")
    monkeypatch.setenv("LOAD__RAISE_ON_MAX_RETRIES", "1")  # fail at once, not after 5 tries
    account = Account(loader.emulator)
    try:
        side_by_side(
            loader,
            _delta_target(loader),
            [
                lambda: account.start(open_old_task=True),
                account.statuses_change_and_tasks_arrive,
                account.late_task_beside_an_open_one,
            ],
        )
    except PipelineStepFailed as failure:
        assert failure.step == "load"
        assert "multiple source rows" in str(failure)
        raise
