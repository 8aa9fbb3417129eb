"""Pages of the list as JSON bytes, and the two caches that make a million-task list cheap.

Generated rows are serialised in chunks of 512 and kept in a bounded LRU (cleared when the
clock moves, since statuses follow it); pages of the :meth:`Pages.prerender` size are kept
whole, keyed on the list's version, so serving one of them is a dictionary look-up. This is
the request path: keep it free of per-row work beyond the look-ups.
"""

from __future__ import annotations

from array import array
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from ..data import TaskGenerator
from .orders import ListOrder
from .records import Records

_CHUNK_SHIFT: Final = 9
_CHUNK: Final = 1 << _CHUNK_SHIFT
_CHUNK_MASK: Final = _CHUNK - 1
DEFAULT_CACHE_ROWS: Final = 1 << 18
"""Serialised generated rows kept (about 250 bytes each): 262,144 rows is ~75 MB."""


class Pages:
    """Renders pages of :class:`~.records.Records` in the :class:`~.orders.ListOrder`."""

    def __init__(self, records: Records, orders: ListOrder, cache_rows: int) -> None:
        self._records = records
        self._orders = orders
        self._cache: OrderedDict[int, list[bytes]] = OrderedDict()
        self._cache_chunks = max(1, cache_rows // _CHUNK)
        self.prerender_size: int | None = None
        self._rendered: dict[int, tuple[bytes, int, int]] = {}
        self._rendered_version = -1

    def page(self, page_num: int, page_size: int) -> tuple[list[bytes], int]:
        """The rows of one page as JSON fragments, and the total count."""
        total = len(self._records.order)
        first = (page_num - 1) * page_size
        if first >= total:
            return [], total
        last = min(first + page_size, total)
        keys = self._orders.keys(first, last)
        overrides = self._records.overrides
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

    def blob(self, page_num: int, page_size: int) -> tuple[bytes, int, int]:
        """``(rows joined by commas, row count, TotalCount)``, from the rendered pages when
        ``page_size`` is the prerender size (rendered again after any change)."""
        version = self._records.version
        cacheable = page_size == self.prerender_size and self._orders.mode != "unstable"
        if cacheable:
            if self._rendered_version != version:
                self._rendered.clear()
                self._rendered_version = version
            hit = self._rendered.get(page_num)
            if hit is not None:
                return hit
        rows, total = self.page(page_num, page_size)
        blob = (b",".join(rows), len(rows), total)
        if cacheable and rows:
            self._rendered[page_num] = blob
        return blob

    def keep_rendered(self, page_size: int | None) -> None:
        """Keep pages of ``page_size`` rendered from now on (None: none); drops those held."""
        self.prerender_size = page_size
        self._rendered.clear()
        self._rendered_version = self._records.version

    def drop_rows(self) -> None:
        """Forget the serialised generated rows (the clock moved, or the rendered pages hold
        the same bytes)."""
        self._cache.clear()

    def _chunk(self, index: int) -> list[bytes]:
        # LRU of generated rows.
        cache = self._cache
        chunk = cache.get(index)
        if chunk is not None:
            cache.move_to_end(index)
            return chunk
        records = self._records
        start = index << _CHUNK_SHIFT
        chunk = records.gen.fragments(start, min(start + _CHUNK, records.generated), records.clock)
        cache[index] = chunk
        if len(cache) > self._cache_chunks:
            cache.popitem(last=False)
        return chunk

    def snapshot(self) -> Snapshot:
        """The list as it is now, to read without the lock."""
        records = self._records
        mode, order, view = self._orders.snapshot()
        return Snapshot(records.gen, mode, order, view, dict(records.overrides), records.clock)


@dataclass(frozen=True)
class Snapshot:
    """Every task's JSON bytes in the served order as of one instant (``unstable``: newest
    created first); later changes do not show."""

    gen: TaskGenerator
    mode: str
    order: array[int]
    view: array[int] | None
    overrides: Mapping[int, tuple[dict[str, Any], bytes]]
    clock: float

    def fragments(self) -> Iterator[bytes]:
        order, overrides, clock = self.order, self.overrides, self.clock
        if self.view is not None:
            gen = self.gen
            for key in self.view:
                override = overrides.get(key)
                yield override[1] if override is not None else gen.fragment(key, clock)
            return
        if self.mode == "oldest_first":
            for start in range(0, len(order), _CHUNK):
                keys = order[start : start + _CHUNK]
                rows = self._rows_of(keys)
                for key in keys:
                    yield rows[key]
            return
        position = len(order)
        while position > 0:
            start = max(0, position - _CHUNK)
            keys = order[start:position]
            position = start
            rows = self._rows_of(keys)
            for key in reversed(keys):
                yield rows[key]

    def _rows_of(self, keys: array[int]) -> dict[int, bytes]:
        # Fragments of a run of keys in creation order, the generated ones in one call.
        overrides = self.overrides
        generated = [key for key in keys if key not in overrides]
        rows: dict[int, bytes] = {}
        if generated:
            low = generated[0]
            fragments = self.gen.fragments(low, generated[-1] + 1, self.clock)
            rows = {key: fragments[key - low] for key in generated}
        for key in keys:
            override = overrides.get(key)
            if override is not None:
                rows[key] = override[1]
        return rows
