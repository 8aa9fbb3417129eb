"""What the store holds: the list's keys in creation order and the records that differ from
the generated population.

Keys ``0 .. generated - 1`` are generated tasks (produced on demand by
:class:`~volcengine_live_emulator.data.TaskGenerator`), larger keys are tasks created through
:meth:`~volcengine_live_emulator.store.TaskStore.create_task`. Only changed or created tasks
are held as records, so a store of a million tasks costs a few megabytes.

Nothing here locks: the :class:`~volcengine_live_emulator.store.TaskStore` facade holds its
lock around every call.
"""

from __future__ import annotations

import json
from array import array
from typing import Any, Final

from ..data import TaskGenerator, dumps_row

TASK_FIELDS: Final = (
    "TaskId",
    "StartTime",
    "EndTime",
    "Vhost",
    "Domain",
    "App",
    "Stream",
    "Status",
)
"""The fields of a task, as the API documents them."""


class Records:
    """The list's state, shared by the store's parts (orders, pages, changes, flows, clock)."""

    def __init__(self, generator: TaskGenerator, clock: float) -> None:
        self.gen = generator
        self.generated = generator.count
        self.clock = float(clock)
        """Epoch seconds the statuses are taken at; only :mod:`.clock` moves it."""
        # Keys in creation order; appended in increasing order, so it stays sorted.
        self.order = array("q", range(self.generated))
        self.next_key = self.generated
        self.overrides: dict[int, tuple[dict[str, Any], bytes]] = {}
        self.ids: dict[str, int] = {}
        self.deleted_generated: set[int] = set()
        # Removed (restorable) tasks: their keys leave ``order``, their records stay.
        self.hidden: set[int] = set()
        self.hidden_ids: dict[str, list[int]] = {}
        # Anything that can change what a page holds bumps the version (page caches key on it).
        self.version = 0

    def record(self, key: int) -> dict[str, Any]:
        """The task of ``key`` in API shape (a fresh dict)."""
        override = self.overrides.get(key)
        if override is not None:
            return json.loads(override[1])  # type: ignore[no-any-return]
        return self.gen.record(key, self.clock)

    def resolve(self, task_id: str) -> int | None:
        """The key of the listed task with this TaskId, or None."""
        # Created/renamed ids first (the newest wins), then the generated population's
        # reversible ids.
        key = self.ids.get(task_id)
        if key is not None:
            return None if key in self.hidden else key
        index = self.gen.index_of(task_id) if isinstance(task_id, str) else None
        if index is None or index in self.deleted_generated or index in self.hidden:
            return None
        override = self.overrides.get(index)
        if override is not None and override[0].get("TaskId") != task_id:
            return None
        return index

    def replace(self, key: int, record: dict[str, Any]) -> None:
        """Hold ``record`` as the task of ``key``, keeping the TaskId index right."""
        previous = self.overrides.get(key)
        fragment = dumps_row(record)
        self.overrides[key] = (json.loads(fragment), fragment)
        old_id = previous[0].get("TaskId") if previous else None
        new_id = record.get("TaskId")
        if old_id != new_id and isinstance(old_id, str) and self.ids.get(old_id) == key:
            self.forget_id(old_id, key)
        if isinstance(new_id, str) and (key >= self.generated or new_id != self.gen.task_id(key)):
            current = self.ids.get(new_id)
            if current is None or current < key:
                self.ids[new_id] = key

    def forget_id(self, task_id: str, key: int) -> None:
        """``key`` no longer answers to ``task_id``."""
        # Another task may share the id (duplicates are allowed for bad-data tests).
        del self.ids[task_id]
        holders = [
            other
            for other, (record, _) in self.overrides.items()
            if other != key and other not in self.hidden and record.get("TaskId") == task_id
        ]
        if holders:
            self.ids[task_id] = max(holders)
