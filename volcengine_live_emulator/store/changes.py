"""Creating, updating and deleting tasks (deletion for good; see :mod:`.removal` for the
restorable kind).

A created task is the newest of the list (the next key); an updated one keeps its place; a
deleted one leaves the list and later tasks move up a place. Records are stored as the JSON
the API serves, so a raw record (missing TaskId, unparseable times, nulls) comes back exactly
as given.
"""

from __future__ import annotations

import json
import random
from bisect import bisect_left
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any, Final, NamedTuple

from ..data import NOT_STARTED, StreamSpec, dumps_row, format_rfc3339, parse_rfc3339, status_at
from .orders import ListOrder
from .records import Records


class _Remove:
    """Type of :data:`REMOVE`."""

    def __repr__(self) -> str:
        return "REMOVE"


REMOVE: Final = _Remove()
"""Pass as a field value to :meth:`TaskStore.update_task` to drop that field from the record."""


class Draw(NamedTuple):
    """The random choices of one new task, drawn under the lock, used outside it."""

    spec: StreamSpec
    local: bool
    task_id: str
    clock: float


class Changes:
    """Create, update and delete on :class:`~.records.Records`."""

    def __init__(self, records: Records, orders: ListOrder, seed: int) -> None:
        self._records = records
        self._orders = orders
        self._rng = random.Random(f"created-{seed}")

    def draw(self) -> Draw:
        """Stream, time zone and TaskId of a new task (and the clock it is made at)."""
        rng, catalog = self._rng, self._records.gen.catalog
        spec = catalog[rng.randrange(len(catalog))]
        local = rng.random() < 0.7
        return Draw(spec, local, f"{rng.getrandbits(128):032x}", self._records.clock)

    def complete(self, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` with plausible values for the missing fields."""
        return complete(values, self.draw())

    def insert(self, stored: dict[str, Any], fragment: bytes) -> None:
        """Add a record as the newest task."""
        records = self._records
        key = records.next_key
        records.next_key += 1
        records.order.append(key)
        records.overrides[key] = (stored, fragment)
        task_id = stored.get("TaskId")
        if isinstance(task_id, str):
            records.ids[task_id] = key
        self._orders.changed(added=key)

    def update(self, task_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Change fields in place (:data:`REMOVE` drops one); ``KeyError`` if unknown."""
        key = self._records.resolve(task_id)
        if key is None:
            raise KeyError(task_id)
        current = self._records.record(key)
        for name, value in fields.items():
            if value is REMOVE:
                current.pop(name, None)
            else:
                current[name] = format_value(value, _is_local(current))
        self._records.replace(key, current)
        self._orders.changed(moved="StartTime" in fields)
        return dict(current)

    def delete(self, task_id: str) -> dict[str, Any]:
        """Delete the task with this TaskId for good; ``KeyError`` if unknown."""
        key = self._records.resolve(task_id)
        if key is None:
            raise KeyError(task_id)
        return self._delete_key(key)

    def delete_at(self, position: int) -> dict[str, Any]:
        """Delete the task at a served position; ``IndexError`` out of range."""
        if not 0 <= position < len(self._records.order):
            raise IndexError(position)
        return self._delete_key(self._orders.key_at(position))

    def _delete_key(self, key: int) -> dict[str, Any]:
        records = self._records
        record = records.record(key)
        # Keys are appended in increasing order, so the array stays sorted: bisect finds it.
        records.order.pop(bisect_left(records.order, key))
        self._orders.changed(removed=key)
        previous = records.overrides.pop(key, None)
        if key < records.generated:
            records.deleted_generated.add(key)
        task_id = previous[0].get("TaskId") if previous else None
        if isinstance(task_id, str) and records.ids.get(task_id) == key:
            records.forget_id(task_id, key)
        return record


def complete(values: dict[str, Any], draw: Draw) -> dict[str, Any]:
    """``values`` formatted as the API's (datetimes as RFC 3339), missing fields filled from
    ``draw``; a missing Status follows from the times at the draw's clock."""
    local, clock = draw.local, draw.clock
    out = {key: format_value(value, local) for key, value in values.items()}
    out.setdefault("TaskId", draw.task_id)
    out.setdefault(
        "StartTime", format_rfc3339(datetime.fromtimestamp(clock + 600, timezone.utc), local)
    )
    if "EndTime" not in out:
        parsed = parse_rfc3339(out["StartTime"])
        finish = (parsed if parsed is not None else clock) + 3600
        out["EndTime"] = format_rfc3339(datetime.fromtimestamp(finish, timezone.utc), local)
    out.setdefault("Vhost", draw.spec.vhost)
    out.setdefault("Domain", draw.spec.domain)
    out.setdefault("App", draw.spec.app)
    out.setdefault("Stream", draw.spec.stream)
    if "Status" not in out:
        start, end = parse_rfc3339(out["StartTime"]), parse_rfc3339(out["EndTime"])
        out["Status"] = (
            status_at(start, end, clock) if start is not None and end is not None else NOT_STARTED
        )
    return out


def new_record(values: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """``(the record as stored, its JSON)``: stored as it reads back, so a page and a
    record never disagree."""
    fragment = dumps_row(values)
    return json.loads(fragment), fragment


def _is_local(record: Mapping[str, Any]) -> bool:
    start = record.get("StartTime")
    return not (isinstance(start, str) and start.endswith("Z"))


def format_value(value: Any, local: bool) -> Any:
    """A datetime as RFC 3339 (``+08:00`` when ``local``, else ``Z``); anything else as is."""
    if isinstance(value, datetime):
        return format_rfc3339(value, local)
    return value
