"""Reading the whole task list, pass after pass, until one pass is known to be complete.

The API has no snapshot: tasks created or deleted while a pass runs shift the pages under
it, so a pass may miss a task or read one twice. A pass is complete when every page told
the same ``TotalCount`` and the distinct TaskIds read reach it, or when the list only grew
at its head (newest first) and the pass, having read again the few pages the new tasks
pushed out of sight, covered every place of the list once (``scan.py``, ``coverage.py``).
Otherwise the list is read again, up to ``max_rescans`` times; then the passes together
must have read every task the last one was promised, or the run fails rather than load a
partial list. Two identical, unmoved passes in which some TaskId stands twice are the
API's own duplicates, and are accepted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa

from .client import LiveApiClient
from .errors import IncompleteScanError
from .records import tasks_to_arrow
from .scan import Scan, ScanReport, distinct_across

logger = logging.getLogger(__name__)

BATCH_ROWS = 10_000
"""Records converted and handed on at once: about 10 MB of parsed JSON at most (dlt and
Arrow spend a fixed cost per item and per call, so batches go faster than pages)."""


class EarlierPasses:
    """The TaskIds that earlier passes of this run read, as in-process hashes.

    Kept as one sorted NumPy array and looked up by binary search: 8 bytes a task, where a
    Python set of the same hashes took about 70 MB at a million tasks (the peak of a run
    that looked for deleted tasks), and Arrow's ``is_in`` would build its hash table again
    for every batch looked up.
    """

    def __init__(self, reports: list[ScanReport]) -> None:
        hashes = [np.array(report.task_id_hashes, dtype=np.int64) for report in reports]
        self._sorted = np.concatenate(hashes) if hashes else np.empty(0, np.int64)
        self._sorted.sort()  # in place; a hash read twice does no harm to the search

    def read(self, task_ids: list[str]) -> list[bool]:
        """For each TaskId, whether an earlier pass read it."""
        if not len(self._sorted) or not task_ids:
            return [False] * len(task_ids)
        found: list[bool] = found_in(self._sorted, hashes_of(task_ids)).tolist()
        return found


def hashes_of(task_ids: list[str]) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The in-process hashes of ``task_ids``, as the scan keeps them
    (``ScanReport.task_id_hashes``): comparable within this run only."""
    return np.fromiter(map(hash, task_ids), dtype=np.int64, count=len(task_ids))


def found_in(
    sorted_hashes: np.ndarray[Any, np.dtype[np.int64]],
    wanted: np.ndarray[Any, np.dtype[np.int64]],
) -> np.ndarray[Any, np.dtype[np.bool_]]:
    """For each of ``wanted``, whether it is in ``sorted_hashes`` (sorted, not empty), by
    binary search."""
    places = np.searchsorted(sorted_hashes, wanted).clip(max=len(sorted_hashes) - 1)
    found: np.ndarray[Any, np.dtype[np.bool_]] = sorted_hashes[places] == wanted
    return found


@dataclass(frozen=True)
class Batch:
    """Records of one pass, converted to Arrow: tasks, rejects, and what the pass is not the
    first to read."""

    tasks: pa.Table
    rejects: list[dict[str, Any]]
    earlier: EarlierPasses | None
    """``None`` in the first pass of a run."""
    repeated: pa.Table | None = None
    """Tasks this pass read again at the same place of the list (where pages read while
    new tasks came overlap): not to be written again, but a newer status of a task held
    open (see ``RunWriter.refresh``)."""


class ListPass:
    """One pass over the list as :class:`Batch` objects; :attr:`report` says what it saw
    (pages, rows, TaskIds); the pass itself counts only what the conversion found."""

    def __init__(self, client: LiveApiClient, page_size: int, earlier: EarlierPasses | None):
        self._scan = Scan.of(client, page_size)
        self.earlier = earlier
        self.flagged = 0
        """Tasks with a data issue."""
        self.rejected = 0
        """Records without a usable TaskId, set aside."""

    @property
    def report(self) -> ScanReport:
        return self._scan.report

    def __iter__(self) -> Iterator[Batch]:
        records: list[Any] = []
        record_pages: list[int] = []
        repeated: list[Any] = []
        repeated_pages: list[int] = []
        first_fetch = 0.0
        for page in self._scan:
            if not records and not repeated:
                first_fetch = page.fetched_at
            records.extend(page.tasks)
            record_pages.extend([page.page_num] * len(page.tasks))
            if page.repeated:
                repeated.extend(page.repeated)
                repeated_pages.extend([page.page_num] * len(page.repeated))
            if len(records) + len(repeated) >= BATCH_ROWS:
                yield self._batch(records, record_pages, first_fetch, repeated, repeated_pages)
                records, record_pages, repeated, repeated_pages = [], [], [], []
        if records or repeated:
            yield self._batch(records, record_pages, first_fetch, repeated, repeated_pages)

    def _batch(
        self,
        records: list[Any],
        record_pages: list[int],
        fetched_at: float,
        repeated: list[Any],
        repeated_pages: list[int],
    ) -> Batch:
        seen_at = datetime.fromtimestamp(fetched_at, timezone.utc)
        converted = tasks_to_arrow(records, seen_at, record_pages)
        self.flagged += converted.flagged
        self.rejected += len(converted.rejects)
        again = tasks_to_arrow(repeated, seen_at, repeated_pages).tasks if repeated else None
        return Batch(converted.tasks, converted.rejects, self.earlier, again)


class ListReader:
    """Reads the list until a pass is complete (see the module docstring)."""

    def __init__(self, client: LiveApiClient, page_size: int, max_rescans: int) -> None:
        self.client = client
        self.page_size = page_size
        self.max_rescans = max_rescans
        self._passes: list[ListPass] = []

    def passes(self) -> Iterator[ListPass]:
        """Pass after pass, each to be read to its end before the next is asked for; stops
        after the first complete one. Raises :class:`IncompleteScanError` when the passes
        allowed never read the whole list, even together."""
        for _ in range(self.max_rescans + 1):
            earlier = EarlierPasses(self._reports()) if self._passes else None
            yield self._start(earlier)
            last = self._passes[-1].report
            if last.stable or self._api_duplicates():
                return
            logger.warning(
                "The task list changed during a pass (TotalCount %s, %d distinct tasks read%s); "
                "reading it again so that no task is missed",
                sorted(last.total_counts),
                last.distinct_tasks,
                f": {last.contradiction}" if last.contradiction else "",
            )
        self._check_union_complete()

    def extra_pass(self) -> ListPass:
        """One more pass, read as it comes: for days to re-read once the list is known."""
        return self._start(None)

    def counts(self) -> dict[str, int]:
        """Totals over every pass, for the run's metrics."""
        return {
            "rows_read": sum(p.report.rows_read for p in self._passes),
            "flagged": sum(p.flagged for p in self._passes),
            "rejected": sum(p.rejected for p in self._passes),
            "scans": len(self._passes),
            "pages_reread": sum(p.report.refills for p in self._passes),
        }

    def _start(self, earlier: EarlierPasses | None) -> ListPass:
        started = ListPass(self.client, self.page_size, earlier)
        self._passes.append(started)
        return started

    def _reports(self) -> list[ScanReport]:
        return [p.report for p in self._passes]

    def _api_duplicates(self) -> bool:
        """The last two passes read one list that holds some TaskIds twice
        (:meth:`ScanReport.repeats`)."""
        if len(self._passes) < 2:
            return False
        before, last = self._reports()[-2:]
        if not last.repeats(before):
            return False
        logger.warning(
            "The API lists %d TaskId(s) more than once (the same in two passes): each task is "
            "loaded once",
            (last.first_total or 0) - last.distinct_tasks,
        )
        return True

    def _check_union_complete(self) -> None:
        """After passes that all saw the list move: accept only if together they read at
        least every task the last pass was promised at its start."""
        reports = self._reports()
        promised = reports[-1].first_total or 0
        found = distinct_across(reports)
        if found < promised:
            raise IncompleteScanError(
                f"Read {found} distinct tasks but the API reported {promised} (TotalCount) "
                f"after {self.max_rescans + 1} passes while the list kept changing. Nothing "
                "was committed; run again, or raise max_rescans under [sources.volcengine_live]."
            )
