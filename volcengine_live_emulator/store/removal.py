"""Restorable removal: tasks taken out of the list (as a deletion in the console or a purge by
the platform would) and put back later with the same TaskId, fields and place.

A removed task's key leaves the list, its record stays (frozen as it was, status included, so
it comes back exactly as it left) and its TaskId no longer resolves until it is restored.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from ..data import dumps_row
from .orders import ListOrder
from .records import Records


class Removal:
    """Remove and restore tasks of :class:`~.records.Records`."""

    def __init__(self, records: Records, orders: ListOrder) -> None:
        self._records = records
        self._orders = orders

    def remove(self, task_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Remove these tasks; ``KeyError`` (changing nothing) if one is not listed."""
        keys: list[int] = []
        for task_id in task_ids:
            key = self._records.resolve(task_id)
            if key is None or key in keys:
                raise KeyError(task_id)
            keys.append(key)
        return [self.hide(key) for key in keys]

    def remove_oldest(self, count: int) -> list[dict[str, Any]]:
        """Remove the ``count`` oldest-created tasks."""
        keys = list(self._records.order[: max(0, count)])
        return [self.hide(key) for key in keys]

    def hide(self, key: int) -> dict[str, Any]:
        """Take the task of ``key`` out of the list, keeping its record as it is now."""
        records = self._records
        record = records.record(key)
        if key not in records.overrides:
            records.overrides[key] = (record, dumps_row(record))
        records.order.pop(bisect_left(records.order, key))
        self._orders.changed(removed=key)
        records.hidden.add(key)
        task_id = record.get("TaskId")
        if isinstance(task_id, str):
            records.hidden_ids.setdefault(task_id, []).append(key)
            if records.ids.get(task_id) == key:
                records.forget_id(task_id, key)
        return dict(record)

    def restore(self, task_ids: Iterable[str] | None) -> list[dict[str, Any]]:
        """Put removed tasks back (None: all); ``KeyError`` (changing nothing) for a TaskId
        that is not removed."""
        hidden_ids = self._records.hidden_ids
        if task_ids is None:
            keys = sorted(self._records.hidden)
        else:
            keys = []
            for task_id in task_ids:
                held = [k for k in hidden_ids.get(task_id, []) if k not in keys]
                if not held:
                    raise KeyError(task_id)
                keys.append(held[-1])
        return [self._unhide(key) for key in keys]

    def _unhide(self, key: int) -> dict[str, Any]:
        records = self._records
        records.hidden.discard(key)
        record = records.overrides[key][0]
        task_id = record.get("TaskId")
        if isinstance(task_id, str):
            held = records.hidden_ids.get(task_id, [])
            if key in held:
                held.remove(key)
            if not held:
                records.hidden_ids.pop(task_id, None)
            if key >= records.generated or task_id != records.gen.task_id(key):
                current = records.ids.get(task_id)
                if current is None or current < key or current in records.hidden:
                    records.ids[task_id] = key
        records.order.insert(bisect_left(records.order, key), key)
        self._orders.changed(added=key)
        return dict(record)

    def removed_task_ids(self) -> list[str]:
        """TaskIds of the removed tasks, oldest-created first."""
        records = self._records
        out: list[str] = []
        for key in sorted(records.hidden):
            task_id = records.overrides[key][0].get("TaskId")
            if isinstance(task_id, str):
                out.append(task_id)
        return out
