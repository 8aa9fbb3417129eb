"""The optional filters of ``ListPullRecordTask`` (``Vhost``, ``Domain``, ``App``,
``Stream``), as the newer official SDKs send them.

Nothing documents how they match or combine; here each one given must equal the task's
field exactly, and all must hold. ``Emulator(filter_tasks=False)`` ignores them, as a server
that predates them would, so a client can be tested against both.

Why not a filtered index in the store: the filters are rare and the lists they serve in
tests small; the filtered list is built from the served order once per store version and
filter, and cached.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from typing import Any, Final

from .binding import optional_string
from .store import TaskStore

TASK_FILTER_FIELDS: Final = ("Vhost", "Domain", "App", "Stream")
_CACHED_LISTS: Final = 8

Filters = tuple[tuple[str, str], ...]
"""``((field, value), ...)`` of the filters a request sent, in field order."""


def parse_task_filters(body: bytes) -> Filters:
    """The filters in a request body; a filter that is not a string is
    ``InvalidParam.BindError``, an empty one is unset. The body was checked as JSON already
    (``parse_page_request``)."""
    if not body.strip():
        return ()
    data: Any = json.loads(body)
    filters = []
    for name in TASK_FILTER_FIELDS:
        value = optional_string(data, name)
        if value is not None:
            filters.append((name, value))
    return tuple(filters)


class FilteredTasks:
    """Pages of the task list as served, less the tasks the filters leave out."""

    def __init__(self, store: TaskStore) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._lists: OrderedDict[tuple[int, Filters], list[bytes]] = OrderedDict()

    def page_blob(self, filters: Filters, page_num: int, page_size: int) -> tuple[bytes, int, int]:
        """``(rows joined by commas, row count, TotalCount)``, as ``TaskStore.page_blob``."""
        rows = self._rows(filters)
        first = (page_num - 1) * page_size
        page = rows[first : first + page_size]
        return b",".join(page), len(page), len(rows)

    def _rows(self, filters: Filters) -> list[bytes]:
        key = (self.store.version, filters)
        with self._lock:
            rows = self._lists.get(key)
            if rows is not None:
                self._lists.move_to_end(key)
                return rows
        rows = [
            fragment
            for fragment in self.store.iter_fragments()
            if _matches(json.loads(fragment), filters)
        ]
        with self._lock:
            self._lists[key] = rows
            while len(self._lists) > _CACHED_LISTS:
                self._lists.popitem(last=False)
        return rows


def _matches(task: Any, filters: Filters) -> bool:
    return isinstance(task, dict) and all(task.get(name) == value for name, value in filters)
