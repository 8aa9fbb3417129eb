"""One run over the task list, as the phases the README gives (``Incremental loading``):

1. **read** the list pass after pass until one is complete, writing each settled task when
   first read (``reader.py``, ``incremental.WritePlan``);
2. **write once per run** the open tasks held to the end, each with its last read status
   (``writer.py``);
3. **reconcile**: re-read the late days (below the window, fingerprint changed) and confirm
   the tasks that seem deleted, in one extra pass (``deletions.py``);
4. **save** the next state, reached only when the scan was complete, so that it advances
   with the load package.

:class:`TaskListRun` owns the order; its parts answer questions (which rows to write,
which days changed, which tasks seem gone) and the run passes each answer to the next
question, so no part holds a flag another part set between two calls.

Why not keep the order in the resource: it was seventeen calls on six objects in an order
written down nowhere else, and a test could only reach it through dlt. Why not a state
machine with explicit phase checks: the phases are generators a resource drains in order,
and a run is used once; calling them out of order is a programming error the types and the
tests catch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, MutableMapping
from typing import Any

import pyarrow as pa

from .client import LiveApiClient
from .deletions import Candidates, DeletionFinder, Verdict
from .incremental import StateObserver, WritePlan
from .reader import Batch, ListPass, ListReader
from .task_filter import TaskFilter
from .writer import RunWriter

logger = logging.getLogger(__name__)


class TaskListRun:
    """One run of ``pull_record_tasks``: :meth:`read`, then :meth:`reconcile`, then
    :meth:`save`, draining each before the next; :meth:`metrics` and :meth:`close` at any
    point (also after a failure). Its parts are handed in, built by the resource from its
    arguments, so a test can hand in its own."""

    def __init__(
        self,
        client: LiveApiClient,
        plan: WritePlan,
        reader: ListReader,
        writer: RunWriter,
        task_filter: TaskFilter | None = None,
    ) -> None:
        self.client = client
        self.task_filter = task_filter
        """Only the tasks it keeps are written, or looked for as deleted."""
        self.plan = plan
        self.reader = reader
        self.writer = writer
        self.finder = DeletionFinder(plan, writer.account, task_filter)
        self.observer = StateObserver(plan)
        self._main: list[ListPass] = []
        self._extra: ListPass | None = None
        self._late_days: set[int] = set()
        self._candidates = Candidates()
        self._verdict: Verdict | None = None
        self._started = time.monotonic()

    def read(self) -> Iterator[Any]:
        """Phases 1 and 2: pass after pass until one is complete (raises
        :class:`~volcengine_live.errors.IncompleteScanError` otherwise), the selected
        settled tasks as they come, then the held open tasks, once each."""
        for list_pass in self.reader.passes():
            self._main.append(list_pass)
            self.observer.begin_pass()
            for batch in self._kept(list_pass):
                self.observer.observe(batch.tasks)
                selected = self.plan.select(batch.tasks)
                yield from self.writer.write(selected, batch.rejects, batch.earlier)
                yield from self.writer.refresh(batch.repeated)
        yield from self.writer.write_held()

    def reconcile(self) -> Iterator[Any]:
        """Phase 3: the days below the window that changed since the last run, and the tasks
        the destination holds as live that no pass read, settled by one extra pass."""
        self._late_days = self.observer.changed_days()
        self._candidates = self.finder.find(self._main, self._late_days)
        if self._late_days or self._candidates.rows is not None:
            self._extra = self.reader.extra_pass()
            yield from self._write_late_days(self._extra)
        self._verdict = self.finder.confirm(self._candidates, self._extra)
        yield from self.writer.write_deleted(self._verdict.gone)

    def save(self, state: MutableMapping[str, Any]) -> None:
        """Phase 4: the state the next run starts from, into dlt's resource ``state``."""
        assert self._verdict is not None, "save() comes after reconcile()"
        every_pass = self._main + ([self._extra] if self._extra is not None else [])
        self.finder.next_state(
            self.observer.next_state(), self._verdict, self._late_days, every_pass
        ).save(state)

    def metrics(self) -> dict[str, Any]:
        """What the run did so far, for dlt's resource metrics."""
        return {
            **self.reader.counts(),
            "rows_written": self.writer.rows_written,
            "late_days": len(self._late_days),
            "deletion_candidates": self._candidates.count,
            "deleted": 0 if self._verdict is None else self._verdict.gone.num_rows,
            "elapsed_seconds": round(time.monotonic() - self._started, 3),
            **self.client.stats.as_dict(),
        }

    def close(self) -> None:
        """The client's connections and the held rows' files go, whatever happened."""
        self.client.close()
        self.writer.close()
        # Arrow's allocator keeps what the run freed (30-40 MB at a million tasks) for
        # reuse; the load that follows does not use it, so it goes back to the system.
        pa.default_memory_pool().release_unused()

    def _write_late_days(self, extra: ListPass) -> Iterator[Any]:
        """The extra pass's tasks on the late days, less those the main passes wrote; it
        also serves :meth:`DeletionFinder.confirm`."""
        if self._late_days:
            logger.warning(
                "%d day(s) before the lookback window changed since the last run (a task "
                "created late with an old StartTime, or changed or deleted); re-reading them",
                len(self._late_days),
            )
        select_late = self.plan.late_day_selection(
            self._late_days, self.observer.written_below_window
        )
        for batch in self._kept(extra):
            yield from self.writer.write(select_late(batch.tasks), batch.rejects)

    def _kept(self, batches: ListPass) -> Iterator[Batch]:
        """A pass's batches, less the tasks outside the filter (a server that ignores the
        filters sends them all); the pass itself, and its checks of completeness, see every
        row the API sent."""
        for batch in batches:
            yield batch if self.task_filter is None else self.task_filter.batch(batch)
