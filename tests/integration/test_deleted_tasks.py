"""Tasks that leave the API's list are flagged (``deleted_at``) or deleted, never left looking
current: real pipelines against the emulator over HTTP, into real DuckDB files."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from volcengine_live import ConfigurationError
from volcengine_live.settings import SourceSettings
from volcengine_live_emulator import Emulator

from helpers import Loader, make_emulator, now


@dataclass
class Tasks:
    """Tasks of known kind added to the emulator's generated list, by name."""

    emulator: Emulator
    ids: dict[str, str] = field(default_factory=dict)
    old_day: datetime = field(
        default_factory=lambda: (now() - timedelta(days=30)).replace(hour=2, minute=0, second=0)
    )

    def create(self, name: str, start: datetime, hours: float, status: str) -> str:
        task = self.emulator.store.create_task(
            StartTime=start, EndTime=start + timedelta(hours=hours), Status=status
        )
        self.ids[name] = str(task["TaskId"])
        return self.ids[name]

    def add_every_kind(self) -> None:
        """Settled below the window (two on one day, one beside them that stays), settled
        inside it, scheduled ahead, and open below the window (kept in the state)."""
        self.create("old_a", self.old_day, 1, "已结束")
        self.create("old_b", self.old_day + timedelta(hours=2), 1, "已结束")
        self.create("old_kept", self.old_day + timedelta(hours=4), 1, "已结束")
        self.create("old_stopped", self.old_day - timedelta(days=10), 1, "停用")
        self.create("recent", now() - timedelta(hours=2), 1, "已结束")
        self.create("scheduled", now() + timedelta(hours=3), 1, "未开始")
        self.create("old_open", self.old_day + timedelta(days=5), 31 * 24, "生效中")

    def remove(self, *names: str) -> None:
        self.emulator.store.remove_tasks([self.ids[name] for name in names])

    def restore(self, *names: str) -> None:
        self.emulator.store.restore_tasks([self.ids[name] for name in names])


REMOVED = ("old_a", "old_b", "old_stopped", "recent", "scheduled", "old_open")
IN_WINDOW_OR_OPEN = ("recent", "scheduled", "old_open")


def deleted_at(loader: Loader) -> dict[str, datetime]:
    rows = loader.query(
        "SELECT task_id, deleted_at FROM pull_record_tasks WHERE deleted_at NOTNULL"
    )
    return {task_id: moment.astimezone(timezone.utc) for task_id, moment in rows}


def run_timed(loader: Loader, **settings: Any) -> tuple[dict[str, Any], datetime, datetime]:
    before = datetime.now(timezone.utc)
    metrics = loader.run(**settings)
    return metrics, before, datetime.now(timezone.utc)


@pytest.fixture
def small_loader(tmp_path: Any) -> Any:
    with make_emulator(tasks=400) as emu:
        yield Loader(emu, tmp_path)


def test_removed_tasks_of_every_kind_are_flagged_once(small_loader: Loader) -> None:
    loader = small_loader
    tasks = Tasks(loader.emulator)
    tasks.add_every_kind()
    loader.run()
    baseline = loader.run()  # no change: the cost every later no-change run must keep
    assert baseline["deleted"] == 0 and baseline["scans"] == 1
    assert "deleted_at" in loader.rows()[tasks.ids["old_a"]]
    assert not deleted_at(loader)

    tasks.remove(*REMOVED)
    flagging, before, after = run_timed(loader)
    flagged = deleted_at(loader)
    assert set(flagged) == {tasks.ids[name] for name in REMOVED}
    assert flagging["deleted"] == len(REMOVED)
    assert all(before <= moment <= after for moment in flagged.values())
    assert len(set(flagged.values())) == 1  # the instant that run read the list
    rows = loader.rows()
    assert rows[tasks.ids["old_open"]]["status"] == "生效中"  # fields kept as last listed
    assert rows[tasks.ids["recent"]]["status"] == "已结束"
    assert rows[tasks.ids["old_kept"]]["deleted_at"] is None
    live = loader.query("SELECT count(*) FROM pull_record_tasks WHERE deleted_at IS NULL")
    assert live == [(loader.emulator.store.count,)]

    quiet = loader.run()  # nothing changed since: nothing is flagged or written again
    assert deleted_at(loader) == flagged
    assert quiet["deleted"] == 0 and quiet["deletion_candidates"] == 0
    assert quiet["scans"] == 1 and quiet["late_days"] == 0
    assert quiet["rows_written"] == baseline["rows_written"] - len(IN_WINDOW_OR_OPEN)
    assert quiet["requests"] == baseline["requests"]
    state = loader.state()
    assert not set(state["open_task_ids"]) & set(flagged)  # no per-task state for them


def test_a_task_that_comes_back_is_live_again(small_loader: Loader) -> None:
    loader = small_loader
    tasks = Tasks(loader.emulator)
    tasks.add_every_kind()
    loader.run()
    tasks.remove(*REMOVED)
    loader.run()
    first_flags = deleted_at(loader)
    tasks.restore("old_a", "recent", "old_open")
    loader.emulator.store.set_status(tasks.ids["old_open"], "已结束")  # and it changed
    loader.run()
    rows = loader.rows()
    for name in ("old_a", "recent", "old_open"):
        assert rows[tasks.ids[name]]["deleted_at"] is None, name
    assert rows[tasks.ids["old_open"]]["status"] == "已结束"
    still_gone = {tasks.ids[name] for name in ("old_b", "old_stopped", "scheduled")}
    assert deleted_at(loader) == {k: v for k, v in first_flags.items() if k in still_gone}


def test_a_task_removed_while_a_scan_runs_is_flagged_and_no_live_task_is(
    small_loader: Loader,
) -> None:
    """Removing tasks of page 1 while page 3 is read makes rows slide across the page
    boundaries the scan has passed: the pass is read again, and only removed tasks are
    ever flagged."""
    loader = small_loader
    settings = {"page_size": 50, "max_concurrency": 1}
    loader.run(**settings)
    emulator = loader.emulator
    first_page = [task["TaskId"] for task in list(emulator.store.all_tasks())[:50]]
    removed = first_page[5:10]
    done: list[int] = []

    def remove_once(page_num: int) -> None:
        if page_num == 3 and not done:
            done.append(page_num)
            emulator.store.remove_tasks(removed)

    emulator.on_request(remove_once)
    during = loader.run(**settings)
    assert during["scans"] >= 2  # the list moved: read again
    assert set(deleted_at(loader)) <= set(removed)
    loader.run(**settings)
    assert set(deleted_at(loader)) == set(removed)
    live = loader.query("SELECT count(*) FROM pull_record_tasks WHERE deleted_at IS NULL")
    assert live == [(emulator.store.count,)]


def test_a_live_task_hidden_by_a_shift_is_never_flagged(tmp_path: Any) -> None:
    """One task deleted behind the scan and one created ahead of it keep TotalCount: the
    pass looks complete, yet the task that slid back over the page boundary was not read.
    The confirming pass finds it, so it is not flagged."""
    with make_emulator(tasks=200, list_order="oldest_first") as emulator:
        loader = Loader(emulator, tmp_path)
        settings = {"page_size": 50, "max_concurrency": 1}
        loader.run(**settings)
        order = [task["TaskId"] for task in list(emulator.store.all_tasks())]
        hidden = order[50]  # slides from page 2 to page 1, already read
        done: list[int] = []

        def shift_once(page_num: int) -> None:
            if page_num == 2 and not done:
                done.append(page_num)
                emulator.store.remove_tasks([order[0]])
                emulator.store.create_task(
                    StartTime=now() - timedelta(hours=1), EndTime=now(), Status="已结束"
                )

        emulator.on_request(shift_once)
        shifted = loader.run(**settings)
        assert shifted["scans"] == 2  # one main pass that looked complete, one confirming
        assert shifted["deletion_candidates"] >= 1  # the hidden task looked gone
        assert shifted["deleted"] == 0
        assert loader.rows()[hidden]["deleted_at"] is None
        loader.run(**settings)
        assert set(deleted_at(loader)) == {order[0]}
        assert loader.rows()[hidden]["deleted_at"] is None


def test_a_failed_run_flags_nothing_and_the_next_run_flags(small_loader: Loader) -> None:
    loader = small_loader
    tasks = Tasks(loader.emulator)
    tasks.add_every_kind()
    loader.run()
    tasks.remove("recent", "old_a")
    loader.emulator.faults.add("access_denied", times=1, page=1)
    with pytest.raises(PipelineStepFailed):
        loader.run()
    assert not deleted_at(loader)
    loader.run()
    assert set(deleted_at(loader)) == {tasks.ids["recent"], tasks.ids["old_a"]}


def test_a_run_failing_in_the_confirming_pass_flags_nothing(small_loader: Loader) -> None:
    loader = small_loader
    tasks = Tasks(loader.emulator)
    tasks.add_every_kind()
    loader.run()
    tasks.remove("scheduled")
    emulator = loader.emulator
    first_pages: list[int] = []

    def fail_second_pass(page_num: int) -> None:
        if page_num == 1:
            first_pages.append(page_num)
            if len(first_pages) == 2:
                emulator.faults.add("access_denied", times=1)

    emulator.on_request(fail_second_pass)
    with pytest.raises(PipelineStepFailed):
        loader.run()
    emulator.on_request(None)
    assert not deleted_at(loader)
    assert loader.rows()[tasks.ids["recent"]]["deleted_at"] is None
    loader.run()
    assert set(deleted_at(loader)) == {tasks.ids["scheduled"]}


def test_a_list_that_keeps_moving_flags_nothing(small_loader: Loader) -> None:
    """The run is accepted (together the passes read every task) but flags nothing; it
    carries the traces forward, so the next calm run flags every kind of removed task, also
    the old settled and the old open one, whose only traces are in the state."""
    loader = small_loader
    tasks = Tasks(loader.emulator)
    tasks.add_every_kind()
    settings = {"page_size": 50, "max_rescans": 1}
    loader.run(**settings)
    tasks.remove("recent", "old_a", "old_open")
    # New tasks at the end of the list: not the head growth a pass can place its pages in
    # (test_a_busy_account_still_flags_removed_tasks), so every pass sees the list move.
    loader.emulator.store.list_order = "oldest_first"
    loader.emulator.store.grow(per_request=1)
    moving = loader.run(**settings)
    assert moving["scans"] >= 2 and moving["deletion_candidates"] == 0
    assert moving["deleted"] == 0
    assert not deleted_at(loader)
    assert tasks.ids["old_open"] in loader.state()["open_task_ids"]
    loader.emulator.store.stop_flows()
    loader.run(**settings)
    assert set(deleted_at(loader)) == {tasks.ids[n] for n in ("recent", "old_a", "old_open")}
    quiet = loader.run(**settings)
    assert quiet["deleted"] == 0 and quiet["scans"] == 1
    assert tasks.ids["old_open"] not in loader.state()["open_task_ids"]


def test_a_busy_account_still_flags_removed_tasks(small_loader: Loader) -> None:
    """New tasks at the head of the list during every run: each pass covers the list it
    started with (coverage.py), so removed tasks are flagged in that run, not never."""
    loader = small_loader
    tasks = Tasks(loader.emulator)
    tasks.add_every_kind()
    settings = {"page_size": 50}
    loader.run(**settings)
    tasks.remove("recent", "old_a", "old_open")
    loader.emulator.store.grow(per_request=1)
    busy = loader.run(**settings)
    loader.emulator.store.stop_flows()
    assert busy["deleted"] == 3, busy
    assert set(deleted_at(loader)) == {tasks.ids[n] for n in ("recent", "old_a", "old_open")}


def test_delete_mode_removes_the_rows(small_loader: Loader) -> None:
    loader = small_loader
    tasks = Tasks(loader.emulator)
    tasks.add_every_kind()
    loader.run(deleted_tasks="delete")
    tasks.remove(*REMOVED)
    deleting = loader.run(deleted_tasks="delete")
    assert deleting["deleted"] == len(REMOVED)
    rows = loader.rows()
    assert not {tasks.ids[name] for name in REMOVED} & set(rows)
    assert len(rows) == loader.emulator.store.count
    assert all(row["deleted_at"] is None for row in rows.values())
    quiet = loader.run(deleted_tasks="delete")
    assert quiet["deleted"] == 0 and quiet["scans"] == 1
    tasks.restore("old_a", "scheduled")
    loader.run(deleted_tasks="delete")
    rows = loader.rows()
    assert rows[tasks.ids["old_a"]]["deleted_at"] is None
    assert tasks.ids["scheduled"] in rows and len(rows) == loader.emulator.store.count


@pytest.mark.parametrize("value", ["purge", "", 1, None])
def test_deleted_tasks_must_be_flag_or_delete(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="deleted_tasks") as error:
        SourceSettings.checked(**{**SETTINGS, "deleted_tasks": value})
    assert "SOURCES__VOLCENGINE_LIVE__DELETED_TASKS" in str(error.value)


def test_deleted_tasks_reads_flag_and_delete_in_any_case() -> None:
    assert SourceSettings.checked(**SETTINGS).deleted_tasks == "flag"
    assert SourceSettings.checked(**{**SETTINGS, "deleted_tasks": " Delete "}).deleted_tasks == (
        "delete"
    )


SETTINGS: dict[str, Any] = {
    "endpoint": "https://live.volcengineapi.com",
    "region": "cn-north-1",
    "page_size": 500,
    "lookback_hours": 24,
    "initial_start_time": None,
    "end_start_time": None,
    "requests_per_second": 40,
    "max_concurrency": 8,
    "request_timeout": 30,
    "max_attempts": 6,
    "backoff_seconds": 0.5,
    "max_rescans": 2,
}
