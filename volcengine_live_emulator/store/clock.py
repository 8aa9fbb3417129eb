"""The store's clock: the moment statuses are taken at.

It only moves through :meth:`~volcengine_live_emulator.store.TaskStore.advance` (never back),
so a test sees no status change it did not ask for. Generated tasks take their status from
the clock when rendered; held records are moved along their life cycle here.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from ..data import FINISHED, LIFECYCLE_RANK, parse_rfc3339, status_at
from .orders import ListOrder
from .pages import Pages
from .records import Records


def to_epoch(moment: datetime | float | None) -> float:
    """Epoch seconds of ``moment`` (None: now). A naive datetime is UTC, as everywhere in the
    emulator."""
    if moment is None:
        return time.time()
    if isinstance(moment, datetime):
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    return float(moment)


class Clock:
    """Moves :attr:`Records.clock <.records.Records.clock>` and the held records with it."""

    def __init__(self, records: Records, orders: ListOrder, pages: Pages) -> None:
        self._records = records
        self._orders = orders
        self._pages = pages

    def advance(self, target: float) -> None:
        """Move to ``target`` if later, then move held tasks on: 未开始 → 生效中 → 已结束.
        停用 and unknown statuses stay; a task whose times do not parse stays as it is."""
        records = self._records
        if target > records.clock:
            records.clock = target
            self._pages.drop_rows()  # generated rows carry statuses of the old clock
            self._orders.changed()
        clock = records.clock
        for key, (record, _) in list(records.overrides.items()):
            if key in records.hidden:
                continue  # removed tasks come back exactly as they left
            status = record.get("Status")
            if status not in LIFECYCLE_RANK or status == FINISHED:
                continue
            start = parse_rfc3339(record.get("StartTime"))
            end = parse_rfc3339(record.get("EndTime"))
            if start is None or end is None:
                continue
            new = status_at(start, end, clock)
            if LIFECYCLE_RANK[new] > LIFECYCLE_RANK[status]:
                records.replace(key, {**record, "Status": new})
                self._orders.changed()
