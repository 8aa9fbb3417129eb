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
lives in dlt's resource state all the same, so it is committed with the load package and
only advances when a run succeeds.
"""

from __future__ import annotations

import zlib
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import cached_property
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .records import TIMESTAMP_TYPE
from .settings import SETTLED_STATUS_CODES

STATE_CURSOR = "start_time_cursor"
STATE_OPEN_TASKS = "open_task_ids"
STATE_SETTLED_DAYS = "settled_day_fingerprints"
DAY_US = 86_400_000_000
"""Microseconds in a day: fingerprints are kept per UTC day of StartTime."""

_SETTLED_CODES = pa.array(sorted(SETTLED_STATUS_CODES), pa.string())

Fingerprint = tuple[int, int]
"""(number of tasks, sum of their CRC-32s)."""


def to_utc(value: datetime | str | None) -> datetime | None:
    """An aware UTC datetime from a datetime or an ISO 8601 string; naive means UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


@dataclass(frozen=True)
class CursorState:
    """What the last successful run left: the StartTime cursor and the open tasks."""

    cursor: datetime | None = None
    open_task_ids: frozenset[str] = frozenset()
    settled_days: dict[int, Fingerprint] | None = None
    """Fingerprint of the settled tasks of each UTC day (days since 1970-01-01)."""

    @classmethod
    def load(cls, state: MutableMapping[str, Any]) -> CursorState:
        days = state.get(STATE_SETTLED_DAYS)
        return cls(
            cursor=to_utc(state.get(STATE_CURSOR)),
            open_task_ids=frozenset(state.get(STATE_OPEN_TASKS) or ()),
            settled_days=(
                {int(day): (int(fp[0]), int(fp[1])) for day, fp in days.items()}
                if isinstance(days, dict)
                else None
            ),
        )

    def save(self, state: MutableMapping[str, Any]) -> None:
        state[STATE_CURSOR] = self.cursor.isoformat() if self.cursor else None
        state[STATE_OPEN_TASKS] = sorted(self.open_task_ids)
        if self.settled_days is not None:
            state[STATE_SETTLED_DAYS] = {
                str(day): list(fp) for day, fp in sorted(self.settled_days.items())
            }


@dataclass
class WritePlan:
    """Decides, page by page, which tasks to write, and gathers the next :class:`CursorState`.

    ``since``/``until`` bound StartTime (``until`` exclusive). With ``until`` set the run is
    a backfill: it writes the range and leaves the state as it was.
    """

    previous: CursorState
    lookback: timedelta
    run_started_at: datetime
    since: datetime | None = None
    until: datetime | None = None
    _max_start: datetime | None = field(default=None, init=False)
    _open: dict[str, int | None] = field(default_factory=dict, init=False)
    """Open tasks that may start before the next run's window: TaskId -> StartTime (µs)."""
    _settled_now: dict[int, list[int]] = field(default_factory=dict, init=False)
    _settled_before: dict[int, list[int]] = field(default_factory=dict, init=False)
    """Fingerprints of settled tasks that were settled at the last run too."""

    @cached_property
    def _previously_open(self) -> pa.Array:
        """The last run's open TaskIds as an Arrow set, built once per run, not per page."""
        return pa.array(sorted(self.previous.open_task_ids), pa.string())

    @property
    def is_backfill(self) -> bool:
        return self.until is not None

    @property
    def window_start(self) -> datetime | None:
        """Settled tasks starting before this are not written again (None: write all)."""
        if self.is_backfill or self.previous.cursor is None:
            return self.since
        start = _midnight(self.previous.cursor - self.lookback)
        return max(start, self.since) if self.since else start

    def select(self, tasks: pa.Table) -> pa.Table:
        """The rows of one page to write; also remembers what the next state needs."""
        if tasks.num_rows == 0:
            return tasks
        starts = tasks.column("start_time")
        self._observe(tasks, starts)
        mask = self._within_bounds(starts)
        if not self.is_backfill and self.previous.cursor is not None:
            assert self.window_start is not None
            in_window = pc.greater_equal(starts, _scalar(self.window_start))
            must_write = pc.or_kleene(in_window, self.open_mask(tasks))
            if self.previous.open_task_ids:
                was_open = pc.is_in(tasks.column("task_id"), value_set=self._previously_open)
                must_write = pc.or_kleene(must_write, was_open)
            mask = pc.and_kleene(mask, pc.fill_null(must_write, True))
        return tasks.filter(pc.fill_null(mask, True))

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

    @staticmethod
    def open_mask(tasks: pa.Table) -> Any:
        """Rows whose status may still change: not settled, or StartTime unknown."""
        settled = pc.is_in(tasks.column("status_code"), value_set=_SETTLED_CODES)
        return pc.or_(pc.invert(settled), pc.is_null(tasks.column("start_time")))

    def _observe(self, tasks: pa.Table, starts: pa.ChunkedArray) -> None:
        not_future = pc.filter(starts, pc.less_equal(starts, _scalar(self.run_started_at)))
        latest = pc.max(not_future).as_py() if len(not_future) else None
        if latest is not None and (self._max_start is None or latest > self._max_start):
            self._max_start = latest
        open_mask = self.open_mask(tasks)
        # The next window starts no later than midnight of (now - lookback): an open task
        # starting after that will be written next run anyway and need not be remembered.
        may_precede_window = pc.fill_null(
            pc.less(starts, _scalar(_midnight(self.run_started_at - self.lookback))), True
        )
        remember = tasks.filter(pc.and_(open_mask, may_precede_window))
        self._open.update(
            zip(
                remember.column("task_id").to_pylist(),
                remember.column("start_time").cast(pa.int64()).to_pylist(),
                strict=True,
            )
        )
        self._fingerprint(tasks.filter(pc.invert(open_mask)))

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
            _accumulate(
                self._settled_now,
                pc.filter(days, settled_all_along),
                pc.filter(crcs, settled_all_along),
            )
        else:
            _accumulate(self._settled_now, days, crcs)
        if self.previous.open_task_ids:
            settled_before = pc.invert(
                pc.is_in(settled.column("task_id"), value_set=self._previously_open)
            )
            days, crcs = pc.filter(days, settled_before), pc.filter(crcs, settled_before)
        _accumulate(self._settled_before, days, crcs)

    def changed_days(self) -> set[int]:
        """Days below the window whose settled tasks differ from the last run's: they hold a
        task that was created late, changed or deleted, and must be written again."""
        known = self.previous.settled_days
        window_start = self.window_start
        if self.is_backfill or known is None or window_start is None:
            return set()
        first_written_day = int(window_start.timestamp() * 1_000_000) // DAY_US
        days = set(known) | set(self._settled_before)
        return {
            day
            for day in days
            if day < first_written_day
            and tuple(self._settled_before.get(day, (0, 0))) != tuple(known.get(day, (0, 0)))
        }

    def begin_pass(self) -> None:
        """Start another pass over the list. Fingerprints describe the last pass only, not
        the sum of several; open tasks are the union of all passes, because a task that was
        open in an earlier pass was written with that status, and a later pass (which
        writes only tasks not read before) does not write its final status: the next run
        must."""
        self._settled_now.clear()
        self._settled_before.clear()
        self.__dict__.pop("_written_below_window", None)

    @cached_property
    def _written_below_window(self) -> pa.Array:
        """Tasks below the window that the main pass wrote already (open now or at the last
        run): a second pass over late days must not write them twice in one load."""
        ids = set(self._open) | self.previous.open_task_ids
        return pa.array(sorted(ids), pa.string())

    def select_days(self, tasks: pa.Table, days: set[int]) -> pa.Table:
        """The rows of ``tasks`` that start on one of ``days`` (and lie within since/until),
        except those the main pass wrote."""
        if tasks.num_rows == 0 or not days:
            return tasks.slice(0, 0)
        starts = tasks.column("start_time")
        day_of = pc.divide(starts.cast(pa.int64()), DAY_US)
        mask = pc.and_kleene(self._within_bounds(starts), pc.is_in(day_of, pa.array(sorted(days))))
        written = pc.is_in(tasks.column("task_id"), value_set=self._written_below_window)
        return tasks.filter(pc.and_(pc.fill_null(mask, False), pc.invert(written)))

    def next_state(self) -> CursorState:
        """The state to keep after a complete scan (the old one for a backfill)."""
        if self.is_backfill:
            return self.previous
        candidates = [c for c in (self.previous.cursor, self._max_start) if c is not None]
        cursor = max(candidates) if candidates else None
        if cursor is None:
            open_ids = frozenset(self._open)
        else:
            next_window = int(_midnight(cursor - self.lookback).timestamp() * 1_000_000)
            open_ids = frozenset(
                task_id
                for task_id, start in self._open.items()
                if start is None or start < next_window
            )
        return CursorState(
            cursor=cursor,
            open_task_ids=open_ids,
            settled_days={day: (fp[0], fp[1]) for day, fp in self._settled_now.items()},
        )


def _accumulate(fingerprints: dict[int, list[int]], days: Any, crcs: Any) -> None:
    grouped = (
        pa.table({"day": days, "crc": crcs})
        .group_by("day")
        .aggregate([("crc", "count"), ("crc", "sum")])
    )
    for day, count, total in zip(
        grouped.column("day").to_pylist(),
        grouped.column("crc_count").to_pylist(),
        grouped.column("crc_sum").to_pylist(),
        strict=True,
    ):
        fingerprint = fingerprints.setdefault(day, [0, 0])
        fingerprint[0] += count
        fingerprint[1] += total


def _midnight(moment: datetime) -> datetime:
    return moment.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


def _scalar(moment: datetime) -> pa.Scalar:
    return pa.scalar(moment, TIMESTAMP_TYPE)
