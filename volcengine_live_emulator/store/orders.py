"""The orders the list is served in, and which task key stands at a served position.

The list is kept in creation order (oldest first); ``newest_first`` and ``oldest_first`` read
that array directly, the StartTime and ``random`` orders read a sorted view of it that is
kept across single additions and removals (placed by bisection) so a growing list is not
re-sorted on every new task.
"""

from __future__ import annotations

import random
from array import array
from bisect import bisect_left
from collections.abc import Callable
from typing import Any, Final

from ..data import parse_rfc3339
from .records import Records

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


class ListOrder:
    """The served order of :class:`~.records.Records` and the version bump of every change.

    Every change that can alter a page goes through :meth:`changed`, which also keeps the
    sorted view current."""

    def __init__(self, records: Records, seed: int) -> None:
        self._records = records
        self.mode = DEFAULT_LIST_ORDER
        self._salt = seed
        self._view: array[int] | None = None
        self._view_version = -1
        self._starts: array[int] | None = None
        self._unstable_rng = random.Random(f"unstable-{seed}")

    def set(self, order: str, seed: int | None) -> None:
        """Serve in ``order`` from now on; ``seed`` re-seeds ``random`` and ``unstable``."""
        if order not in LIST_ORDERS:
            raise ValueError(f"unknown list order {order!r}; one of {', '.join(LIST_ORDERS)}")
        self.mode = order
        if seed is not None:
            self._salt = seed
            self._unstable_rng.seed(f"unstable-{seed}")
        self._view = None
        self.changed()

    def reshuffle(self, seed: int | None) -> None:
        """A new ``random`` permutation, from ``seed`` or the next one."""
        self._salt = self._salt + 1 if seed is None else seed
        self._view = None
        self.changed()

    def changed(
        self, *, added: int | None = None, removed: int | None = None, moved: bool = False
    ) -> None:
        """Bump the version after a change. A sorted view stays valid across one added or
        removed key; a change of StartTime (``moved``) re-sorts the StartTime orders."""
        records = self._records
        current = self._view is not None and self._view_version == records.version
        records.version += 1
        if not current or self._view is None:
            return
        if moved and self.mode.startswith("start_time"):
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
        self._view_version = records.version

    def keys(self, first: int, last: int) -> list[int] | array[int]:
        """Keys at served positions ``first .. last - 1``."""
        order = self._records.order
        total = len(order)
        mode = self.mode
        if mode == "newest_first":
            keys = order[total - last : total - first]
            keys.reverse()
            return keys
        if mode == "oldest_first":
            return order[first:last]
        if mode == "unstable":
            # Positions first..last of a fresh permutation: a uniform sample of that size.
            return [order[i] for i in self._unstable_rng.sample(range(total), last - first)]
        return self.sorted_view()[first:last]

    def key_at(self, position: int) -> int:
        """The key at ``position`` (in range); ``unstable`` counts newest-created first."""
        order = self._records.order
        if self.mode in ("newest_first", "unstable"):
            return order[len(order) - 1 - position]
        return self.keys(position, position + 1)[0]

    def snapshot(self) -> tuple[str, array[int], array[int] | None]:
        """``(mode, keys in creation order, keys in a sorted order or None)``, copied."""
        mode = self.mode
        view = (
            array("q", self.sorted_view())
            if mode not in ("newest_first", "oldest_first", "unstable")
            else None
        )
        return mode, array("q", self._records.order), view

    def sorted_view(self) -> array[int]:
        """The whole list in a sorted order, rebuilt after a change."""
        version = self._records.version
        if self._view is not None and self._view_version == version:
            return self._view
        view = array("q", sorted(self._records.order, key=self._rank()))
        self._view, self._view_version = view, version
        return view

    def _rank(self) -> Callable[[int], Any]:
        # The sort key of a task's key in the current sorted order.
        if self.mode == "random":
            salt = (self._salt * _MIX + 1) & _MASK64

            def by_hash(key: int) -> int:
                mixed = ((key ^ salt) * _MIX) & _MASK64
                return mixed ^ (mixed >> 29)

            return by_hash
        starts = self._generated_starts()
        overrides = self._records.overrides
        generated = self._records.generated
        descending = self.mode == "start_time_desc"
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
        # StartTime of every generated task (they never change).
        if self._starts is None:
            times = self._records.gen.times
            self._starts = array("q", (times(i)[0] for i in range(self._records.generated)))
        return self._starts
