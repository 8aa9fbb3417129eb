"""The emulator's task list: seeded generated tasks plus whatever a test changed.

The list is kept in creation order (oldest first) as an array of integer keys; the API reads it
newest first. Keys ``0 .. generated - 1`` are generated tasks (produced on demand by
:class:`~volcengine_live_emulator.data.TaskGenerator`), larger keys are tasks created through
:meth:`TaskStore.create_task`. Only changed or created tasks are held as records, so a store
of a million tasks costs a few megabytes plus a bounded cache of serialised rows.

Every public method is thread-safe: the HTTP server reads pages while a test mutates.
"""

from __future__ import annotations

import json
import random
import threading
import time
from array import array
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, Final

from .data import (
    FINISHED,
    LIFECYCLE_RANK,
    NOT_STARTED,
    TaskGenerator,
    dumps_row,
    format_rfc3339,
    parse_rfc3339,
    status_at,
)

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

_CHUNK_SHIFT: Final = 9
_CHUNK: Final = 1 << _CHUNK_SHIFT
_CHUNK_MASK: Final = _CHUNK - 1
DEFAULT_CACHE_ROWS: Final = 1 << 18
"""Serialised generated rows kept (about 250 bytes each): 262,144 rows is ~75 MB."""


class _Remove:
    """Type of :data:`REMOVE`."""

    def __repr__(self) -> str:
        return "REMOVE"


REMOVE: Final = _Remove()
"""Pass as a field value to :meth:`TaskStore.update_task` to drop that field from the record."""


def _to_epoch(moment: datetime | float | None) -> float:
    if moment is None:
        return time.time()
    if isinstance(moment, datetime):
        # A naive datetime is UTC, as everywhere in the emulator.
        return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()
    return float(moment)


class TaskStore:
    """The mutable list of recording tasks the emulator serves.

    ``clock`` is the moment statuses are taken at; it only moves through :meth:`advance`,
    so a test sees no status change it did not ask for.
    """

    def __init__(
        self,
        generator: TaskGenerator,
        *,
        clock: float,
        cache_rows: int = DEFAULT_CACHE_ROWS,
    ) -> None:
        self._gen = generator
        self._generated = generator.count
        self._clock = float(clock)
        self._lock = threading.RLock()
        self._order = array("q", range(self._generated))
        self._next_key = self._generated
        self._overrides: dict[int, tuple[dict[str, Any], bytes]] = {}
        self._ids: dict[str, int] = {}
        self._deleted_generated: set[int] = set()
        self._cache: OrderedDict[int, list[bytes]] = OrderedDict()
        self._cache_chunks = max(1, cache_rows // _CHUNK)
        self._rng = random.Random(f"created-{generator.seed}")

    # ----------------------------------------------------------------- reading

    @property
    def count(self) -> int:
        """Tasks in the list now (the API's TotalCount)."""
        return len(self._order)

    def __len__(self) -> int:
        return self.count

    @property
    def clock(self) -> float:
        """Epoch seconds the statuses are taken at."""
        return self._clock

    @property
    def generator(self) -> TaskGenerator:
        return self._gen

    def page(self, page_num: int, page_size: int) -> tuple[list[bytes], int]:
        """Rows ``(page_num - 1) * page_size ..`` of the newest-first list as JSON fragments,
        and the total count at the same instant. A page past the end is empty."""
        with self._lock:
            total = len(self._order)
            first = (page_num - 1) * page_size
            if first >= total:
                return [], total
            last = min(first + page_size, total)
            keys = self._order[total - last : total - first]
            overrides = self._overrides
            rows: list[bytes] = []
            append = rows.append
            chunk_index = -1
            chunk: list[bytes] = []
            for key in reversed(keys):
                override = overrides.get(key)
                if override is not None:
                    append(override[1])
                    continue
                if key >> _CHUNK_SHIFT != chunk_index:
                    chunk_index = key >> _CHUNK_SHIFT
                    chunk = self._chunk(chunk_index)
                append(chunk[key & _CHUNK_MASK])
            return rows, total

    def _chunk(self, index: int) -> list[bytes]:
        # Caller holds the lock. LRU of generated rows; cleared whenever the clock moves.
        cache = self._cache
        chunk = cache.get(index)
        if chunk is not None:
            cache.move_to_end(index)
            return chunk
        start = index << _CHUNK_SHIFT
        chunk = self._gen.fragments(start, min(start + _CHUNK, self._generated), self._clock)
        cache[index] = chunk
        if len(cache) > self._cache_chunks:
            cache.popitem(last=False)
        return chunk

    def iter_fragments(self) -> Iterator[bytes]:
        """Every task as JSON bytes, newest first, as of the call (a snapshot: later changes
        do not show, and the server is not blocked while the caller iterates)."""
        with self._lock:
            order = array("q", self._order)
            overrides = dict(self._overrides)
            clock = self._clock
        gen = self._gen
        position = len(order)
        while position > 0:
            start = max(0, position - _CHUNK)
            keys = order[start:position]
            position = start
            generated = [key for key in keys if key not in overrides]
            rows: dict[int, bytes] = {}
            if generated:
                low = generated[0]
                fragments = gen.fragments(low, generated[-1] + 1, clock)
                rows = {key: fragments[key - low] for key in generated}
            for key in reversed(keys):
                override = overrides.get(key)
                yield override[1] if override is not None else rows[key]

    def all_tasks(self) -> Iterator[dict[str, Any]]:
        """Every task as the API would return it (dicts in API shape), newest first, as of
        the call. Malformed records created raw come back exactly as stored."""
        for fragment in self.iter_fragments():
            record: dict[str, Any] = json.loads(fragment)
            yield record

    def get_task(self, task_id: str) -> dict[str, Any] | None:
        """The task with this TaskId in API shape (the newest one if several share it)."""
        with self._lock:
            key = self._resolve(task_id)
            return None if key is None else self._record(key)

    def _record(self, key: int) -> dict[str, Any]:
        override = self._overrides.get(key)
        if override is not None:
            return json.loads(override[1])  # type: ignore[no-any-return]
        return self._gen.record(key, self._clock)

    def _resolve(self, task_id: str) -> int | None:
        # Caller holds the lock. Created/renamed ids first (the newest wins), then the
        # generated population's reversible ids.
        key = self._ids.get(task_id)
        if key is not None:
            return key
        index = self._gen.index_of(task_id) if isinstance(task_id, str) else None
        if index is None or index in self._deleted_generated:
            return None
        override = self._overrides.get(index)
        if override is not None and override[0].get("TaskId") != task_id:
            return None
        return index

    # ---------------------------------------------------------------- changing

    def create_task(
        self, record: Mapping[str, Any] | None = None, /, *, raw: bool = False, **fields: Any
    ) -> dict[str, Any]:
        """Add a task as the newest of the list (page 1) and return it in API shape.

        Fields come from ``record`` and/or keyword arguments (API names: ``TaskId``,
        ``StartTime``, ...). Without ``raw``, missing fields get plausible values, datetimes
        are formatted as RFC 3339 and a missing Status follows from the times at the store's
        clock. With ``raw=True`` the record is served exactly as given: missing TaskId,
        unparseable times, nulls, unknown fields or Status strings included.
        """
        values: dict[str, Any] = {**(record or {}), **fields}
        if not raw:
            values = self._complete(values)
        fragment = dumps_row(values)
        stored: dict[str, Any] = json.loads(fragment)
        with self._lock:
            key = self._next_key
            self._next_key += 1
            self._order.append(key)
            self._overrides[key] = (stored, fragment)
            task_id = stored.get("TaskId")
            if isinstance(task_id, str):
                self._ids[task_id] = key
        return json.loads(fragment)  # type: ignore[no-any-return]

    def _complete(self, values: dict[str, Any]) -> dict[str, Any]:
        rng = self._rng
        with self._lock:
            spec = self._gen.catalog[rng.randrange(len(self._gen.catalog))]
            local = rng.random() < 0.7
            task_id = f"{rng.getrandbits(128):032x}"
            clock = self._clock
        out = {key: _format_value(value, local) for key, value in values.items()}
        out.setdefault("TaskId", task_id)
        out.setdefault(
            "StartTime", format_rfc3339(datetime.fromtimestamp(clock + 600, timezone.utc), local)
        )
        if "EndTime" not in out:
            parsed = parse_rfc3339(out["StartTime"])
            finish = (parsed if parsed is not None else clock) + 3600
            out["EndTime"] = format_rfc3339(datetime.fromtimestamp(finish, timezone.utc), local)
        out.setdefault("Vhost", spec.vhost)
        out.setdefault("Domain", spec.domain)
        out.setdefault("App", spec.app)
        out.setdefault("Stream", spec.stream)
        if "Status" not in out:
            start, end = parse_rfc3339(out["StartTime"]), parse_rfc3339(out["EndTime"])
            out["Status"] = (
                status_at(start, end, clock)
                if start is not None and end is not None
                else NOT_STARTED
            )
        return out

    def update_task(self, task_id: str, /, **fields: Any) -> dict[str, Any]:
        """Change fields of the task with this TaskId (in place: its position does not move)
        and return it. A value of :data:`REMOVE` drops the field, ``None`` makes it null.
        Raises ``KeyError`` for an unknown TaskId."""
        with self._lock:
            key = self._resolve(task_id)
            if key is None:
                raise KeyError(task_id)
            current = self._record(key)
            for name, value in fields.items():
                if value is REMOVE:
                    current.pop(name, None)
                else:
                    current[name] = _format_value(value, _is_local(current))
            self._replace(key, current)
            return dict(current)

    def set_status(self, task_id: str, status: str) -> dict[str, Any]:
        """Shorthand for ``update_task(task_id, Status=status)``."""
        return self.update_task(task_id, Status=status)

    def _replace(self, key: int, record: dict[str, Any]) -> None:
        # Caller holds the lock.
        previous = self._overrides.get(key)
        fragment = dumps_row(record)
        self._overrides[key] = (json.loads(fragment), fragment)
        old_id = previous[0].get("TaskId") if previous else None
        new_id = record.get("TaskId")
        if old_id != new_id and isinstance(old_id, str) and self._ids.get(old_id) == key:
            self._forget_id(old_id, key)
        if isinstance(new_id, str) and (key >= self._generated or new_id != self._gen.task_id(key)):
            current = self._ids.get(new_id)
            if current is None or current < key:
                self._ids[new_id] = key

    def delete_task(self, task_id: str) -> dict[str, Any]:
        """Remove the task with this TaskId (later tasks move up a place) and return it.
        Raises ``KeyError`` for an unknown TaskId."""
        with self._lock:
            key = self._resolve(task_id)
            if key is None:
                raise KeyError(task_id)
            record = self._record(key)
            self._remove_key(key)
            return record

    def delete_at(self, position: int) -> dict[str, Any]:
        """Remove the task at ``position`` of the newest-first list (0 = newest); works for
        records without a usable TaskId. Raises ``IndexError``."""
        with self._lock:
            total = len(self._order)
            if not 0 <= position < total:
                raise IndexError(position)
            key = self._order[total - 1 - position]
            record = self._record(key)
            self._remove_key(key)
            return record

    def _remove_key(self, key: int) -> None:
        # Keys are appended in increasing order, so the array stays sorted: bisect finds it.
        where = bisect_left(self._order, key)
        self._order.pop(where)
        previous = self._overrides.pop(key, None)
        if key < self._generated:
            self._deleted_generated.add(key)
        task_id = previous[0].get("TaskId") if previous else None
        if isinstance(task_id, str) and self._ids.get(task_id) == key:
            self._forget_id(task_id, key)

    def _forget_id(self, task_id: str, key: int) -> None:
        # Another task may share the id (duplicates are allowed for bad-data tests).
        del self._ids[task_id]
        holders = [
            other
            for other, (record, _) in self._overrides.items()
            if other != key and record.get("TaskId") == task_id
        ]
        if holders:
            self._ids[task_id] = max(holders)

    def advance(self, now: datetime | float | None = None) -> None:
        """Move the store's clock to ``now`` (default: the wall clock; it never goes back)
        and move tasks along their life cycle from their times: 未开始 → 生效中 → 已结束.
        停用 and unknown statuses stay; a task whose times do not parse stays as it is."""
        target = _to_epoch(now)
        with self._lock:
            if target > self._clock:
                self._clock = target
                self._cache.clear()
            clock = self._clock
            for key, (record, _) in list(self._overrides.items()):
                status = record.get("Status")
                if status not in LIFECYCLE_RANK or status == FINISHED:
                    continue
                start = parse_rfc3339(record.get("StartTime"))
                end = parse_rfc3339(record.get("EndTime"))
                if start is None or end is None:
                    continue
                new = status_at(start, end, clock)
                if LIFECYCLE_RANK[new] > LIFECYCLE_RANK[status]:
                    self._replace(key, {**record, "Status": new})


def _is_local(record: Mapping[str, Any]) -> bool:
    start = record.get("StartTime")
    return not (isinstance(start, str) and start.endswith("Z"))


def _format_value(value: Any, local: bool) -> Any:
    if isinstance(value, datetime):
        return format_rfc3339(value, local)
    return value
