"""Tasks that left the list: found only after a complete scan, written with ``deleted_at``.

A task is gone when the destination holds it as live (``deleted_at`` null) and no pass of
a complete run read it. The state keeps no TaskIds of settled tasks, and the destination is
not read whole: a deletion can only hide in

* the open tasks of the last run (their TaskIds are in the state);
* the lookback window (every task there was written, so the destination has it);
* a day below the window whose fingerprint changed: a removed settled task takes its
  count and CRC-32 out of its day, so the day no longer matches (and is re-read anyway).

So the run reads the destination's rows for just those slices (``destination_rows.py``),
and takes as *candidates* the live ones that no pass of this run read. Nothing is flagged
unless the run's last pass was unmoved (one ``TotalCount``, every promised row read): a
failed run or an incomplete scan flags nothing and leaves the state as it was; a run over
a list that kept moving flags nothing either, and its state carries the traces forward
(:meth:`DeletionFinder.next_state`), so the next complete run finds the same tasks missing.

A pass over a list that shifts under it can skip a live task although its counts add up (a
task deleted before the page boundary and another created after it). So candidates are
confirmed by the run's extra pass (the one that re-reads late days, made also when there
are candidates): a task is flagged only if that pass too did not find it, and that pass
was itself complete. ``deleted_at`` is when the run began reading the list; the row keeps
the task's last fields, and ``seen_at`` is set to the same instant so that the newest row
of an append-only destination is the flagged one.

With task filters (``vhost``, ``domain``, ``app``, ``stream``), only rows within them are
candidates: a run over a part of the list never flags a task outside that part.

A flagged task is not live in the destination any more, so it is not flagged or written
again; one that comes back under the same TaskId is read, and written as usual (by the
window, as open, or because its day's fingerprint changed), with ``deleted_at`` null.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone

import pyarrow as pa
import pyarrow.compute as pc

from .destination_rows import KEY_COLUMNS, DestinationUnreadable, Slices, read_rows
from .incremental import WritePlan
from .reader import EarlierPasses, ListPass
from .records import TIMESTAMP_TYPE
from .state import DAY_US, IncrementalState
from .task_filter import TaskFilter

logger = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


@dataclass(frozen=True)
class Candidates:
    """What looking for deletions after the main passes found (:meth:`DeletionFinder.find`)."""

    rows: pa.Table | None = None
    """Rows the destination holds as live that the main passes did not read; None: none."""
    looked: bool = False
    """The run looked where a deletion can hide (or there was nowhere to look); False when
    the list moved or the destination could not be read."""
    unreadable: str | None = None
    """Why the destination's rows could not be read back, when they could not."""

    @property
    def count(self) -> int:
        return 0 if self.rows is None else int(self.rows.num_rows)


@dataclass(frozen=True)
class Verdict:
    """The candidates judged by the extra pass (:meth:`DeletionFinder.confirm`)."""

    gone: pa.Table
    """The tasks to write as deleted, ``deleted_at`` and ``seen_at`` set."""
    unsettled: bool
    """The run could not tell which candidates are gone (the list moved): the next state
    carries the traces of a deletion forward (:meth:`DeletionFinder.next_state`)."""


@dataclass(frozen=True)
class DeletionFinder:
    """Finds the tasks that left the list, for one run of :class:`WritePlan` ``plan``. It
    keeps nothing between its answers: each question takes what the answer before it gave."""

    plan: WritePlan
    account: str | None = None
    """The account label of the rows, when several accounts share the table."""
    task_filter: TaskFilter | None = None
    """The run's task filters: rows outside them are not this run's to flag."""

    def slices(self, late_days: set[int]) -> Slices | None:
        """Where a deletion can hide (see the module docstring); None: nowhere to look (a
        backfill, a first run)."""
        plan = self.plan
        window_start = plan.window_start
        if plan.is_backfill or plan.previous.start_time_cursor is None or window_start is None:
            return None
        ranges: list[tuple[datetime, datetime | None]] = [(window_start, None)]
        for first, last in _runs(sorted(late_days)):
            ranges.append((_day_start(first), _day_start(last + 1)))
        return Slices(ranges, sorted(plan.previous.open_task_ids), self.account)

    def find(self, passes: list[ListPass], late_days: set[int]) -> Candidates:
        """After the main passes: the live rows in the destination's slices that none of
        ``passes`` read. Finds none unless the last pass was unmoved."""
        slices = self.slices(late_days)
        if slices is None or not passes:
            return Candidates(looked=True)
        if not passes[-1].report.unmoved:
            logger.warning(
                "The task list kept moving during the run: no task is flagged as deleted "
                "in this run (the next complete run finds the missing ones)"
            )
            return Candidates()
        try:
            rows = self._missing_rows(slices, passes)
        except DestinationUnreadable as error:
            logger.warning(
                "Cannot read the destination's tasks back (%s): tasks deleted from the list "
                "are not flagged on this destination",
                error,
            )
            return Candidates(unreadable=str(error))
        return Candidates(rows if rows is not None and rows.num_rows else None, looked=True)

    def _missing_rows(self, slices: Slices, passes: list[ListPass]) -> pa.Table | None:
        """Whole rows of the live tasks in ``slices`` that ``passes`` did not read: first the
        key columns of every task there, then whole rows of the missing ones only."""
        keys = read_rows(slices, KEY_COLUMNS)
        if keys is None or keys.num_rows == 0:
            return keys
        earlier = EarlierPasses([p.report for p in passes])
        missing = _not_read(_live(keys), earlier).column("task_id").to_pylist()
        if not missing:
            return None
        rows = read_rows(Slices([], missing, slices.account))
        # By TaskId alone the latest row of a task can be another than within the slices
        # (a table with several rows a task, whose StartTime changed): judged as it is.
        if rows is None:
            return None
        # Whole rows carry vhost/domain/app/stream: outside the filters, not ours to judge.
        return _live(rows) if self.task_filter is None else self.task_filter.rows(_live(rows))

    def confirm(self, candidates: Candidates, extra: ListPass | None) -> Verdict:
        """The candidates that the extra pass did not read either, with ``deleted_at`` and
        ``seen_at`` set to when the run began; none when that pass was not complete."""
        # Unsettled unless the run looked; a destination it cannot read stays unread.
        unsettled = not candidates.looked and candidates.unreadable is None
        rows = candidates.rows
        if rows is None or extra is None:
            return Verdict(_empty(), unsettled)
        if not extra.report.unmoved:
            logger.warning(
                "The task list moved during the confirming pass: %d task(s) missing from "
                "the list are not flagged as deleted in this run",
                rows.num_rows,
            )
            return Verdict(_empty(), unsettled=True)
        gone = _not_read(rows, EarlierPasses([extra.report]))
        if gone.num_rows:
            logger.warning(
                "%d task(s) left the API's list since the last run: written with deleted_at",
                gone.num_rows,
            )
        return Verdict(_stamped(gone, self.plan.run_started_at), unsettled)

    def next_state(
        self,
        state: IncrementalState,
        verdict: Verdict,
        late_days: set[int],
        passes: list[ListPass],
    ) -> IncrementalState:
        """``state`` as the observer built it; after a run that could not settle its
        candidates (the list moved), with the traces of a deletion carried forward, so that
        the next run still looks where this one would have: the last run's open TaskIds that
        no pass read, and the last run's fingerprints of the changed days and of the window
        (a task removed from the window must still show if the window moves past it)."""
        if not verdict.unsettled:
            return state
        previous = self.plan.previous
        unread = sorted(previous.open_task_ids)
        if unread:
            read = EarlierPasses([p.report for p in passes]).read(unread)
            unread = [task_id for task_id, seen in zip(unread, read, strict=True) if not seen]
        known = previous.settled_day_fingerprints
        days = dict(state.settled_day_fingerprints or {})
        window_start = self.plan.window_start
        if known is not None and window_start is not None:
            first_window_day = int(window_start.timestamp() * 1_000_000) // DAY_US
            for day in late_days | {d for d in set(days) | set(known) if d >= first_window_day}:
                if day in known:
                    days[day] = known[day]
                else:
                    days.pop(day, None)
        return replace(
            state,
            open_task_ids=state.open_task_ids | frozenset(unread),
            settled_day_fingerprints=days if state.settled_day_fingerprints is not None else None,
        )


def _live(rows: pa.Table) -> pa.Table:
    """Rows not flagged deleted (all of them in a table from before ``deleted_at``)."""
    if "deleted_at" not in rows.column_names:
        return rows
    return rows.filter(pc.is_null(rows.column("deleted_at")))


def _not_read(rows: pa.Table, earlier: EarlierPasses) -> pa.Table:
    read = earlier.read(rows.column("task_id").to_pylist())
    return rows.filter(pc.invert(pa.array(read, pa.bool_())))


def _stamped(rows: pa.Table, moment: datetime) -> pa.Table:
    """``rows`` flagged as deleted at ``moment``; ``task_id`` not nullable, as read rows."""
    position = rows.column_names.index("task_id")
    rows = rows.set_column(
        position,
        pa.field("task_id", pa.string(), nullable=False),
        rows.column("task_id").cast(pa.string()),
    )
    stamp = pa.array([moment] * rows.num_rows, TIMESTAMP_TYPE)
    for name in ("deleted_at", "seen_at"):
        if name in rows.column_names:
            rows = rows.set_column(rows.column_names.index(name), name, stamp)
        else:
            rows = rows.append_column(name, stamp)
    return rows


def _empty() -> pa.Table:
    return pa.table({"task_id": pa.array([], pa.string())})


def _runs(days: list[int]) -> list[tuple[int, int]]:
    """Consecutive days as (first, last) pairs: one range query per run of days."""
    runs: list[tuple[int, int]] = []
    for day in days:
        if runs and runs[-1][1] == day - 1:
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs


def _day_start(day: int) -> datetime:
    return EPOCH + timedelta(microseconds=day * DAY_US)
