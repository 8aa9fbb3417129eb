"""Helpers shared by the fault-and-abuse tests (test_reliability, test_crash_resume,
test_soak, test_secrets): walking exception chains, counting what the emulator was asked
for page by page, and comparing the destination with the emulator's live list."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from volcengine_live_emulator import Emulator

from helpers import Loader

E = TypeVar("E", bound=BaseException)


def error_chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception it was raised from or during, outermost first."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def find_in_chain(error: BaseException, kind: type[E]) -> E:
    """The first exception of type ``kind`` in the chain of ``error``; fails the test if none."""
    for link in error_chain(error):
        if isinstance(link, kind):
            return link
    kinds = [type(link).__name__ for link in error_chain(error)]
    raise AssertionError(f"no {kind.__name__} in the error chain {kinds}")


class PageLog:
    """Every page request the emulator accepted (after signature, rate limit and parameter
    checks, before faults), with the monotonic time it arrived."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: list[tuple[int, float]] = []

    def __call__(self, page_num: int) -> None:
        with self._lock:
            self.requests.append((page_num, time.monotonic()))

    def count(self, page_num: int) -> int:
        with self._lock:
            return sum(1 for page, _ in self.requests if page == page_num)

    def counts(self) -> Counter[int]:
        with self._lock:
            return Counter(page for page, _ in self.requests)

    def times(self, page_num: int) -> list[float]:
        with self._lock:
            return [at for page, at in self.requests if page == page_num]

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()


@contextmanager
def page_log(emulator: Emulator) -> Iterator[PageLog]:
    log = PageLog()
    remove = emulator.on_request(log)
    try:
        yield log
    finally:
        remove()


def live_tasks(emulator: Emulator) -> dict[str, Any]:
    """TaskId -> Status of every task the emulator lists now (records with a usable TaskId)."""
    return {
        task["TaskId"]: task.get("Status")
        for task in emulator.store.all_tasks()
        if isinstance(task.get("TaskId"), str) and task["TaskId"]
    }


def assert_live_tasks_match(loader: Loader, deleted: set[str]) -> None:
    """Like ``assert_matches_emulator``, for a list that had tasks deleted: every live task is
    in the destination once with its current status and no ``deleted_at``; every row that
    is not live is a deleted task, flagged with ``deleted_at`` (the source's default
    ``deleted_tasks = "flag"``). A deleted task the destination never saw has no row."""
    expected = live_tasks(loader.emulator)
    counts = loader.query("SELECT count(*), count(DISTINCT task_id) FROM pull_record_tasks")
    assert counts[0][0] == counts[0][1], "duplicate task_id rows"
    rows = loader.query("SELECT task_id, status, deleted_at IS NOT NULL FROM pull_record_tasks")
    loaded = {task_id: status for task_id, status, _ in rows}
    flagged = {task_id for task_id, _, is_flagged in rows if is_flagged}
    missing = expected.keys() - loaded.keys()
    assert not missing, f"{len(missing)} live tasks missing, e.g. {sorted(missing)[:3]}"
    extra = loaded.keys() - expected.keys()
    assert extra <= deleted, (
        f"rows that are neither live nor deleted: {sorted(extra - deleted)[:3]}"
    )
    wrongly = flagged & expected.keys()
    assert not wrongly, f"{len(wrongly)} live tasks flagged deleted, e.g. {sorted(wrongly)[:3]}"
    unflagged = extra - flagged
    assert not unflagged, (
        f"{len(unflagged)} deleted tasks not flagged, e.g. {sorted(unflagged)[:3]}"
    )
    stale = {
        tid: (loaded[tid], status) for tid, status in expected.items() if loaded[tid] != status
    }
    assert not stale, f"stale statuses: {list(stale.items())[:5]}"
