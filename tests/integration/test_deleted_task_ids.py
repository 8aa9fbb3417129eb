"""A TaskId may hold any character the API's JSON can carry: quotes, a backslash, letters
of any script. The deletion check reads such a task back like any other, so a removed one
is flagged and a listed one is not, and one odd TaskId never turns the check off for the
rest of the account (issue 23 item 6: a NUL in an open task's TaskId made every run's
read-back SQL fail to parse, so nothing was ever flagged). A TaskId holding a NUL is set
aside as a reject on every destination (PostgreSQL cannot store it: ``records.py``), and
its presence in the list changes nothing for the others.

Real pipelines against the emulator on loopback, into a DuckDB file, a PostgreSQL server
and Parquet files."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pyarrow.parquet as pq
import pytest

from helpers import DATASET, Loader, now
from postgres_server import postgres_server_or_skip

ODD = "odd'\"\\ Ünïcødé 任务 🎥"
"""Every character that has broken SQL text and a destination can store: both quotes, a
backslash, non-ASCII."""

NUL_TASK_ID = "nul\x00task"
"""Listed throughout, set aside as a reject: never in the table, never flagged."""

UNREADABLE = "Cannot read the destination's tasks back"


@dataclass
class Target:
    """A destination and how to read its flagged TaskIds without the source's code."""

    destination: Any
    flagged: Callable[[], set[str]]
    run_args: dict[str, Any]
    odd: str = ODD


def _duckdb(loader: Loader) -> Target:
    def flagged() -> set[str]:
        return {row[0] for row in loader.query(_FLAGGED.format(table="pull_record_tasks"))}

    return Target(dlt.destinations.duckdb(str(loader.duckdb_path)), flagged, {})


def _postgres(loader: Loader) -> Target:
    server = postgres_server_or_skip()

    def flagged() -> set[str]:
        connection: Any = server.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(_FLAGGED.format(table=f"{DATASET}.pull_record_tasks"))
                return {row[0] for row in cursor.fetchall()}
        finally:
            connection.close()

    return Target(dlt.destinations.postgres(credentials=server.url), flagged, {})


def _parquet(loader: Loader) -> Target:
    bucket = loader.workdir / "lake"

    def flagged() -> set[str]:
        files = str(bucket / DATASET / "pull_record_tasks" / "*.parquet")
        with duckdb.connect() as con:
            rows = con.execute(
                "SELECT task_id FROM read_parquet(?, union_by_name = true) "
                "QUALIFY row_number() OVER (PARTITION BY task_id ORDER BY seen_at DESC) = 1 "
                "AND deleted_at IS NOT NULL",
                [files],
            ).fetchall()
        return {row[0] for row in rows}

    destination = dlt.destinations.filesystem(bucket_url=bucket.as_uri())
    return Target(destination, flagged, {"loader_file_format": "parquet"})


_FLAGGED = "SELECT task_id FROM {table} WHERE deleted_at IS NOT NULL"


@pytest.mark.parametrize("make_target", [_duckdb, _postgres, _parquet], ids=lambda f: f.__name__)
def test_a_taskid_of_any_bytes_is_flagged_when_removed_and_not_while_listed(
    loader: Loader, make_target: Callable[[Loader], Target], caplog: pytest.LogCaptureFixture
) -> None:
    flag_odd_task_ids(loader, make_target(loader), caplog)


@pytest.mark.parametrize("make_target", [_duckdb, _parquet], ids=lambda f: f.__name__)
def test_where_dlt_cannot_fetch_arrow_the_rows_are_read_and_keep_their_types(
    loader: Loader,
    make_target: Callable[[Loader], Target],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """dlt 1.22 to 1.24 fetch DuckDB's Arrow with ``fetch_record_batch``, which duckdb 2
    removed (``scripts/edge-check.sh`` runs that pair): the read-back then takes DB-API rows.
    The flagged rows appended to Parquet files keep every column's type, a column of nulls
    included (``data_issues``)."""
    from dlt.destinations.impl.duckdb.sql_client import DuckDBDBApiCursorImpl

    def removed_in_duckdb_2(self: Any, chunk_size: int) -> Any:
        raise AttributeError("'DuckDBPyConnection' object has no attribute 'fetch_record_batch'")

    monkeypatch.setattr(DuckDBDBApiCursorImpl, "iter_arrow", removed_in_duckdb_2)
    target = make_target(loader)
    flag_odd_task_ids(loader, target, caplog)
    files = sorted((loader.workdir / "lake").rglob("pull_record_tasks/*.parquet"))
    types = {str(pq.read_schema(path).remove_metadata()) for path in files}
    assert len(types) <= 1, f"the files disagree on column types: {types}"


def flag_odd_task_ids(loader: Loader, target: Target, caplog: pytest.LogCaptureFixture) -> None:
    """Two odd TaskIds and a plain one: listed, then the plain one removed, then the odd."""
    store = loader.emulator.store
    old = now() - timedelta(days=30)
    recent = now() - timedelta(hours=2)
    # Open below the window: read back by its TaskId (from the state); settled inside the
    # window: read back by its StartTime; an ordinary TaskId beside them.
    ids = {
        "open": target.odd + " open",
        "recent": target.odd + " recent",
        "plain": "plain-recent",
    }
    store.create_task(TaskId=NUL_TASK_ID, StartTime=recent, EndTime=recent + timedelta(hours=1))
    for name, start, hours, status in (
        ("open", old, 60 * 24, "生效中"),
        ("recent", recent, 1, "已结束"),
        ("plain", recent, 1, "已结束"),
    ):
        store.create_task(
            TaskId=ids[name], StartTime=start, EndTime=start + timedelta(hours=hours), Status=status
        )
    pipeline = dlt.pipeline(
        pipeline_name="odd_task_ids",
        destination=target.destination,
        dataset_name=DATASET,
        pipelines_dir=str(Path(loader.workdir) / "pipelines"),
    )

    def run() -> dict[str, Any]:
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            pipeline.run(loader.source(), **target.run_args)
        assert UNREADABLE not in caplog.text
        return Loader.metrics(pipeline)

    run()
    state = pipeline.state["sources"]["volcengine_live"]["resources"]["pull_record_tasks"]
    assert ids["open"] in state["open_task_ids"]
    listed = run()  # the read-back covers both odd TaskIds; neither is missing
    assert listed["deleted"] == 0 and listed["deletion_candidates"] == 0
    assert target.flagged() == set()

    store.remove_tasks([ids["plain"]])
    assert run()["deleted"] == 1
    assert target.flagged() == {ids["plain"]}  # the odd ones, still listed, are not

    store.remove_tasks([ids["open"], ids["recent"]])
    assert run()["deleted"] == 2
    assert target.flagged() == set(ids.values())  # byte for byte as the API gave them
    assert run()["deleted"] == 0  # flagged once
