"""What one successful run leaves for the next, as kept in dlt's resource state.

Three things, each under its own key: the StartTime cursor, the TaskIds that were still
open, and a fingerprint of the settled tasks of every UTC day. ``incremental.py`` says how
a run uses them.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

# Explicitly re-exported: the command (volcengine_live_cli) reads times with it from here.
from .times import to_utc as to_utc

STATE_CURSOR = "start_time_cursor"
STATE_OPEN_TASKS = "open_task_ids"
STATE_SETTLED_DAYS = "settled_day_fingerprints"
DAY_US = 86_400_000_000
"""Microseconds in a day: fingerprints are kept per UTC day of StartTime."""

Fingerprint = tuple[int, int]
"""(number of tasks, sum of their CRC-32s)."""


@dataclass(frozen=True)
class IncrementalState:
    """What the last successful run left; the names are the keys in the resource state."""

    start_time_cursor: datetime | None = None
    """The highest StartTime seen that was not in the future."""
    open_task_ids: frozenset[str] = frozenset()
    """Tasks whose status could still change, and that start before the next window."""
    settled_day_fingerprints: dict[int, Fingerprint] | None = None
    """Per UTC day (days since 1970-01-01), a fingerprint of its settled tasks; ``None``
    when the state predates fingerprints."""

    @classmethod
    def load(cls, state: MutableMapping[str, Any]) -> IncrementalState:
        days = state.get(STATE_SETTLED_DAYS)
        return cls(
            start_time_cursor=to_utc(state.get(STATE_CURSOR)),
            open_task_ids=frozenset(state.get(STATE_OPEN_TASKS) or ()),
            settled_day_fingerprints=(
                {int(day): (int(fp[0]), int(fp[1])) for day, fp in days.items()}
                if isinstance(days, dict)
                else None
            ),
        )

    def save(self, state: MutableMapping[str, Any]) -> None:
        cursor = self.start_time_cursor
        state[STATE_CURSOR] = cursor.isoformat() if cursor else None
        state[STATE_OPEN_TASKS] = sorted(self.open_task_ids)
        if self.settled_day_fingerprints is not None:
            state[STATE_SETTLED_DAYS] = {
                str(day): list(fp) for day, fp in sorted(self.settled_day_fingerprints.items())
            }


@dataclass
class DayFingerprints:
    """Running fingerprints of settled tasks, per UTC day: count and sum of CRC-32s, a
    digest that does not depend on the order the tasks arrive in."""

    _days: dict[int, list[int]] = field(default_factory=dict)

    def add(self, days: Any, crcs: Any) -> None:
        """Add tasks, given as two Arrow arrays of equal length: day and CRC-32 of each."""
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
            fingerprint = self._days.setdefault(day, [0, 0])
            fingerprint[0] += count
            fingerprint[1] += total

    def clear(self) -> None:
        self._days.clear()

    def get(self, day: int) -> Fingerprint:
        count, total = self._days.get(day, (0, 0))
        return count, total

    def days(self) -> set[int]:
        return set(self._days)

    def as_dict(self) -> dict[int, Fingerprint]:
        return {day: (fp[0], fp[1]) for day, fp in self._days.items()}
