"""A list that moves while a pass reads it, against the emulator over HTTP into DuckDB.

Issue 17: on a busy account new tasks arrive while every pass reads the list. A pass must
then cost little more than its pages (it re-reads only what the new tasks pushed out of
sight), and the data must stay exact: every task of the run's start loaded once, with a
status no older than the run. A list that moves in any other way (tasks removed, the order
changed, an order that is not newest first) is read again, as before. Changes are made
from the emulator's request hook, counted in requests, never timed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest

from volcengine_live_emulator import Emulator

from helpers import Loader, assert_matches_emulator, make_emulator, now

TASKS = 5000
PAGE_SIZE = 100
PAGES = TASKS // PAGE_SIZE + 1
"""Pages of one pass: 50 full pages and the empty one that shows the end."""


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with make_emulator(tasks=TASKS, seed=17) as emu:
        yield emu


def new_task(emu: Emulator) -> str:
    """A task created now, as an account's production traffic would: the newest of the
    list, starting a minute ahead."""
    start = now() + timedelta(minutes=1)
    task = emu.store.create_task(StartTime=start, EndTime=start + timedelta(hours=1))
    return str(task["TaskId"])


def every(nth: int, action: Callable[[], Any]) -> Callable[[int], None]:
    """A request hook that calls ``action`` before every ``nth`` page request."""
    seen = [0]

    def hook(page_num: int) -> None:
        seen[0] += 1
        if seen[0] % nth == 0:
            action()

    return hook


def task_ids(emu: Emulator) -> dict[str, str]:
    return {task["TaskId"]: task["Status"] for task in emu.store.all_tasks()}


def assert_exact(loader: Loader, at_start: dict[str, str]) -> None:
    """Every task of the run's start loaded once, with the emulator's status; tasks created
    during the run may be there (with their status) or wait for the next run."""
    rows = loader.query("SELECT task_id, status FROM pull_record_tasks")
    loaded = dict(rows)
    assert len(loaded) == len(rows), "a task loaded twice"
    current = task_ids(loader.emulator)
    missing = [task_id for task_id in at_start if task_id in current and task_id not in loaded]
    assert not missing, f"{len(missing)} task(s) of the run's start missing: {missing[:3]}"
    stale = {t: (s, current[t]) for t, s in loaded.items() if t in current and s != current[t]}
    assert not stale, f"stale statuses: {list(stale.items())[:3]}"


def run_while(loader: Loader, hook: Callable[[int], None], **settings: Any) -> dict[str, Any]:
    remove = loader.emulator.on_request(hook)
    try:
        return loader.run(page_size=PAGE_SIZE, **settings)
    finally:
        remove()


def test_a_quiet_account_reads_each_page_once(loader: Loader) -> None:
    for _ in range(2):
        metrics = loader.run(page_size=PAGE_SIZE)
        assert (metrics["requests"], metrics["scans"], metrics["pages_reread"]) == (PAGES, 1, 0)
        assert_matches_emulator(loader)


@pytest.mark.parametrize("max_concurrency", [1, 8])
def test_a_busy_account_reads_the_list_once_per_run(loader: Loader, max_concurrency: int) -> None:
    """New tasks arrive during every run (one per 10 page requests, five times busier than
    the issue's account: 2 a second while 45 pages of 500 are read); each run reads its
    pages and a few more, never the list again, and no old day looks changed."""
    emu = loader.emulator
    for run in range(3):
        at_start = task_ids(emu)
        pages = len(at_start) // PAGE_SIZE + 1
        metrics = run_while(
            loader, every(10, lambda: new_task(emu)), max_concurrency=max_concurrency
        )
        assert metrics["scans"] == 1, metrics
        assert metrics["late_days"] == 0, f"run {run + 1}: a false alarm on old days"
        assert metrics["requests"] <= 1.25 * pages, metrics
        assert metrics["pages_reread"] >= 1  # the head, where the new tasks are
        assert_exact(loader, at_start)
    loader.run(page_size=PAGE_SIZE)
    assert_matches_emulator(loader)


def test_a_list_growing_at_every_request_stays_exact(loader: Loader) -> None:
    """A task per page request: every page shifted from the one before."""
    emu = loader.emulator
    for _ in range(2):
        at_start = task_ids(emu)
        metrics = run_while(loader, every(1, lambda: new_task(emu)))
        assert metrics["scans"] == 1, metrics
        assert metrics["late_days"] == 0
        assert_exact(loader, at_start)
    loader.run(page_size=PAGE_SIZE)
    assert_matches_emulator(loader)


def test_tasks_removed_during_a_pass_send_the_reader_round_again(loader: Loader) -> None:
    """Three tasks of page 1 leave the list once page 3 is asked for: tasks below them
    slide up across pages the pass has read. TotalCount falls, the model no longer holds,
    and the list is read again."""
    emu = loader.emulator
    loader.run(page_size=PAGE_SIZE)
    first_page = [task["TaskId"] for task in list(emu.store.all_tasks())[:PAGE_SIZE]]
    removed: list[str] = []

    def remove(page_num: int) -> None:
        if page_num == 3 and not removed:
            removed.extend(first_page[10:13])
            emu.store.remove_tasks(removed)

    at_start = task_ids(emu)
    metrics = run_while(loader, remove)
    assert removed and metrics["scans"] == 2, metrics
    assert_exact(loader, at_start)
    assert not set(removed) - set(
        dict(loader.query("SELECT task_id, status FROM pull_record_tasks"))
    )


def test_a_list_shrinking_and_growing_during_a_pass_stays_exact(loader: Loader) -> None:
    """The oldest tasks leave while new ones come (TotalCount about even)."""
    emu = loader.emulator
    loader.run(page_size=PAGE_SIZE)

    def churn() -> None:
        emu.store.remove_oldest(1)
        new_task(emu)

    at_start = task_ids(emu)
    metrics = run_while(loader, every(7, churn))
    assert metrics["scans"] >= 2, metrics
    assert_exact(loader, at_start)


def test_a_list_reordered_during_a_pass_is_read_again(loader: Loader) -> None:
    emu = loader.emulator
    done: list[int] = []

    def reorder(page_num: int) -> None:
        if page_num == 4 and not done:
            done.append(page_num)
            emu.store.set_list_order("random", seed=5)

    at_start = task_ids(emu)
    metrics = run_while(loader, reorder)
    assert done and metrics["scans"] == 2, metrics
    assert_exact(loader, at_start)
    assert_matches_emulator(loader)


def test_a_growing_list_reordered_during_a_pass_is_read_again(loader: Loader) -> None:
    emu = loader.emulator
    done: list[int] = []

    def reorder(page_num: int) -> None:
        if page_num == 4 and not done:
            done.append(page_num)
            emu.store.set_list_order("random", seed=5)

    def hook(page_num: int) -> None:
        new_task(emu)
        reorder(page_num)

    at_start = task_ids(emu)
    metrics = run_while(loader, hook)
    assert done and metrics["scans"] >= 2, metrics
    assert_exact(loader, at_start)


@pytest.mark.parametrize("order", ["oldest_first", "start_time_desc"])
def test_a_growing_list_in_another_order_falls_back_to_full_passes(
    loader: Loader, order: str
) -> None:
    """Not newest first: the new tasks land elsewhere, the pages' places do not follow
    TotalCount, the sampled TaskIds say so, and the reader reads the whole list again (the
    passes together must hold every task)."""
    emu = loader.emulator
    emu.store.set_list_order(order)
    at_start = task_ids(emu)
    metrics = run_while(loader, every(10, lambda: new_task(emu)))
    assert metrics["scans"] >= 2, metrics
    assert_exact(loader, at_start)
    loader.run(page_size=PAGE_SIZE)
    assert_matches_emulator(loader)


def test_a_still_list_in_another_order_takes_one_pass(loader: Loader) -> None:
    loader.emulator.store.set_list_order("oldest_first")
    metrics = loader.run(page_size=PAGE_SIZE)
    assert (metrics["requests"], metrics["scans"]) == (PAGES, 1)
    assert_matches_emulator(loader)
