"""One pass over the whole task list: every page, fetched concurrently, and a report of
what the pass saw (enough to tell whether it read the whole list).

A pass places every page in the list as its first page saw it (:mod:`.coverage`): pages
read while new tasks pushed the list down overlap the pages before them, and the rows read
twice are set apart (:attr:`ScanPage.repeated`) rather than handed on again; pages served
out of order leave gaps, and after the planned pages the pass reads again only the pages
that cover a gap and the head (the tasks created meanwhile). A pass over a list that moved
in any other way (a task gone, the list not newest first) is reported incomplete, as a
pass over a moving list always was, and the reader reads the list again.
"""

from __future__ import annotations

import json
import math
import time
from array import array
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .client import LiveApiClient
from .coverage import Coverage
from .responses import Page

FetchPage = Callable[[int, int], Page]
"""``fetch_page(page_num, page_size)``: one page, retried; raises when it cannot be read."""

MAX_REFILL_ROUNDS = 8
"""Rounds of re-reading gaps in one pass before it counts as incomplete."""


@dataclass(frozen=True)
class ScanPage(Page):
    """A page as one pass hands it on: ``tasks`` are the rows this pass had not read yet
    (all rows of a page of a pass whose list moved otherwise than by new tasks)."""

    repeated: list[Any] = field(default_factory=list)
    """Rows of the page this pass had read already, at the same place of the list."""


@dataclass
class ScanReport:
    """What one pass over the list saw: enough to tell whether it is complete."""

    pages: int = 0
    rows: int = 0
    """Rows handed on (repeated rows not counted)."""
    repeated: int = 0
    total_counts: set[int] = field(default_factory=set)
    coverage: Coverage | None = None
    """Where the pass's pages stand in the list; set by the first page, which fixes its
    ``TotalCount`` (:attr:`first_total`)."""
    task_id_hashes: array[int] = field(default_factory=lambda: array("q"))
    """In-process hashes of every TaskId handed on: 8 bytes a task, to count distinct
    tasks."""

    def record(self, page: Page, ids: list[Any] | None = None) -> None:
        """Count one page of this pass as handed on; ``ids``: its tasks' identities
        (:func:`task_identities`), when known already."""
        self.pages += 1
        self.rows += len(page.tasks)
        self.total_counts.add(page.total_count)
        if isinstance(page, ScanPage):
            self.repeated += len(page.repeated)
        self.task_id_hashes.extend(map(hash, task_identities(page.tasks) if ids is None else ids))

    @property
    def first_total(self) -> int | None:
        """``TotalCount`` at the pass's first page: the tasks it was promised."""
        return None if self.coverage is None else self.coverage.first_total

    @property
    def rows_read(self) -> int:
        """Rows the API sent this pass, those read twice at one place counted twice."""
        return self.rows + self.repeated

    @property
    def distinct_tasks(self) -> int:
        return distinct_count(self.task_id_hashes)

    @property
    def refills(self) -> int:
        """Pages read again to fill a gap or the head."""
        return self.coverage.refills if self.coverage is not None else 0

    @property
    def contradiction(self) -> str | None:
        """Why the list did not only grow at its head during the pass, if it did not."""
        return self.coverage.contradiction if self.coverage is not None else None

    @property
    def stable(self) -> bool:
        """Every task of the list at the pass's first page arrived, each once: the list did
        not change under the pass (one TotalCount, every promised task), or it only grew at
        its head and the pass covered it all (see :mod:`.coverage`) with no TaskId twice."""
        if self.first_total is None:
            return False
        distinct = self.distinct_tasks
        if len(self.total_counts) == 1 and distinct >= self.first_total:
            return True
        return (
            self.coverage is not None
            and self.coverage.complete
            and distinct == self.rows >= self.first_total
        )

    @property
    def unmoved(self) -> bool:
        """:attr:`stable`, or one ``TotalCount`` and as many rows as it promised, some of
        them the API's own duplicates: the pass read the list as it stood, so what it did
        not read is not in the list (``deletions.py`` flags only after such passes). A list
        that only grew at its head counts (:attr:`stable`): on a busy account TotalCount
        moves on every run, and deletions would otherwise never be looked for."""
        return self.stable or self._read_as_promised

    @property
    def _read_as_promised(self) -> bool:
        """One ``TotalCount`` throughout, and exactly that many rows handed on."""
        return len(self.total_counts) == 1 and self.rows == self.first_total

    def repeats(self, before: ScanReport) -> bool:
        """This pass and ``before`` read the same list, whole and unmoved, in which some
        TaskIds stand twice: the API's own duplicates, not a list moving under the scan."""
        return (
            self._read_as_promised
            and before._read_as_promised
            and self.first_total == before.first_total
            and self.distinct_tasks == before.distinct_tasks == distinct_across([before, self])
        )


def task_identities(tasks: list[Any]) -> list[str]:
    """What tells the tasks of a page apart: the TaskIds, or for a record without a usable
    one its :func:`_identity`."""
    try:
        ids = [task["TaskId"] for task in tasks]
    except (KeyError, TypeError):  # a record without a TaskId, or not an object
        ids = []
    if len(ids) == len(tasks) and (not ids or set(map(type, ids)) == {str}) and "" not in ids:
        return ids  # the usual page, without a Python call per task
    return [_identity(task) for task in tasks]


def _identity(task: Any) -> str:
    """What makes a record one task when counting distinct tasks: its TaskId, or for a
    record without a usable one (set aside as a reject) the record itself, so that several
    such records still count as several. A string, hashed once by the caller like the
    TaskIds of a clean page: a hash hashed again is another number for most values, and the
    TaskIds of a page holding one bad record would no longer match what was read."""
    task_id = task.get("TaskId") if isinstance(task, dict) else None
    if isinstance(task_id, str) and task_id:
        return task_id
    return "\x00record:" + json.dumps(task, sort_keys=True, default=str)


def distinct_across(reports: Iterable[ScanReport]) -> int:
    """Distinct tasks read by these passes together."""
    seen = array("q")
    for report in reports:
        seen.extend(report.task_id_hashes)
    return distinct_count(seen)


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
    """One pass over every page, fetched concurrently; iterate it for :class:`ScanPage`
    objects.

    Page 1 comes first (it tells ``TotalCount``); the rest arrive as they complete, in no
    particular order. The end of the list is where ``TotalCount`` and the page size put it,
    and pages past it are read while they keep coming back full, in case the list grew.
    Then the pages covering what new tasks pushed out of sight are read again (at most
    ``max(8, pages / 2)`` of them, in up to :data:`MAX_REFILL_ROUNDS` rounds). After
    iterating, :attr:`report` says whether the pass was complete.

    Why a pool of our own rather than ``dlt.defer``: the scan must see every page's
    ``TotalCount`` and rows to place it in the list and decide what to read again, and
    deferred items go straight into dlt's pipe, out of the generator's sight.
    """

    def __init__(self, fetch_page: FetchPage, page_size: int, max_concurrency: int) -> None:
        self.fetch_page = fetch_page
        self.page_size = page_size
        self.max_concurrency = max_concurrency
        self.report = ScanReport()

    @classmethod
    def of(cls, client: LiveApiClient, page_size: int) -> Scan:
        """A pass over ``client``'s list, as many pages in flight as its settings allow."""
        return cls(client.fetch_page, page_size, client.config.max_concurrency)

    def __iter__(self) -> Iterator[ScanPage]:
        first = self._fetch(1)
        coverage = self.report.coverage = Coverage(first[0].total_count, self.page_size)
        yield self._place(*first)
        workers = max(1, self.max_concurrency)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="volc-live-page")
        try:
            if len(first[0].tasks) < self.page_size:
                if first[0].total_count > len(first[0].tasks):
                    # A short first page while more rows are promised: the list moved or
                    # the server cut the page. Read on sequentially and let the report judge.
                    yield from self._read_on(2)
                return
            last_page = max(1, math.ceil(first[0].total_count / self.page_size))
            if first[0].total_count % self.page_size == 0:
                # The last page will be full: the page after it (empty unless the list
                # grew) must be read too, and is read with the others rather than after.
                last_page += 1
            highest_full_page = 1
            for page in self._fetch_all(pool, range(2, last_page + 1)):
                if len(page.tasks) + len(page.repeated) >= self.page_size:
                    highest_full_page = max(highest_full_page, page.page_num)
                yield page
            if highest_full_page == last_page:  # still full at the end: the list grew
                yield from self._read_on(last_page + 1)
            budget = max(8, last_page // 2)
            for _ in range(MAX_REFILL_ROUNDS):
                wanted = coverage.refill_pages(limit=budget - coverage.refills)
                if not wanted:
                    break
                yield from self._fetch_all(pool, wanted)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def _fetch(self, page_num: int) -> tuple[Page, float, float]:
        """One page, with the clock read before it was asked for and after it came."""
        sent = time.monotonic()
        page = self.fetch_page(page_num, self.page_size)
        return page, sent, time.monotonic()

    def _fetch_all(self, pool: ThreadPoolExecutor, page_nums: Iterable[int]) -> Iterator[ScanPage]:
        """These pages, at most twice the pool's threads in flight, as they complete."""
        todo = iter(page_nums)
        pending: set[Future[tuple[Page, float, float]]] = set()
        limit = max(1, self.max_concurrency) * 2
        try:
            while True:
                for page_num in todo:
                    pending.add(pool.submit(self._fetch, page_num))
                    if len(pending) >= limit:
                        break
                if not pending:
                    return
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    yield self._place(*future.result())
        finally:
            for future in pending:
                future.cancel()

    def _place(self, page: Page, sent: float, received: float) -> ScanPage:
        """``page`` placed in the list: its rows new to this pass and those read before."""
        assert self.report.coverage is not None
        ids = task_identities(page.tasks)
        fresh = self.report.coverage.add(page.page_num, page.total_count, ids, sent, received)
        if fresh == [(0, len(page.tasks))] or not page.tasks:
            placed = ScanPage(page.page_num, page.page_size, page.tasks, page.total_count,
                              page.fetched_at)  # fmt: skip
        else:
            keep = [False] * len(page.tasks)
            for start, stop in fresh:
                keep[start:stop] = [True] * (stop - start)
            placed = ScanPage(
                page.page_num,
                page.page_size,
                [task for task, new in zip(page.tasks, keep, strict=True) if new],
                page.total_count,
                page.fetched_at,
                repeated=[task for task, new in zip(page.tasks, keep, strict=True) if not new],
            )
            ids = [task_id for task_id, new in zip(ids, keep, strict=True) if new]
        self.report.record(placed, ids)
        return placed

    def _read_on(self, page_num: int) -> Iterator[ScanPage]:
        while True:
            page = self._place(*self._fetch(page_num))
            yield page
            if len(page.tasks) + len(page.repeated) < self.page_size:
                return
            page_num += 1
