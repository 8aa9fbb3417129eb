"""The emulator's task list: seeded generated tasks plus whatever a test changed.

The list is kept in creation order (oldest first) as an array of integer keys; the API reads it
newest first by default (see :data:`LIST_ORDERS` for the others). Keys ``0 .. generated - 1``
are generated tasks (produced on demand by
:class:`~volcengine_live_emulator.data.TaskGenerator`), larger keys are tasks created through
:meth:`TaskStore.create_task`. Only changed or created tasks are held as records, so a store
of a million tasks costs a few megabytes plus a bounded cache of serialised rows.

:class:`TaskStore` is a facade over one module per job: :mod:`.records` (what is held),
:mod:`.orders` (list orders), :mod:`.pages` (pages and their caches), :mod:`.changes`
(create, update, delete), :mod:`.removal` (restorable removal), :mod:`.flows` (a growing or
shrinking list) and :mod:`.clock` (the store's clock). Those parts never lock; the facade
holds its one lock around each call, so every public method is thread-safe (the HTTP server
reads pages while a test mutates), and catches the flows up first.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime
from typing import Any

from ..data import TaskGenerator
from .changes import REMOVE, Changes, complete, new_record
from .clock import Clock, to_epoch
from .flows import Flow, Flows
from .orders import DEFAULT_LIST_ORDER, LIST_ORDERS, ListOrder
from .pages import DEFAULT_CACHE_ROWS, Pages
from .records import TASK_FIELDS, Records
from .removal import Removal

__all__ = [
    "DEFAULT_CACHE_ROWS",
    "DEFAULT_LIST_ORDER",
    "LIST_ORDERS",
    "REMOVE",
    "TASK_FIELDS",
    "TaskStore",
    "to_epoch",
]


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
        self._lock = threading.RLock()
        self._records = records = Records(generator, clock)
        self._orders = orders = ListOrder(records, generator.seed)
        self._pages = pages = Pages(records, orders, cache_rows)
        self._changes = changes = Changes(records, orders, generator.seed)
        self._removal = removal = Removal(records, orders)
        self._flows = Flows(records, changes, removal)
        self._clock = Clock(records, orders, pages)

    # ----------------------------------------------------------------- reading

    @property
    def count(self) -> int:
        """Tasks in the list now (the API's TotalCount)."""
        with self._lock:
            self._flows.run(0)
            return len(self._records.order)

    def __len__(self) -> int:
        return self.count

    @property
    def clock(self) -> float:
        """Epoch seconds the statuses are taken at."""
        return self._records.clock

    @property
    def generator(self) -> TaskGenerator:
        return self._records.gen

    @property
    def version(self) -> int:
        """A counter bumped by every change that can alter a page (tasks, clock, order)."""
        with self._lock:
            self._flows.run(0)
            return self._records.version

    def page(self, page_num: int, page_size: int) -> tuple[list[bytes], int]:
        """Rows ``(page_num - 1) * page_size ..`` of the list in its :attr:`list_order` as
        JSON fragments, and the total count at the same instant. A page past the end is
        empty."""
        with self._lock:
            self._flows.run(0)
            return self._pages.page(page_num, page_size)

    def page_blob(self, page_num: int, page_size: int) -> tuple[bytes, int, int]:
        """``(rows joined by commas, row count, TotalCount)`` of one page: the bytes between
        ``"List":[`` and ``]``. Pages of the :meth:`prerender` size come from a cache of
        rendered pages that any change to the list empties (they are rendered again on
        demand), so serving them is a copy."""
        with self._lock:
            self._flows.run(0)
            return self._pages.blob(page_num, page_size)

    def prerender(self, page_size: int | None, *, eager: bool = True) -> int:
        """Keep every page of ``page_size`` rows rendered (None: stop, free the pages).
        ``eager`` renders them all now (a million tasks: about 2,000 pages and 290 MB);
        otherwise each on first request. Returns the pages rendered now."""
        with self._lock:
            self._pages.keep_rendered(page_size)
        if page_size is None or not eager:
            return 0
        pages = 0
        # Page by page, each under the lock on its own, so requests are served meanwhile.
        while self.page_blob(pages + 1, page_size)[1]:
            pages += 1
        with self._lock:
            self._pages.drop_rows()  # the rendered pages hold the same bytes
        return pages

    @property
    def prerender_size(self) -> int | None:
        """The page size whose pages are kept rendered, or None."""
        return self._pages.prerender_size

    def iter_fragments(self) -> Iterator[bytes]:
        """Every task as JSON bytes in the served order (newest first by default; the
        ``unstable`` order gives newest first), as of the call: a snapshot, later changes do
        not show, and the server is not blocked while the caller iterates."""
        with self._lock:
            self._flows.run(0)
            snapshot = self._pages.snapshot()
        yield from snapshot.fragments()

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
            self._flows.run(0)
            key = self._records.resolve(task_id)
            return None if key is None else self._records.record(key)

    # ----------------------------------------------------------------- orders

    @property
    def list_order(self) -> str:
        """One of :data:`LIST_ORDERS`; settable while serving (a reorder mid-scan)."""
        return self._orders.mode

    @list_order.setter
    def list_order(self, value: str) -> None:
        self.set_list_order(value)

    def set_list_order(self, order: str, *, seed: int | None = None) -> None:
        """Serve the list in ``order`` from the next request on; ``seed`` re-seeds the
        ``random`` and ``unstable`` orders. Raises ``ValueError`` for an unknown order."""
        with self._lock:
            self._orders.set(order, seed)

    def reshuffle(self, seed: int | None = None) -> None:
        """A new permutation for the ``random`` order (from ``seed``, or the next one):
        every task moves, as if the service re-sorted the list between two requests."""
        with self._lock:
            self._orders.reshuffle(seed)

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
            # Only the draw needs the lock; formatting and serialising happen outside it.
            with self._lock:
                draw = self._changes.draw()
            values = complete(values, draw)
        stored, fragment = new_record(values)
        with self._lock:
            self._flows.run(0)
            self._changes.insert(stored, fragment)
        return json.loads(fragment)  # type: ignore[no-any-return]

    def update_task(self, task_id: str, /, **fields: Any) -> dict[str, Any]:
        """Change fields of the task with this TaskId (in place: its position does not move)
        and return it. A value of :data:`REMOVE` drops the field, ``None`` makes it null.
        Raises ``KeyError`` for an unknown TaskId."""
        with self._lock:
            self._flows.run(0)
            return self._changes.update(task_id, fields)

    def set_status(self, task_id: str, status: str) -> dict[str, Any]:
        """Shorthand for ``update_task(task_id, Status=status)``."""
        return self.update_task(task_id, Status=status)

    def delete_task(self, task_id: str) -> dict[str, Any]:
        """Remove the task with this TaskId (later tasks move up a place) and return it.
        Raises ``KeyError`` for an unknown TaskId."""
        with self._lock:
            self._flows.run(0)
            return self._changes.delete(task_id)

    def delete_at(self, position: int) -> dict[str, Any]:
        """Remove the task at ``position`` of the served list (0 = first; newest first by
        default, newest-created first in the ``unstable`` order); works for records without a
        usable TaskId. Raises ``IndexError``."""
        with self._lock:
            self._flows.run(0)
            return self._changes.delete_at(position)

    # ---------------------------------------------------------- removal (restorable)

    def remove_tasks(self, task_ids: Iterable[str]) -> list[dict[str, Any]]:
        """Take these tasks out of the list (as a deletion in the console or a purge by the
        platform would) and return them. Unlike :meth:`delete_task` they are kept: the list
        shrinks (TotalCount drops, later tasks move up) and :meth:`restore_tasks` puts them
        back with the same TaskId, fields and place. Raises ``KeyError`` (changing nothing)
        if one is not in the list."""
        with self._lock:
            self._flows.run(0)
            return self._removal.remove(task_ids)

    def remove_task(self, task_id: str) -> dict[str, Any]:
        """:meth:`remove_tasks` for one TaskId."""
        return self.remove_tasks([task_id])[0]

    def remove_oldest(self, count: int = 1) -> list[dict[str, Any]]:
        """Remove the ``count`` oldest-created tasks in the list (a retention purge)."""
        with self._lock:
            self._flows.run(0)
            return self._removal.remove_oldest(count)

    def restore_tasks(self, task_ids: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Put removed tasks back where they were (their creation place), with their TaskId
        and fields; ``None`` restores every removed task. Returns them. Raises ``KeyError``
        (changing nothing) for a TaskId that is not removed."""
        with self._lock:
            self._flows.run(0)
            return self._removal.restore(task_ids)

    def restore_task(self, task_id: str) -> dict[str, Any]:
        """:meth:`restore_tasks` for one TaskId."""
        return self.restore_tasks([task_id])[0]

    def removed_task_ids(self) -> list[str]:
        """TaskIds of the removed (restorable) tasks, oldest-created first."""
        with self._lock:
            self._flows.run(0)
            return self._removal.removed_task_ids()

    @property
    def removed_count(self) -> int:
        """Removed (restorable) tasks, with or without a usable TaskId."""
        with self._lock:
            self._flows.run(0)
            return len(self._records.hidden)

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
        self._add_flow(Flow("grow", per_second, per_request, start_ahead, duration, limit))

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
        self._add_flow(Flow("shrink", per_second, per_request, 0.0, 0.0, limit))

    def _add_flow(self, flow: Flow) -> None:
        with self._lock:
            self._flows.run(0)
            self._flows.add(flow)

    def stop_flows(self) -> list[dict[str, Any]]:
        """End every :meth:`grow` / :meth:`shrink` flow (catching up first); returns what
        each did, as :meth:`flows` does."""
        with self._lock:
            self._flows.run(0)
            return self._flows.stop()

    def flows(self) -> list[dict[str, Any]]:
        """The running flows: kind, rates and how many tasks each has created or removed."""
        with self._lock:
            self._flows.run(0)
            return self._flows.describe()

    def on_api_request(self) -> None:
        """Called by the API service before each accepted page request is read: runs the
        per-request flows (and catches the wall-clock ones up)."""
        with self._lock:
            self._flows.run(1)

    # ------------------------------------------------------------------ the clock

    def advance(self, now: datetime | float | None = None) -> None:
        """Move the store's clock to ``now`` (default: the wall clock; it never goes back)
        and move tasks along their life cycle from their times: 未开始 → 生效中 → 已结束.
        停用 and unknown statuses stay; a task whose times do not parse stays as it is."""
        target = to_epoch(now)
        with self._lock:
            self._flows.run(0)
            self._clock.advance(target)
