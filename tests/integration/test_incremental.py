"""Incremental loading on StartTime, proven by running real pipelines several times against
the emulator while its data changes, and reading the DuckDB file back."""

from __future__ import annotations

import copy
import subprocess
import sys
from datetime import datetime, timedelta

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from volcengine_live.settings import STATUS_CODES
from volcengine_live.state import to_utc

from helpers import Loader, assert_matches_emulator, now

SETTLED = {"已结束", "停用"}


def create(loader: Loader, start: datetime, hours: float, status: str) -> str:
    task = loader.emulator.store.create_task(
        StartTime=start, EndTime=start + timedelta(hours=hours), Status=status
    )
    return str(task["TaskId"])


def test_first_run_loads_every_task_and_reruns_keep_one_row_each(loader: Loader) -> None:
    first = loader.run()
    total = loader.emulator.store.count
    assert first["rows_read"] == total and first["rows_written"] == total
    assert_matches_emulator(loader)
    statuses = {row[0] for row in loader.query("SELECT DISTINCT status FROM pull_record_tasks")}
    assert statuses == set(STATUS_CODES)  # the generated account has all four

    second = loader.run()
    assert_matches_emulator(loader)
    assert second["rows_read"] == total
    assert 0 < second["rows_written"] < total / 2


def test_an_old_task_that_was_open_shows_its_current_status(loader: Loader) -> None:
    long_recording = create(loader, now() - timedelta(days=30), 24 * 60, "生效中")
    scheduled = create(loader, now() + timedelta(days=2), 1, "未开始")
    loader.run()
    assert loader.rows()[long_recording]["status_code"] == "recording"

    loader.emulator.store.set_status(long_recording, "已结束")
    loader.emulator.store.set_status(scheduled, "停用")
    loader.run()
    rows = loader.rows()
    assert rows[long_recording]["status"] == "已结束"
    assert rows[scheduled]["status_code"] == "stopped"
    assert long_recording not in loader.state()["open_task_ids"]
    assert_matches_emulator(loader)


def test_a_task_scheduled_far_ahead_does_not_hide_tasks_created_later(loader: Loader) -> None:
    next_year = create(loader, now() + timedelta(days=365), 2, "未开始")
    run_started = now()
    loader.run()
    cursor = to_utc(loader.state()["start_time_cursor"])
    assert cursor is not None and cursor <= run_started + timedelta(seconds=1)

    tomorrow = create(loader, now() + timedelta(days=1), 1, "未开始")
    earlier_today = create(loader, now() - timedelta(hours=3), 1, "已结束")
    loader.run()
    rows = loader.rows()
    assert {next_year, tomorrow, earlier_today} <= rows.keys()
    assert_matches_emulator(loader)


def test_a_task_created_late_with_an_old_start_time_still_loads(loader: Loader) -> None:
    loader.run()
    loader.run()  # steady state: no late days
    late = create(loader, now() - timedelta(days=40), 1, "已结束")
    metrics = loader.run()
    assert late in loader.rows()
    assert metrics["late_days"] == 1 and metrics["scans"] == 2
    assert_matches_emulator(loader)
    again = loader.run()
    assert again["late_days"] == 0 and again["scans"] == 1


def test_a_settled_task_changed_below_the_window_is_rewritten(loader: Loader) -> None:
    loader.run()
    old = next(
        task
        for task in loader.emulator.store.all_tasks()
        if task["Status"] == "已结束"
        and (start := to_utc(task["StartTime"])) is not None
        and start < now() - timedelta(days=20)
    )
    loader.emulator.store.set_status(old["TaskId"], "停用")
    metrics = loader.run()
    assert loader.rows()[old["TaskId"]]["status"] == "停用"
    assert metrics["late_days"] == 1
    assert_matches_emulator(loader)


def test_a_no_change_rerun_writes_only_open_and_recent_tasks(loader: Loader) -> None:
    loader.run()
    loader.run()
    cursor = to_utc(loader.state()["start_time_cursor"])
    assert cursor is not None
    window_start = (cursor - timedelta(hours=24)).replace(hour=0, minute=0, second=0)

    metrics = loader.run()
    must_write = 0
    for task in loader.emulator.store.all_tasks():
        start = to_utc(task["StartTime"])
        if task["Status"] not in SETTLED or start is None or start >= window_start:
            must_write += 1
    total = loader.emulator.store.count
    print(f"no-change re-run wrote {metrics['rows_written']} of {total} tasks")
    assert metrics["rows_written"] == must_write
    assert metrics["late_days"] == 0
    assert must_write < total / 4


def test_the_lookback_window_rewrites_recent_settled_tasks(loader: Loader) -> None:
    recent = create(loader, now() - timedelta(hours=5), 1, "已结束")
    loader.run()
    corrected_end = now() - timedelta(hours=2)
    loader.emulator.store.update_task(recent, EndTime=corrected_end)
    loader.run()
    assert loader.rows()[recent]["end_time"] == corrected_end


def test_backfill_loads_the_range_and_leaves_the_state_alone(loader: Loader) -> None:
    loader.run()
    before = copy.deepcopy(loader.state())
    since, until = now() - timedelta(days=30), now() - timedelta(days=20)
    metrics = loader.run(initial_start_time=since.isoformat(), end_start_time=until.isoformat())
    in_range = [
        task
        for task in loader.emulator.store.all_tasks()
        if (start := to_utc(task["StartTime"])) is not None and since <= start < until
    ]
    assert metrics["rows_written"] == len(in_range) > 0
    assert loader.state() == before
    assert_matches_emulator(loader)


def test_backfill_first_then_regular_runs_load_everything(loader: Loader) -> None:
    since, until = now() - timedelta(days=10), now() - timedelta(days=5)
    loader.run(initial_start_time=since.isoformat(), end_start_time=until.isoformat())
    assert "start_time_cursor" not in loader.state() or loader.state()["start_time_cursor"] is None
    loader.run()
    assert_matches_emulator(loader)


def test_a_failed_run_does_not_advance_the_state(loader: Loader) -> None:
    loader.run()
    before = copy.deepcopy(loader.state())
    created = create(loader, now() - timedelta(hours=1), 1, "已结束")
    loader.emulator.faults.add("billing", page=3, times=None)
    with pytest.raises(PipelineStepFailed) as failed:
        loader.run(page_size=100)
    assert "RequestForbidden.BillingStatus" in str(failed.value)
    assert loader.state() == before
    assert created not in loader.rows()

    loader.emulator.faults.clear()
    loader.run()
    assert created in loader.rows()
    assert_matches_emulator(loader)


def test_a_locked_destination_fails_and_the_next_run_completes_the_load(loader: Loader) -> None:
    loader.run()
    created = create(loader, now() - timedelta(minutes=30), 1, "已结束")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(loader.duckdb_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(Exception) as failed:
            loader.run()
        assert "lock" in str(failed.value).lower()
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=30)
    loader.run()
    assert created in loader.rows()
    assert_matches_emulator(loader)


HOLD_LOCK = """
import sys, duckdb
connection = duckdb.connect(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()
"""
