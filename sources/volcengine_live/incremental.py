"""Which tasks a run writes, and what it remembers for the next run.

The API has no filter and no updated-at field, so every run reads the whole list; what is
incremental is what gets *written*. A task is written when

* it is new to the window: its StartTime is at or after ``cursor - lookback``;
* it is open: its status may still change (not started, recording, or a status this
  source does not know), or its StartTime could not be read;
* it was open at the last run: its final status must replace the old one, however old
  its StartTime. (Only open tasks that start before the next run's window need
  remembering; the others are written by the window anyway. That keeps the state small
  when many tasks are scheduled ahead.)

The cursor is the highest StartTime seen that is not in the future, so a task scheduled
for next year does not hide the tasks created after it with an earlier StartTime. The
window starts at midnight (UTC) of ``cursor - lookback``, so every day is either wholly
written or wholly checked:

* a safety net covers the days below the window. For each day the state keeps a
  fingerprint (count and sum of CRC-32s of TaskId, Status, StartTime, EndTime) of its settled
  tasks. A day whose settled tasks no longer match it (a task created late with an old
  StartTime, a settled task that changed or was deleted) is read and written again in a
  second pass, so a back-dated task is not hidden behind the cursor.

Why not ``dlt.sources.incremental``: its filter drops every row older than
``last_value - lag``, which would freeze the status of an old task that is still
recording, and its ``max`` cursor would follow scheduled tasks into the future. The state
lives in dlt's resource state all the same (``state.py``), so it is committed with the load
package and only advances when a run succeeds.

Two objects divide the work: :class:`WritePlan` selects, and never changes; a
:class:`StateObserver` is shown every task a pass reads and builds the next state.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .records import TIMESTAMP_TYPE
from .settings import SETTLED_STATUS_CODES
from .state import DAY_US, DayFingerprints, IncrementalState

_SETTLED_CODES = pa.array(sorted(SETTLED_STATUS_CODES), pa.string())


def open_mask(tasks: pa.Table) -> Any:
    """Rows whose status may still change: not settled, or StartTime unknown."""
    settled = pc.is_in(tasks.column("status_code"), value_set=_SETTLED_CODES)
    return pc.or_(pc.invert(settled), pc.is_null(tasks.column("start_time")))


@dataclass
class WritePlan:
    """Which tasks a run writes, given what the last run left; selecting changes nothing.

    ``since``/``until`` bound StartTime (``until`` exclusive). With ``until`` set the run is
    a backfill: it writes the range and leaves the state as it was.
    """

    previous: IncrementalState
    lookback: timedelta
    run_started_at: datetime
    since: datetime | None = None
    until: datetime | None = None
    previously_open: pa.Array = field(init=False, repr=False)
    """The last run's open TaskIds as an Arrow set, built once per run, not per page."""

    def __post_init__(self) -> None:
        self.previously_open = pa.array(sorted(self.previous.open_task_ids), pa.string())

    @property
    def is_backfill(self) -> bool:
        return self.until is not None

    @property
    def window_start(self) -> datetime | None:
        """Settled tasks starting before this are not written again (None: write all)."""
        cursor = self.previous.start_time_cursor
        if self.is_backfill or cursor is None:
            return self.since
        start = midnight(cursor - self.lookback)
        return max(start, self.since) if self.since else start

    def select(self, tasks: pa.Table) -> pa.Table:
        """The rows of ``tasks`` to write."""
        if tasks.num_rows == 0:
            return tasks
        starts = tasks.column("start_time")
        mask = self._within_bounds(starts)
        window_start = self.window_start
        if not self.is_backfill and self.previous.start_time_cursor is not None:
            assert window_start is not None
            in_window = pc.greater_equal(starts, _scalar(window_start))
            must_write = pc.or_kleene(in_window, open_mask(tasks))
            if self.previous.open_task_ids:
                was_open = pc.is_in(tasks.column("task_id"), value_set=self.previously_open)
                must_write = pc.or_kleene(must_write, was_open)
            mask = pc.and_kleene(mask, pc.fill_null(must_write, True))
        return tasks.filter(pc.fill_null(mask, True))

    def late_day_selection(
        self, days: set[int], written: set[str]
    ) -> Callable[[pa.Table], pa.Table]:
        """A selection of the tasks that start on one of ``days`` (within since/until),
        less ``written``: the tasks below the window that the main pass wrote already."""
        day_set = pa.array(sorted(days), pa.int64())
        written_set = pa.array(sorted(written), pa.string())

        def select_late(tasks: pa.Table) -> pa.Table:
            if tasks.num_rows == 0 or not days:
                return tasks.slice(0, 0)
            starts = tasks.column("start_time")
            day_of = pc.divide(starts.cast(pa.int64()), DAY_US)
            mask = pc.and_kleene(self._within_bounds(starts), pc.is_in(day_of, day_set))
            was_written = pc.is_in(tasks.column("task_id"), value_set=written_set)
            return tasks.filter(pc.and_(pc.fill_null(mask, False), pc.invert(was_written)))

        return select_late

    def _within_bounds(self, starts: pa.ChunkedArray) -> pa.ChunkedArray | pa.Array:
        mask: Any = pa.array([True] * len(starts))
        if self.since is not None:
            mask = pc.and_kleene(mask, pc.greater_equal(starts, _scalar(self.since)))
        if self.until is not None:
            mask = pc.and_kleene(mask, pc.less(starts, _scalar(self.until)))
        if self.since is not None or self.until is not None:
            # A task whose StartTime is unknown cannot be placed in a range: a backfill skips
            # it, a regular run writes it (it counts as open, see open_mask).
            mask = pc.fill_null(mask, not self.is_backfill)
        return mask


@dataclass
class StateObserver:
    """Shown every task of every pass over the list, it gathers what the next
    :class:`IncrementalState` needs: the highest StartTime not in the future, the open tasks,
    and the fingerprints of settled days."""

    plan: WritePlan
    _max_start: datetime | None = field(default=None, init=False)
    _open: dict[str, int | None] = field(default_factory=dict, init=False)
    """Open tasks that may start before the next run's window: TaskId -> StartTime (µs)."""
    _settled_now: DayFingerprints = field(default_factory=DayFingerprints, init=False)
    _settled_before: DayFingerprints = field(default_factory=DayFingerprints, init=False)
    """Fingerprints of settled tasks that were settled at the last run too."""

    def begin_pass(self) -> None:
        """Start another pass over the list. Fingerprints describe the last pass only, not
        the sum of several; open tasks are the union of all passes, because a task that was
        open in an earlier pass was written with that status, and a later pass (which
        writes only tasks not read before) does not write its final status: the next run
        must."""
        self._settled_now.clear()
        self._settled_before.clear()

    def observe(self, tasks: pa.Table) -> None:
        """Take note of tasks read by this pass (all of them, written or not)."""
        if tasks.num_rows == 0:
            return
        starts = tasks.column("start_time")
        run_started_at = self.plan.run_started_at
        not_future = pc.filter(starts, pc.less_equal(starts, _scalar(run_started_at)))
        latest = pc.max(not_future).as_py() if len(not_future) else None
        if latest is not None and (self._max_start is None or latest > self._max_start):
            self._max_start = latest
        still_open = open_mask(tasks)
        # The next window starts no later than midnight of (now - lookback): an open task
        # starting after that will be written next run anyway and need not be remembered.
        may_precede_window = pc.fill_null(
            pc.less(starts, _scalar(midnight(run_started_at - self.plan.lookback))), True
        )
        remember = tasks.filter(pc.and_(still_open, may_precede_window))
        self._open.update(
            zip(
                remember.column("task_id").to_pylist(),
                remember.column("start_time").cast(pa.int64()).to_pylist(),
                strict=True,
            )
        )
        self._fingerprint(tasks.filter(pc.invert(still_open)))

    def _fingerprint(self, settled: pa.Table) -> None:
        """Add settled tasks to their day's fingerprint: count and sum of CRC-32s of
        TaskId, Status, StartTime and EndTime (an order-free digest of the day's tasks)."""
        if settled.num_rows == 0:
            return
        starts = settled.column("start_time").cast(pa.int64())
        ends = settled.column("end_time").cast(pa.int64())
        keys = pc.binary_join_element_wise(
            settled.column("task_id"),
            pc.fill_null(settled.column("status"), ""),
            pc.cast(starts, pa.string()),
            pc.fill_null(pc.cast(ends, pa.string()), ""),
            "\x1f",
        )
        crcs = pa.array([zlib.crc32(key) for key in keys.cast(pa.binary()).to_pylist()])
        days = pc.divide(starts, DAY_US)
        if self._open:
            # Open in an earlier pass of this run: remembered as open, so it stays out of
            # the settled fingerprints until a run writes it settled.
            settled_all_along = pc.invert(
                pc.is_in(settled.column("task_id"), value_set=pa.array(list(self._open)))
            )
            self._settled_now.add(
                pc.filter(days, settled_all_along), pc.filter(crcs, settled_all_along)
            )
        else:
            self._settled_now.add(days, crcs)
        if self.plan.previous.open_task_ids:
            settled_before = pc.invert(
                pc.is_in(settled.column("task_id"), value_set=self.plan.previously_open)
            )
            days, crcs = pc.filter(days, settled_before), pc.filter(crcs, settled_before)
        self._settled_before.add(days, crcs)

    @property
    def written_below_window(self) -> set[str]:
        """Tasks below the window that the main pass wrote (open now or at the last run):
        a second pass over late days must not write them twice in one load."""
        return set(self._open) | set(self.plan.previous.open_task_ids)

    def changed_days(self) -> set[int]:
        """Days below the window whose settled tasks differ from the last run's: they hold a
        task that was created late, changed or deleted, and must be written again."""
        known = self.plan.previous.settled_day_fingerprints
        window_start = self.plan.window_start
        if self.plan.is_backfill or known is None or window_start is None:
            return set()
        first_written_day = int(window_start.timestamp() * 1_000_000) // DAY_US
        days = set(known) | self._settled_before.days()
        return {
            day
            for day in days
            if day < first_written_day
            and self._settled_before.get(day) != tuple(known.get(day, (0, 0)))
        }

    def next_state(self) -> IncrementalState:
        """The state to keep after a complete scan (the old one for a backfill)."""
        previous = self.plan.previous
        if self.plan.is_backfill:
            return previous
        candidates = [c for c in (previous.start_time_cursor, self._max_start) if c is not None]
        cursor = max(candidates) if candidates else None
        if cursor is None:
            open_ids = frozenset(self._open)
        else:
            next_window = int(midnight(cursor - self.plan.lookback).timestamp() * 1_000_000)
            open_ids = frozenset(
                task_id
                for task_id, start in self._open.items()
                if start is None or start < next_window
            )
        return IncrementalState(
            start_time_cursor=cursor,
            open_task_ids=open_ids,
            settled_day_fingerprints=self._settled_now.as_dict(),
        )


def midnight(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def _scalar(moment: datetime) -> pa.Scalar:
    return pa.scalar(moment, TIMESTAMP_TYPE)
