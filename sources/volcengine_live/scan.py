"""One pass over the whole task list: every page, fetched concurrently, and a report of
what the pass saw (enough to tell whether it read the whole list).
"""

from __future__ import annotations

import json
import math
from array import array
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .responses import Page

FetchPage = Callable[[int, int], Page]
"""``fetch_page(page_num, page_size)``: one page, retried; raises when it cannot be read."""


@dataclass
class ScanReport:
    """What one pass over the list saw: enough to tell whether it is complete."""

    pages: int = 0
    rows: int = 0
    total_counts: set[int] = field(default_factory=set)
    first_total: int | None = None
    task_id_hashes: array[int] = field(default_factory=lambda: array("q"))
    """In-process hashes of every TaskId seen: 8 bytes a task, to count distinct tasks."""

    def record(self, page: Page) -> None:
        """Count one page of this pass."""
        self.pages += 1
        self.rows += len(page.tasks)
        self.total_counts.add(page.total_count)
        tasks = page.tasks
        try:
            ids = [task["TaskId"] for task in tasks]
        except (KeyError, TypeError):  # a record without a TaskId, or not an object
            ids = []
        if len(ids) == len(tasks) and (not ids or set(map(type, ids)) == {str}) and "" not in ids:
            # The usual page, hashed without a Python call per task: this runs on the main
            # thread for every task of every pass.
            self.task_id_hashes.extend(map(hash, ids))
        else:
            self.task_id_hashes.extend(_identity(task) for task in tasks)

    @property
    def distinct_tasks(self) -> int:
        return distinct_count(self.task_id_hashes)

    @property
    def stable(self) -> bool:
        """The list did not change under the scan, and every promised task arrived."""
        return (
            len(self.total_counts) == 1
            and self.first_total is not None
            and self.distinct_tasks >= self.first_total
        )


def _identity(task: Any) -> int:
    """What makes a record one task when counting distinct tasks: its TaskId, or for a
    record without a usable one (set aside as a reject) the record itself, so that several
    such records still count as several."""
    task_id = task.get("TaskId") if isinstance(task, dict) else None
    if isinstance(task_id, str) and task_id:
        return hash(task_id)
    return hash(json.dumps(task, sort_keys=True, default=str))


def distinct_count(hashes: array[int]) -> int:
    """Distinct values in ``hashes``, by sorting in Arrow: about 3 bytes of scratch per
    byte of input, where a Python set or Arrow's hash-based count takes ten times that."""
    if len(hashes) < 2:
        return len(hashes)
    values = pa.Array.from_buffers(pa.int64(), len(hashes), [None, pa.py_buffer(hashes)])
    ordered = pc.take(values, pc.array_sort_indices(values))
    changes = pc.not_equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))
    return 1 + int(pc.sum(changes).as_py() or 0)


class Scan:
    """One pass over every page, fetched concurrently; iterate it for :class:`Page` objects.

    Page 1 comes first (it tells ``TotalCount``); the rest arrive as they complete, in no
    particular order. The end of the list is where ``TotalCount`` and the page size put it,
    and pages past it are read while they keep coming back full, in case the list grew.
    After iterating, :attr:`report` says whether the pass was complete.

    Why a pool of our own rather than ``dlt.defer``: the scan must see every page's
    ``TotalCount`` and row count to decide whether the list shifted and must be re-read,
    and deferred items go straight into dlt's pipe, out of the generator's sight.
    """

    def __init__(self, fetch_page: FetchPage, page_size: int, max_concurrency: int) -> None:
        self.fetch_page = fetch_page
        self.page_size = page_size
        self.max_concurrency = max_concurrency
        self.report = ScanReport()

    def __iter__(self) -> Iterator[Page]:
        first = self.fetch_page(1, self.page_size)
        self.report.first_total = first.total_count
        self.report.record(first)
        yield first
        if len(first.tasks) < self.page_size:
            if first.total_count > len(first.tasks):
                # A short first page while more rows are promised: the list moved or the
                # server cut the page. Read on sequentially and let the report judge.
                yield from self._read_on(2)
            return
        last_page = max(1, math.ceil(first.total_count / self.page_size))
        if first.total_count % self.page_size == 0:
            # The last page will be full: the page after it (empty unless the list grew)
            # must be read too, and is read with the others rather than after them.
            last_page += 1
        workers = max(1, self.max_concurrency)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="volc-live-page")
        pending: set[Future[Page]] = set()
        next_page = 2
        highest_full_page = 1
        try:
            while next_page <= last_page or pending:
                while next_page <= last_page and len(pending) < workers * 2:
                    pending.add(pool.submit(self.fetch_page, next_page, self.page_size))
                    next_page += 1
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    page = future.result()
                    self.report.record(page)
                    if len(page.tasks) >= self.page_size:
                        highest_full_page = max(highest_full_page, page.page_num)
                    yield page
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
        if highest_full_page == last_page:  # still full at the end: the list grew
            yield from self._read_on(last_page + 1)

    def _read_on(self, page_num: int) -> Iterator[Page]:
        while True:
            page = self.fetch_page(page_num, self.page_size)
            self.report.record(page)
            yield page
            if len(page.tasks) < self.page_size:
                return
            page_num += 1
