"""Deleted tasks on the other destinations the project tests: a real PostgreSQL server,
Delta tables (merge) and Parquet files (append), side by side with DuckDB.

The source reads the destination's live rows back to find the tasks that left the list;
each destination must give the same answer as DuckDB: flagged the same tasks, kept their
fields, and (Parquet) the documented latest-row-per-task query shows them flagged."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pytest
from test_deleted_tasks import REMOVED, Tasks

from helpers import DATASET, Loader
from postgres_server import PostgresServer, postgres_server_or_skip

Row = tuple[Any, ...]
COLUMNS = "task_id, status, end_time, deleted_at IS NOT NULL AS deleted"


def _pipeline(loader: Loader, name: str, destination: Any, dataset: str = DATASET) -> Any:
    return dlt.pipeline(
        pipeline_name=name,
        destination=destination,
        dataset_name=dataset,
        pipelines_dir=str(loader.workdir / "pipelines"),
    )


def _normalised(rows: list[Row]) -> set[Row]:
    return {tuple(v.timestamp() if hasattr(v, "timestamp") else v for v in row) for row in rows}


def side_by_side(
    loader: Loader,
    target: Callable[[], dlt.Pipeline],
    rows: Callable[[], set[Row]],
    run_args: dict[str, Any] | None = None,
    deleted_tasks: str = "flag",
) -> list[dict[str, Any]]:
    """Tasks of every kind, then removed, a quiet run, then some back; after each run the
    target holds what DuckDB holds (less the deleted rows in ``delete`` mode)."""
    tasks = Tasks(loader.emulator)
    steps = [
        tasks.add_every_kind,
        lambda: tasks.remove(*REMOVED),
        lambda: None,
        lambda: tasks.restore("old_a", "scheduled", "old_open"),
    ]
    metrics = []
    for number, step in enumerate(steps, 1):
        step()
        loader.run()
        pipeline = target()
        pipeline.run(loader.source(deleted_tasks=deleted_tasks), **(run_args or {}))
        metrics.append(Loader.metrics(pipeline))
        expected = _normalised(loader.query(f"SELECT {COLUMNS} FROM pull_record_tasks"))
        if deleted_tasks == "delete":
            expected = {row for row in expected if not row[-1]}
        found = rows()
        assert found == expected, (
            f"differs from DuckDB after run {number}: missing {sorted(expected - found)[:3]}, "
            f"extra {sorted(found - expected)[:3]}"
        )
    assert [m["deleted"] for m in metrics] == [0, len(REMOVED), 0, 0]
    flagged = loader.query("SELECT count(*) FROM pull_record_tasks WHERE deleted_at NOTNULL")
    assert flagged == [(len(REMOVED) - 3,)]
    return metrics


@pytest.mark.parametrize("deleted_tasks", ["flag", "delete"])
def test_postgres_flags_and_deletes_as_duckdb(loader: Loader, deleted_tasks: str) -> None:
    server: PostgresServer = postgres_server_or_skip()
    schema = f"deleted_{deleted_tasks}"

    def rows() -> set[Row]:
        connection: Any = server.connect()
        try:
            with connection.cursor() as cursor:
                cursor.execute(f"SELECT {COLUMNS} FROM {schema}.pull_record_tasks")
                return _normalised(list(cursor.fetchall()))
        finally:
            connection.close()

    destination = dlt.destinations.postgres(credentials=server.url)
    side_by_side(
        loader,
        lambda: _pipeline(loader, f"pg_{deleted_tasks}", destination, schema),
        rows,
        deleted_tasks=deleted_tasks,
    )


@pytest.mark.parametrize("deleted_tasks", ["flag", "delete"])
def test_delta_flags_and_deletes_as_duckdb(loader: Loader, deleted_tasks: str) -> None:
    pytest.importorskip("deltalake")
    from deltalake import DeltaTable

    bucket = loader.workdir / "delta"

    def rows() -> set[Row]:
        table = DeltaTable(str(bucket / DATASET / "pull_record_tasks"))
        files = ", ".join(f"'{uri}'" for uri in table.file_uris())
        with duckdb.connect() as con:
            sql = f"SELECT {COLUMNS} FROM read_parquet([{files}], union_by_name = true)"
            found = con.execute(sql).fetchall()
        assert len(found) == len({row[0] for row in found}), "duplicate task_id rows in Delta"
        return _normalised(found)

    destination = dlt.destinations.filesystem(bucket_url=bucket.as_uri())
    side_by_side(
        loader,
        lambda: _pipeline(loader, f"delta_{deleted_tasks}", destination),
        rows,
        run_args={"table_format": "delta"},
        deleted_tasks=deleted_tasks,
    )


def test_parquet_files_append_the_flag_and_the_latest_row_query_agrees(loader: Loader) -> None:
    bucket: Path = loader.workdir / "lake"
    files = f"{bucket}/{DATASET}/pull_record_tasks/*.parquet"

    def rows() -> set[Row]:
        with duckdb.connect() as con:
            found = con.execute(
                f"SELECT {COLUMNS} FROM read_parquet('{files}', union_by_name = true) "
                "QUALIFY row_number() OVER (PARTITION BY task_id ORDER BY seen_at DESC) = 1"
            ).fetchall()
        return _normalised(found)

    destination = dlt.destinations.filesystem(bucket_url=bucket.as_uri())
    metrics = side_by_side(
        loader,
        lambda: _pipeline(loader, "fs_parquet", destination),
        rows,
        run_args={"loader_file_format": "parquet"},
    )
    with duckdb.connect() as con:
        [(flag_rows,)] = con.execute(
            f"SELECT count(*) FROM read_parquet('{files}', union_by_name = true) "
            "WHERE deleted_at IS NOT NULL"
        ).fetchall()
    assert flag_rows == len(REMOVED)  # appended once, not on every later run
    assert metrics[2]["scans"] == 1  # the quiet run: no extra pass
