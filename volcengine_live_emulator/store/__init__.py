"""The emulator's task list: seeded generated tasks plus whatever a test changed.

The list is kept in creation order (oldest first) as an array of integer keys; the API reads it
newest first by default (see :data:`LIST_ORDERS` for the others). Keys ``0 .. generated - 1``
are generated tasks (produced on demand by
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
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any, Final

from ..data import (
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


LIST_ORDERS: Final = (
    "newest_first",
    "oldest_first",
    "start_time_desc",
    "start_time_asc",
    "random",
    "unstable",
)
"""How the list is served. ``newest_first`` (default): newest-created first, as the API's
example shows. ``oldest_first``: creation order. ``start_time_desc`` / ``start_time_asc``: by
StartTime (ties: newest created first; a StartTime that does not parse goes last).
``random``: a seeded permutation, stable from request to request (a new task lands at a
random place) until :meth:`TaskStore.reshuffle`. ``unstable``: a fresh permutation for every
request, so pages of one scan overlap and miss at random."""

DEFAULT_LIST_ORDER: Final = "newest_first"

_MIX: Final = 0x9E3779B97F4A7C15
_MASK64: Final = (1 << 64) - 1


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
        # Removed (restorable) tasks: their keys leave _order, their records stay.
        self._hidden: set[int] = set()
        self._hidden_ids: dict[str, list[int]] = {}
        # Anything that can change what a page holds bumps the version (page caches key on it).
        self._version = 0
        self._list_order = DEFAULT_LIST_ORDER
        self._order_salt = generator.seed
        self._view: array[int] | None = None
        self._view_version = -1
        self._starts: array[int] | None = None
        self._unstable_rng = random.Random(f"unstable-{generator.seed}")
        self._flows: list[_Flow] = []
        self._prerender_size: int | None = None
        self._rendered: dict[int, tuple[bytes, int, int]] = {}
        self._rendered_version = -1

    # ----------------------------------------------------------------- reading

    @property
    def count(self) -> int:
        """Tasks in the list now (the API's TotalCount)."""
        with self._lock:
            self._run_flows(0)
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

    @property
    def version(self) -> int:
        """A counter bumped by every change that can alter a page (tasks, clock, order)."""
        with self._lock:
            self._run_flows(0)
            return self._version

    def page(self, page_num: int, page_size: int) -> tuple[list[bytes], int]:
        """Rows ``(page_num - 1) * page_size ..`` of the list in its :attr:`list_order` as
        JSON fragments, and the total count at the same instant. A page past the end is
        empty."""
        with self._lock:
            self._run_flows(0)
            return self._page(page_num, page_size)

    def _page(self, page_num: int, page_size: int) -> tuple[list[bytes], int]:
        # Caller holds the lock.
        total = len(self._order)
        first = (page_num - 1) * page_size
        if first >= total:
            return [], total
        last = min(first + page_size, total)
        keys = self._keys(first, last)
        overrides = self._overrides
        rows: list[bytes] = []
        append = rows.append
        chunk_index = -1
        chunk: list[bytes] = []
        for key in keys:
            override = overrides.get(key)
            if override is not None:
                append(override[1])
                continue
            if key >> _CHUNK_SHIFT != chunk_index:
                chunk_index = key >> _CHUNK_SHIFT
                chunk = self._chunk(chunk_index)
            append(chunk[key & _CHUNK_MASK])
        return rows, total

    def page_blob(self, page_num: int, page_size: int) -> tuple[bytes, int, int]:
        """``(rows joined by commas, row count, TotalCount)`` of one page: the bytes between
        ``"List":[`` and ``]``. Pages of the :meth:`prerender` size come from a cache of
        rendered pages that any change to the list empties (they are rendered again on
        demand), so serving them is a copy."""
        with self._lock:
            self._run_flows(0)
            cacheable = page_size == self._prerender_size and self._list_order != "unstable"
            if cacheable:
                if self._rendered_version != self._version:
                    self._rendered.clear()
                    self._rendered_version = self._version
                hit = self._rendered.get(page_num)
                if hit is not None:
                    return hit
            rows, total = self._page(page_num, page_size)
            blob = (b",".join(rows), len(rows), total)
            if cacheable and rows:
                self._rendered[page_num] = blob
            return blob

    def prerender(self, page_size: int | None, *, eager: bool = True) -> int:
        """Keep every page of ``page_size`` rows rendered (None: stop, free the pages).
        ``eager`` renders them all now (a million tasks: about 2,000 pages and 290 MB);
        otherwise each on first request. Returns the pages rendered now."""
        with self._lock:
            self._prerender_size = page_size
            self._rendered.clear()
            self._rendered_version = self._version
        if page_size is None or not eager:
            return 0
        pages = 0
        while True:
            _, rows, _ = self.page_blob(pages + 1, page_size)
            if not rows:
                break
            pages += 1
        with self._lock:
            self._cache.clear()  # the rendered pages hold the same bytes
        return pages

    @property
    def prerender_size(self) -> int | None:
        """The page size whose pages are kept rendered, or None."""
        return self._prerender_size

    # ----------------------------------------------------------------- orders

    @property
    def list_order(self) -> str:
        """One of :data:`LIST_ORDERS`; settable while serving (a reorder mid-scan)."""
        return self._list_order

    @list_order.setter
    def list_order(self, value: str) -> None:
        self.set_list_order(value)

    def set_list_order(self, order: str, *, seed: int | None = None) -> None:
        """Serve the list in ``order`` from the next request on; ``seed`` re-seeds the
        ``random`` and ``unstable`` orders."""
        if order not in LIST_ORDERS:
            raise ValueError(f"unknown list order {order!r}; one of {', '.join(LIST_ORDERS)}")
        with self._lock:
            self._list_order = order
            if seed is not None:
                self._order_salt = seed
                self._unstable_rng.seed(f"unstable-{seed}")
            self._view = None
            self._changed()

    def reshuffle(self, seed: int | None = None) -> None:
        """A new permutation for the ``random`` order (from ``seed``, or the next one):
        every task moves, as if the service re-sorted the list between two requests."""
        with self._lock:
            self._order_salt = self._order_salt + 1 if seed is None else seed
            self._view = None
            self._changed()

    def _changed(
        self, *, added: int | None = None, removed: int | None = None, moved: bool = False
    ) -> None:
        # Caller holds the lock. A sorted view stays valid across one added or removed key
        # (placed by bisection), so a growing list is not re-sorted on every new task; a
        # change of StartTime (``moved``) re-sorts the StartTime orders.
        current = self._view is not None and self._view_version == self._version
        self._version += 1
        if not current or self._view is None:
            return
        if moved and self._list_order.startswith("start_time"):
            return
        view = self._view
        rank = self._rank()
        if added is not None:
            view.insert(bisect_left(view, rank(added), key=rank), added)
        if removed is not None:
            where = bisect_left(view, rank(removed), key=rank)
            while where < len(view) and view[where] != removed:
                where += 1
            if where < len(view):
                view.pop(where)
        self._view_version = self._version

    def _keys(self, first: int, last: int) -> list[int] | array[int]:
        # Caller holds the lock. Keys at served positions first .. last - 1.
        order = self._order
        total = len(order)
        mode = self._list_order
        if mode == "newest_first":
            keys = order[total - last : total - first]
            keys.reverse()
            return keys
        if mode == "oldest_first":
            return order[first:last]
        if mode == "unstable":
            # Positions first..last of a fresh permutation: a uniform sample of that size.
            return [order[i] for i in self._unstable_rng.sample(range(total), last - first)]
        return self._sorted_view()[first:last]

    def _sorted_view(self) -> array[int]:
        # Caller holds the lock. The whole list in a sorted order, rebuilt after a change.
        if self._view is not None and self._view_version == self._version:
            return self._view
        view = array("q", sorted(self._order, key=self._rank()))
        self._view, self._view_version = view, self._version
        return view

    def _rank(self) -> Callable[[int], Any]:
        # Caller holds the lock. The sort key of a task's key in the current sorted order.
        mode = self._list_order
        if mode == "random":
            salt = (self._order_salt * _MIX + 1) & _MASK64

            def by_hash(key: int) -> int:
                mixed = ((key ^ salt) * _MIX) & _MASK64
                return mixed ^ (mixed >> 29)

            return by_hash
        starts = self._generated_starts()
        overrides = self._overrides
        generated = self._generated
        descending = mode == "start_time_desc"
        # A StartTime that does not parse sorts last either way; ties: newest created first.
        missing = float("inf")

        def by_start(key: int) -> tuple[float, int]:
            override = overrides.get(key)
            if override is None and key < generated:
                start: float | None = float(starts[key])
            else:
                start = parse_rfc3339(override[0].get("StartTime")) if override else None
            if start is None:
                return (missing, -key)
            return (-start if descending else start, -key)

        return by_start

    def _generated_starts(self) -> array[int]:
        # Caller holds the lock. StartTime of every generated task (they never change).
        if self._starts is None:
            times = self._gen.times
            self._starts = array("q", (times(i)[0] for i in range(self._generated)))
        return self._starts

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
        """Every task as JSON bytes in the served order (newest first by default; the
        ``unstable`` order gives newest first), as of the call: a snapshot, later changes do
        not show, and the server is not blocked while the caller iterates."""
        with self._lock:
            self._run_flows(0)
            mode = self._list_order
            order = array("q", self._order)
            view = (
                array("q", self._sorted_view())
                if mode not in ("newest_first", "oldest_first", "unstable")
                else None
            )
            overrides = dict(self._overrides)
            clock = self._clock
        gen = self._gen
        if view is not None:
            for key in view:
                override = overrides.get(key)
                yield override[1] if override is not None else gen.fragment(key, clock)
            return
        if mode == "oldest_first":
            for start in range(0, len(order), _CHUNK):
                keys = order[start : start + _CHUNK]
                rows = self._rows_of(keys, overrides, clock)
                for key in keys:
                    yield rows[key]
            return
        position = len(order)
        while position > 0:
            start = max(0, position - _CHUNK)
            keys = order[start:position]
            position = start
            rows = self._rows_of(keys, overrides, clock)
            for key in reversed(keys):
                yield rows[key]

    def _rows_of(
        self,
        keys: array[int],
        overrides: Mapping[int, tuple[dict[str, Any], bytes]],
        clock: float,
    ) -> dict[int, bytes]:
        # Fragments of a run of keys in creation order, the generated ones in one call.
        generated = [key for key in keys if key not in overrides]
        rows: dict[int, bytes] = {}
        if generated:
            low = generated[0]
            fragments = self._gen.fragments(low, generated[-1] + 1, clock)
            rows = {key: fragments[key - low] for key in generated}
        for key in keys:
            override = overrides.get(key)
            if override is not None:
                rows[key] = override[1]
        return rows

    def all_tasks(self) -> Iterator[dict[str, Any]]:
        """Every task as the API would return it (dicts in API shape), newest first, as of
        the call. Malformed records created raw come back exactly as stored."""
        for fragment in self.iter_fragments():
            record: dict[str, Any] = json.loads(fragment)
            yield record

    def get_task(self, task_id: str) -> dict[str, Any] | None:
        """The task with this TaskId in API shape (the newest one if several share it);
        None for an unknown, deleted or removed one."""
        with self._lock:
            self._run_flows(0)
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
            return None if key in self._hidden else key
        index = self._gen.index_of(task_id) if isinstance(task_id, str) else None
        if index is None or index in self._deleted_generated or index in self._hidden:
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
            self._run_flows(0)
            self._insert(stored, fragment)
        return json.loads(fragment)  # type: ignore[no-any-return]

    def _insert(self, stored: dict[str, Any], fragment: bytes) -> None:
        # Caller holds the lock.
        key = self._next_key
        self._next_key += 1
        self._order.append(key)
        self._overrides[key] = (stored, fragment)
        task_id = stored.get("TaskId")
        if isinstance(task_id, str):
            self._ids[task_id] = key
        self._changed(added=key)

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
            self._run_flows(0)
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
            self._changed(moved="StartTime" in fields)
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
            self._run_flows(0)
            key = self._resolve(task_id)
            if key is None:
                raise KeyError(task_id)
            record = self._record(key)
            self._remove_key(key)
            return record

    def delete_at(self, position: int) -> dict[str, Any]:
        """Remove the task at ``position`` of the served list (0 = first; newest first by
        default, newest-created first in the ``unstable`` order); works for records without a
        usable TaskId. Raises ``IndexError``."""
        with self._lock:
            self._run_flows(0)
            total = len(self._order)
            if not 0 <= position < total:
                raise IndexError(position)
            if self._list_order in ("newest_first", "unstable"):
                key = self._order[total - 1 - position]
            else:
                key = self._keys(position, position + 1)[0]
            record = self._record(key)
            self._remove_key(key)
            return record

    def _remove_key(self, key: int) -> None:
        # Keys are appended in increasing order, so the array stays sorted: bisect finds it.
        where = bisect_left(self._order, key)
        self._order.pop(where)
        self._changed(removed=key)
        previous = self._overrides.pop(key, None)
        if key < self._generated:
            self._deleted_generated.add(key)
        task_id = previous[0].get("TaskId") if previous else None
        if isinstance(task_id, str) and self._ids.get(task_id) == key:
            self._forget_id(task_id, key)

    # ---------------------------------------------------------- removal (restorable)

    def remove_tasks(self, task_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Take these tasks out of the list (as a deletion in the console or a purge by the
        platform would) and return them. Unlike :meth:`delete_task` they are kept: the list
        shrinks (TotalCount drops, later tasks move up) and :meth:`restore_tasks` puts them
        back with the same TaskId, fields and place. Raises ``KeyError`` (changing nothing)
        if one is not in the list."""
        with self._lock:
            self._run_flows(0)
            keys: list[int] = []
            for task_id in task_ids:
                key = self._resolve(task_id)
                if key is None or key in keys:
                    raise KeyError(task_id)
                keys.append(key)
            return [self._hide(key) for key in keys]

    def remove_task(self, task_id: str) -> dict[str, Any]:
        """:meth:`remove_tasks` for one TaskId."""
        return self.remove_tasks([task_id])[0]

    def remove_oldest(self, count: int = 1) -> list[dict[str, Any]]:
        """Remove the ``count`` oldest-created tasks in the list (a retention purge)."""
        with self._lock:
            self._run_flows(0)
            keys = list(self._order[: max(0, count)])
            return [self._hide(key) for key in keys]

    def _hide(self, key: int) -> dict[str, Any]:
        # Caller holds the lock. The record is frozen as it is now (its status included) so
        # that it comes back exactly as it left.
        record = self._record(key)
        if key not in self._overrides:
            self._overrides[key] = (record, dumps_row(record))
        where = bisect_left(self._order, key)
        self._order.pop(where)
        self._changed(removed=key)
        self._hidden.add(key)
        task_id = record.get("TaskId")
        if isinstance(task_id, str):
            self._hidden_ids.setdefault(task_id, []).append(key)
            if self._ids.get(task_id) == key:
                self._forget_id(task_id, key)
        return dict(record)

    def restore_tasks(self, task_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Put removed tasks back where they were (their creation place), with their TaskId
        and fields; ``None`` restores every removed task. Returns them. Raises ``KeyError``
        (changing nothing) for a TaskId that is not removed."""
        with self._lock:
            self._run_flows(0)
            if task_ids is None:
                keys = sorted(self._hidden)
            else:
                keys = []
                for task_id in task_ids:
                    held = [k for k in self._hidden_ids.get(task_id, []) if k not in keys]
                    if not held:
                        raise KeyError(task_id)
                    keys.append(held[-1])
            return [self._unhide(key) for key in keys]

    def restore_task(self, task_id: str) -> dict[str, Any]:
        """:meth:`restore_tasks` for one TaskId."""
        return self.restore_tasks([task_id])[0]

    def _unhide(self, key: int) -> dict[str, Any]:
        # Caller holds the lock.
        self._hidden.discard(key)
        record = self._overrides[key][0]
        task_id = record.get("TaskId")
        if isinstance(task_id, str):
            held = self._hidden_ids.get(task_id, [])
            if key in held:
                held.remove(key)
            if not held:
                self._hidden_ids.pop(task_id, None)
            if key >= self._generated or task_id != self._gen.task_id(key):
                current = self._ids.get(task_id)
                if current is None or current < key or current in self._hidden:
                    self._ids[task_id] = key
        self._order.insert(bisect_left(self._order, key), key)
        self._changed(added=key)
        return dict(record)

    def removed_task_ids(self) -> list[str]:
        """TaskIds of the removed (restorable) tasks, oldest-created first."""
        with self._lock:
            self._run_flows(0)
            out: list[str] = []
            for key in sorted(self._hidden):
                task_id = self._overrides[key][0].get("TaskId")
                if isinstance(task_id, str):
                    out.append(task_id)
            return out

    @property
    def removed_count(self) -> int:
        """Removed (restorable) tasks, with or without a usable TaskId."""
        with self._lock:
            self._run_flows(0)
            return len(self._hidden)

    # ------------------------------------------------------------ a moving list

    def grow(
        self,
        per_second: float | None = None,
        *,
        per_request: int | None = None,
        start_ahead: float = 60.0,
        duration: float = 3600.0,
        limit: int | None = None,
    ) -> None:
        """Create new scheduled tasks at a steady rate while the emulator serves: a busy
        account. ``per_second`` counts wall-clock time from this call (the tasks due are
        created before anything reads the list, so a scan sees them arrive as it goes);
        ``per_request`` creates that many before each API page request is read. Each new
        task is the newest of the list, 未开始, with StartTime ``start_ahead`` seconds after
        the store clock (plus the wall seconds since this call) and lasting ``duration``.
        ``limit`` caps how many this flow creates. Flows add up; :meth:`stop_flows` ends
        them."""
        self._add_flow(_Flow("grow", per_second, per_request, start_ahead, duration, limit))

    def shrink(
        self,
        per_second: float | None = None,
        *,
        per_request: int | None = None,
        limit: int | None = None,
    ) -> None:
        """Remove the oldest-created tasks at a steady rate (a retention purge running while
        a scan reads): ``per_second`` of wall clock, or ``per_request`` before each API page
        request. Removed tasks can be put back with :meth:`restore_tasks`."""
        self._add_flow(_Flow("shrink", per_second, per_request, 0.0, 0.0, limit))

    def _add_flow(self, flow: _Flow) -> None:
        if flow.per_second is None and flow.per_request is None:
            raise ValueError("give per_second or per_request")
        if (flow.per_second is not None and flow.per_second <= 0) or (
            flow.per_request is not None and flow.per_request <= 0
        ):
            raise ValueError("per_second and per_request must be positive")
        with self._lock:
            self._run_flows(0)
            self._flows.append(flow)

    def stop_flows(self) -> list[dict[str, Any]]:
        """End every :meth:`grow` / :meth:`shrink` flow (catching up first); returns what
        each did, as :meth:`flows` does."""
        with self._lock:
            self._run_flows(0)
            described = self._describe_flows()
            self._flows.clear()
            return described

    def flows(self) -> list[dict[str, Any]]:
        """The running flows: kind, rates and how many tasks each has created or removed."""
        with self._lock:
            self._run_flows(0)
            return self._describe_flows()

    def _describe_flows(self) -> list[dict[str, Any]]:
        return [
            {
                "kind": flow.kind,
                "per_second": flow.per_second,
                "per_request": flow.per_request,
                "start_ahead": flow.start_ahead,
                "duration": flow.duration,
                "limit": flow.limit,
                "done": flow.done,
            }
            for flow in self._flows
        ]

    def on_api_request(self) -> None:
        """Called by the API service before each accepted page request is read: runs the
        per-request flows (and catches the wall-clock ones up)."""
        with self._lock:
            self._run_flows(1)

    def _run_flows(self, requests: int) -> None:
        # Caller holds the lock.
        if not self._flows:
            return
        now = time.monotonic()
        for flow in self._flows:
            due = flow.due(now, requests)
            for _ in range(due):
                if flow.kind == "grow":
                    at = self._clock + flow.start_ahead + flow.elapsed(now)
                    start = datetime.fromtimestamp(at, timezone.utc)
                    end = datetime.fromtimestamp(at + flow.duration, timezone.utc)
                    values = self._complete({"StartTime": start, "EndTime": end})
                    fragment = dumps_row(values)
                    self._insert(json.loads(fragment), fragment)
                elif self._order:
                    self._hide(self._order[0])
                flow.done += 1

    def _forget_id(self, task_id: str, key: int) -> None:
        # Another task may share the id (duplicates are allowed for bad-data tests).
        del self._ids[task_id]
        holders = [
            other
            for other, (record, _) in self._overrides.items()
            if other != key and other not in self._hidden and record.get("TaskId") == task_id
        ]
        if holders:
            self._ids[task_id] = max(holders)

    def advance(self, now: datetime | float | None = None) -> None:
        """Move the store's clock to ``now`` (default: the wall clock; it never goes back)
        and move tasks along their life cycle from their times: 未开始 → 生效中 → 已结束.
        停用 and unknown statuses stay; a task whose times do not parse stays as it is."""
        target = _to_epoch(now)
        with self._lock:
            self._run_flows(0)
            if target > self._clock:
                self._clock = target
                self._cache.clear()
                self._changed()
            clock = self._clock
            for key, (record, _) in list(self._overrides.items()):
                if key in self._hidden:
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
                    self._replace(key, {**record, "Status": new})
                    self._changed()


class _Flow:
    """A steady creation (``grow``) or removal (``shrink``) of tasks."""

    def __init__(
        self,
        kind: str,
        per_second: float | None,
        per_request: int | None,
        start_ahead: float,
        duration: float,
        limit: int | None,
    ) -> None:
        self.kind = kind
        self.per_second = None if per_second is None else float(per_second)
        self.per_request = None if per_request is None else int(per_request)
        self.start_ahead = float(start_ahead)
        self.duration = float(duration)
        self.limit = limit
        self.started = time.monotonic()
        self.done = 0
        self._by_requests = 0

    def elapsed(self, now: float) -> float:
        return max(0.0, now - self.started)

    def due(self, now: float, requests: int) -> int:
        """How many tasks to create or remove now to be on schedule."""
        target = 0
        if self.per_request is not None:
            self._by_requests += requests * self.per_request
            target += self._by_requests
        if self.per_second is not None:
            target += int(self.elapsed(now) * self.per_second)
        if self.limit is not None:
            target = min(target, self.limit)
        return max(0, target - self.done)


def _is_local(record: Mapping[str, Any]) -> bool:
    start = record.get("StartTime")
    return not (isinstance(start, str) and start.endswith("Z"))


def _format_value(value: Any, local: bool) -> Any:
    if isinstance(value, datetime):
        return format_rfc3339(value, local)
    return value
