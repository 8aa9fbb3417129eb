"""The merge keeps one row per task, the latest read, even when staging holds a task twice.

The writer hands each task on once a run, but the load is still not told so (dlt's merge
option ``deduplicated``): a load resumed after a crash can copy a staging file twice
(``test_crash_resume.py``), and the API can list one task at two places of one pass. Real
pipelines into DuckDB files against the emulator on loopback.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import dlt
import numpy as np
import pyarrow as pa
import pytest

from volcengine_live import reader
from volcengine_live.writer import TaskIdHashes, last_read_per_task
from volcengine_live_emulator import Emulator
from volcengine_live_emulator.hostile import list_twice, spread_task_ids

from helpers import DATASET, Loader, assert_matches_emulator, list_a_task_twice, now
from postgres_server import PostgresServer, postgres_server_or_skip
from reliability_support import live_tasks


def _merge_sql(loader: Loader) -> list[str]:
    """The merge statements of every load the pipeline completed, oldest first."""
    loaded = loader.workdir / "pipelines" / loader.name / "load" / "loaded"
    jobs = sorted(loaded.glob("*/completed_jobs/pull_record_tasks.*.sql"))
    return [job.read_text() for job in jobs]


def _table_hints(loader: Loader) -> dict[str, object]:
    return dict(loader.pipeline().default_schema.tables["pull_record_tasks"])


def test_every_merge_numbers_staging_rows_by_key_and_the_latest_read_wins(
    loader: Loader,
) -> None:
    loader.run(page_size=100)
    loader.run(page_size=100)  # the second run merges into rows that are there
    assert_matches_emulator(loader)
    table = _table_hints(loader)
    assert not table.get("x-stage-data-deduplicated")
    assert table["columns"]["seen_at"].get("dedup_sort") == "desc"  # type: ignore[index]
    merges = _merge_sql(loader)
    assert len(merges) == 2
    assert all("INSERT INTO" in sql and "ROW_NUMBER" in sql for sql in merges)


def test_a_task_the_api_lists_twice_is_loaded_once(loader: Loader) -> None:
    list_a_task_twice(loader.emulator, now() - timedelta(days=3))  # settled, written at once
    metrics = loader.run(page_size=100)
    assert_matches_emulator(loader)
    # once: the list's 2,001 records hold 2,000 tasks, and the load gets a row per task
    assert metrics["rows_written"] == len(live_tasks(loader.emulator))


def test_a_task_listed_twice_then_deleted_once_leaves_one_current_row(loader: Loader) -> None:
    task_id = list_a_task_twice(loader.emulator, now() - timedelta(hours=2))
    loader.run(page_size=100)
    loader.emulator.store.delete_task(task_id)  # one of the two
    loader.run(page_size=100)
    assert "ROW_NUMBER" in _merge_sql(loader)[-1]
    assert_matches_emulator(loader)


# ---------------------------------------------- the API lists one TaskId on two pages
#
# Issue 23: the list held one TaskId twice, far apart. Run 1 wrote both rows; DuckDB's
# numbered merge hid it, a Delta table took 1,200 rows for 1,199 tasks and refused every
# later merge ("multiple source rows ... WHEN MATCHED"). The source now hands each task on
# once per load, on every destination.


def list_recent_tasks_on_two_pages(emulator: Emulator, count: int) -> list[str]:
    """``count`` tasks from deep in the list, made finished and recent (inside the lookback
    window, so every run writes them), then listed a second time at the head: page 1 holds
    the copies, later pages the originals. Each copy's Stream says it was read first."""
    task_ids = spread_task_ids(emulator.store, count)
    start = now() - timedelta(hours=3)
    for number, task_id in enumerate(task_ids):
        emulator.store.update_task(
            task_id,
            StartTime=start + timedelta(minutes=number),
            EndTime=start + timedelta(hours=1),
            Status="已结束",
            Stream=f"original-{number}",
        )
        list_twice(emulator.store, task_id)
        emulator.store.update_task(task_id, Stream="read-first")  # the copy, on page 1
    return task_ids


def _pages_of(emulator: Emulator, task_ids: list[str], page_size: int) -> dict[str, list[int]]:
    pages: dict[str, list[int]] = {task_id: [] for task_id in task_ids}
    for place, task in enumerate(emulator.store.all_tasks()):
        if task["TaskId"] in pages:
            pages[task["TaskId"]].append(place // page_size + 1)
    return pages


def test_a_task_listed_on_two_pages_is_written_once_and_the_later_read_wins(
    loader: Loader,
) -> None:
    task_ids = list_recent_tasks_on_two_pages(loader.emulator, 3)
    assert all(len(set(p)) == 2 for p in _pages_of(loader.emulator, task_ids, 100).values())
    distinct = len(live_tasks(loader.emulator))
    for _ in range(2):
        metrics = loader.run(page_size=100)
        assert metrics["rows_written"] <= distinct
        assert_matches_emulator(loader)
    rows = loader.rows()
    # page 1 is read first, the originals' pages after it: the original is the later read
    assert {rows[task_id]["stream"] for task_id in task_ids} == {f"original-{n}" for n in range(3)}


def test_a_task_listed_again_in_a_later_batch_is_not_written_again(
    loader: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reader, "BATCH_ROWS", 100)  # a batch per page of 100
    task_ids = list_recent_tasks_on_two_pages(loader.emulator, 3)
    distinct = len(live_tasks(loader.emulator))
    for _ in range(2):
        metrics = loader.run(page_size=100)
        assert metrics["rows_written"] <= distinct
        assert_matches_emulator(loader)
    assert set(loader.rows()) >= set(task_ids)


def _delta_rows(bucket: Path) -> list[tuple[str, str]]:
    from deltalake import DeltaTable

    table = DeltaTable(str(bucket / DATASET / "pull_record_tasks"))
    found = table.to_pyarrow_table(columns=["task_id", "stream"])
    return list(zip(*(found.column(c).to_pylist() for c in ("task_id", "stream")), strict=True))


def _postgres_rows(server: PostgresServer, schema: str) -> list[tuple[str, str]]:
    connection: Any = server.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT task_id, stream FROM {schema}.pull_record_tasks")
            return list(cursor.fetchall())
    finally:
        connection.close()


@pytest.mark.parametrize("destination", ["delta", "postgres"])
def test_tasks_listed_on_two_pages_load_once_into_delta_and_postgres_run_after_run(
    loader: Loader, destination: str
) -> None:
    task_ids = list_recent_tasks_on_two_pages(loader.emulator, 3)
    run_args: dict[str, Any] = {}
    if destination == "delta":
        pytest.importorskip("deltalake")
        bucket = loader.workdir / "delta"
        target: Any = dlt.destinations.filesystem(bucket_url=bucket.as_uri())
        run_args["table_format"] = "delta"
        dataset = DATASET

        def rows() -> list[tuple[str, str]]:
            return _delta_rows(bucket)
    else:
        server = postgres_server_or_skip()
        dataset = "listed_twice"
        target = dlt.destinations.postgres(credentials=server.url)

        def rows() -> list[tuple[str, str]]:
            return _postgres_rows(server, dataset)

    pipeline = dlt.pipeline(
        pipeline_name=f"listed_twice_{destination}",
        destination=target,
        dataset_name=dataset,
        pipelines_dir=str(loader.workdir / "pipelines"),
    )
    expected = live_tasks(loader.emulator).keys()
    for _ in range(2):  # the second run merges the same tasks into the rows there
        pipeline.run(loader.source(page_size=100), **run_args)
        found = rows()
        assert len(found) == len({task_id for task_id, _ in found}), "a task stored twice"
        assert {task_id for task_id, _ in found} == expected
    streams = dict(rows())
    assert {streams[task_id] for task_id in task_ids} == {f"original-{n}" for n in range(3)}


def test_the_written_task_set_finds_every_task_added_batch_after_batch_and_no_other() -> None:
    written = TaskIdHashes()
    added: list[str] = []
    for batch in range(40):  # batches of varied length, merged into runs as they come
        ids = [f"task-{batch}-{n}" for n in range(1 + batch * 7 % 23)]
        written.add(np.fromiter(map(hash, ids), dtype=np.int64, count=len(ids)))
        added += ids
    others = [f"other-{n}" for n in range(500)]
    probe = added + others
    found = written.contains(np.fromiter(map(hash, probe), dtype=np.int64, count=len(probe)))
    assert found[: len(added)].all()
    assert not found[len(added) :].any()


def test_a_batch_keeps_the_last_row_of_each_task_in_read_order() -> None:
    table = pa.table({"task_id": ["a", "b", "a", "c", "b"], "read": [1, 2, 3, 4, 5]})
    kept = last_read_per_task(table)
    assert kept.to_pylist() == [
        {"task_id": "a", "read": 3},
        {"task_id": "c", "read": 4},
        {"task_id": "b", "read": 5},
    ]
