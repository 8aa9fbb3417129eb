"""Which rows a run writes, and the state it leaves (unit level; the emulator-backed tests
in test_incremental.py prove the same rules through real pipelines)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pendulum
import pyarrow as pa
import pytest

from volcengine_live.incremental import StateObserver, WritePlan
from volcengine_live.records import tasks_to_arrow
from volcengine_live.state import IncrementalState, to_utc

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=timezone.utc)
SEEN = NOW


def task(task_id: str, start: datetime | None, status: str = "已结束") -> dict[str, object]:
    return {
        "TaskId": task_id,
        "StartTime": start.isoformat() if start else None,
        "EndTime": (start + timedelta(hours=1)).isoformat() if start else None,
        "Vhost": "v",
        "Domain": "d",
        "App": "a",
        "Stream": "s",
        "Status": status,
    }


def page(*tasks: dict[str, object]) -> pa.Table:
    return tasks_to_arrow(list(tasks), SEEN, 1).tasks


def ids(table: pa.Table) -> set[str]:
    return set(table.column("task_id").to_pylist())


def test_first_run_writes_everything_and_cursor_stops_at_now() -> None:
    plan = WritePlan(IncrementalState(), timedelta(hours=24), NOW)
    observer = StateObserver(plan)
    rows = page(
        task("old", NOW - timedelta(days=300)),
        task("recent", NOW - timedelta(hours=1)),
        task("next-year", NOW + timedelta(days=365), "未开始"),
        task("old-recording", NOW - timedelta(days=3), "生效中"),
    )
    observer.observe(rows)
    assert ids(plan.select(rows)) == {"old", "recent", "next-year", "old-recording"}
    state = observer.next_state()
    assert state.start_time_cursor == NOW - timedelta(hours=1)
    # Only open tasks starting before the next window need remembering: the scheduled
    # one is inside the window (it starts after the cursor) and is written anyway.
    assert state.open_task_ids == {"old-recording"}


def test_later_run_writes_window_open_and_previously_open_only() -> None:
    previous = IncrementalState(
        start_time_cursor=NOW - timedelta(hours=1), open_task_ids=frozenset({"was-open"})
    )
    plan = WritePlan(previous, timedelta(hours=24), NOW)
    observer = StateObserver(plan)
    rows = page(
        task("old-settled", NOW - timedelta(days=30)),
        task("was-open", NOW - timedelta(days=30)),  # finished since the last run
        task("old-recording", NOW - timedelta(days=3), "生效中"),
        task("in-window", NOW - timedelta(hours=20)),
        task("unknown-status", NOW - timedelta(days=40), "新状态"),
        task("no-start", None),
    )
    observer.observe(rows)
    written = ids(plan.select(rows))
    assert written == {"was-open", "old-recording", "in-window", "unknown-status", "no-start"}
    assert observer.next_state().open_task_ids == {"old-recording", "unknown-status", "no-start"}


def test_backfill_writes_the_range_and_keeps_the_state() -> None:
    previous = IncrementalState(start_time_cursor=NOW, open_task_ids=frozenset({"x"}))
    since, until = NOW - timedelta(days=10), NOW - timedelta(days=5)
    plan = WritePlan(previous, timedelta(hours=24), NOW, since=since, until=until)
    rows = page(
        task("before", since - timedelta(seconds=1)),
        task("first", since),
        task("inside-open", since + timedelta(days=1), "生效中"),
        task("last", until - timedelta(seconds=1)),
        task("at-end", until),
        task("no-start", None),
    )
    observer = StateObserver(plan)
    observer.observe(rows)
    assert ids(plan.select(rows)) == {"first", "inside-open", "last"}
    assert observer.next_state() == previous


def test_initial_start_time_is_a_floor_for_settled_tasks() -> None:
    since = NOW - timedelta(days=7)
    plan = WritePlan(IncrementalState(), timedelta(hours=24), NOW, since=since)
    rows = page(task("too-old", since - timedelta(days=1)), task("ok", since), task("nul", None))
    assert ids(plan.select(rows)) == {"ok", "nul"}


def test_state_round_trips_through_a_dict() -> None:
    state: dict[str, object] = {}
    original = IncrementalState(start_time_cursor=NOW, open_task_ids=frozenset({"b", "a"}))
    original.save(state)
    assert state["open_task_ids"] == ["a", "b"]
    assert IncrementalState.load(state) == original


@pytest.mark.parametrize(
    "value",
    [
        "2024-06-01T12:00:00Z",
        " 2024-06-01T12:00:00z ",
        "2024-06-01T20:00:00+08:00",
        "2024-06-01 12:00:00",  # naive: UTC
        "2024-06-01T12:00",
        datetime(2024, 6, 1, 12, 0),
        datetime(2024, 6, 1, 14, 0, tzinfo=timezone(timedelta(hours=2))),
        pendulum.datetime(2024, 6, 1, 12, tz="UTC"),  # as dlt's state may give it back
    ],
)
def test_times_in_state_and_settings_read_as_the_same_utc_instant(value: object) -> None:
    moment = to_utc(value)  # type: ignore[arg-type]
    assert moment == NOW and type(moment) is datetime and moment.tzinfo is timezone.utc


def test_a_string_that_is_not_a_time_is_refused_and_an_empty_one_is_no_time() -> None:
    with pytest.raises(ValueError):
        to_utc("yesterday")
    assert to_utc("") is None and to_utc(None) is None
