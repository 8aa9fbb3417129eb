"""Hostile records through real pipelines (issue 23): fields the API adds named like the
project's own columns, times no destination or chart can hold, NUL bytes. The emulator on
loopback serves them (``volcengine_live_emulator.hostile``); DuckDB files and a real
PostgreSQL server take the load, run after run."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import dlt
import pytest

from volcengine_live_cli.run import check_table_fits
from volcengine_live_emulator import REMOVE
from volcengine_live_emulator.hostile import HostileData, make_hostile

from helpers import Loader, assert_matches_emulator, now
from postgres_server import postgres_server_or_skip


def _recent_finished(loader: Loader, **fields: Any) -> str:
    start = now() - timedelta(hours=3)
    task = loader.emulator.store.create_task(
        StartTime=start, EndTime=start + timedelta(hours=1), Status="已结束", **fields
    )
    return str(task["TaskId"])


@pytest.mark.parametrize("deleted_tasks", ["flag", "delete"])
def test_a_deleted_at_field_from_the_api_neither_flags_nor_deletes_a_listed_task(
    loader: Loader, deleted_tasks: str
) -> None:
    task_id = _recent_finished(loader, DeletedAt="2024-01-01T00:00:00Z")
    for _ in range(2):
        loader.run(deleted_tasks=deleted_tasks)
        assert_matches_emulator(loader)
        row = loader.rows()[task_id]
        assert row["deleted_at"] is None
        assert row["api_deleted_at"] == "2024-01-01T00:00:00Z"


def test_a_deleted_at_of_yes_loads_and_the_run_after_the_field_goes_away_too(
    loader: Loader,
) -> None:
    task_id = _recent_finished(loader, DeletedAt="yes", SeenAt="yes", DataIssues=7)
    loader.run()
    row = loader.rows()[task_id]
    assert (row["api_deleted_at"], row["api_seen_at"], row["api_data_issues"]) == (
        "yes",
        "yes",
        "7",
    )
    assert row["deleted_at"] is None and row["data_issues"] is None
    loader.emulator.store.update_task(task_id, DeletedAt=REMOVE, SeenAt=REMOVE, DataIssues=REMOVE)
    loader.run()
    assert_matches_emulator(loader)
    assert loader.rows()[task_id]["api_deleted_at"] is None


def test_an_account_field_on_one_record_leaves_the_table_one_accounts(loader: Loader) -> None:
    task_id = _recent_finished(loader, Account="someone-else")
    loader.run()
    check_table_fits(loader.pipeline(), None)  # raised "holds several accounts" (exit 2)
    loader.emulator.store.update_task(task_id, Account=REMOVE)
    loader.run()
    check_table_fits(loader.pipeline(), None)
    columns = {name for (name,) in loader.query(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_name = 'pull_record_tasks'")}  # fmt: skip
    assert "account" not in columns and "api_account" in columns


def test_times_out_of_range_are_flagged_and_stored_null_run_after_run(loader: Loader) -> None:
    touched = make_hostile(loader.emulator.store, HostileData(odd_times=4))
    for _ in range(2):
        metrics = loader.run()
        assert_matches_emulator(loader)
        assert metrics["flagged"] >= 4
    rows = loader.rows()
    for task_id in touched["odd_times"]:
        row = rows[task_id]
        assert row["start_time"] is None or row["end_time"] is None
        assert "out of range 2000..2099: '" in row["data_issues"]
        assert "0001-01-01T00:00:00Z" in row["data_issues"] or "9999-12-31" in row["data_issues"]


def test_every_kind_of_hostile_data_loads_into_postgres_twice(loader: Loader) -> None:
    server = postgres_server_or_skip()
    touched = make_hostile(
        loader.emulator.store,
        HostileData(listed_twice=2, extra_fields=4, odd_times=2, nul_task_ids=1),
    )
    _recent_finished(loader, Domain="nul\x00domain")
    pipeline = dlt.pipeline(
        pipeline_name="hostile_pg",
        destination=dlt.destinations.postgres(credentials=server.url),
        dataset_name="hostile",
        pipelines_dir=str(loader.workdir / "pipelines"),
    )
    for _ in range(2):
        pipeline.run(loader.source(page_size=100))
    connection: Any = server.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*), count(DISTINCT task_id) FROM hostile.pull_record_tasks"
            )
            (rows, distinct), = cursor.fetchall()  # fmt: skip
            cursor.execute("SELECT reason FROM hostile.pull_record_task_rejects")
            reasons = [reason for (reason,) in cursor.fetchall()]
            cursor.execute(
                "SELECT count(*) FROM hostile.pull_record_tasks WHERE domain LIKE 'nul%'"
            )
            (nul_domains,), = cursor.fetchall()  # fmt: skip
    finally:
        connection.close()
    listed = {task["TaskId"] for task in loader.emulator.store.all_tasks()}
    assert rows == distinct == len(listed) - len(touched["nul_task_ids"])
    assert reasons == ["TaskId holds a NUL byte"]
    assert nul_domains == 1
