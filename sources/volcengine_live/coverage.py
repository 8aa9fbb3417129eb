"""Which part of the task list one pass has read, when the list grows while it is read.

A busy account creates tasks while a pass reads its list. The list appears newest-created
first (the API page's example; not a documented promise), so a new task enters at the head
and pushes every task one place down: page ``p`` (size ``S``), served when ``TotalCount``
was ``T_p``, holds the tasks that stood at indices ``[(p-1)S - d_p, (p-1)S - d_p + rows)``
of the list as the pass's first page saw it (``T_0`` tasks), with the shift
``d_p = T_p - T_0``. Those are the page's *window*, in *original* indices; new tasks get
negative ones. The pass has read every task that existed at its first page when the
windows cover ``[0, T_0)``: pages read while the list grew overlap (a task read twice, once
counted), pages read out of order leave gaps, and only the pages covering a gap are read
again, where the gap stands now (:meth:`Coverage.refill_pages`). The head, the tasks
created during the pass (``[-shift, 0)``), is read again too: one page, which also shows
whether a task the pass has not read moved up into the part it has (then the head holds a
task read before, a duplicate the caller sees).

That model is checked on every page, never trusted; any of these is a *contradiction*,
after which the pass counts as incomplete and the caller reads the list again as it would
for any changing list:

* ``TotalCount`` below the first page's, or below that of a page answered before this one
  was asked for (a task left the list);
* a page with another number of rows than its ``TotalCount`` puts on it;
* where two windows overlap, the sampled TaskIds differ at one original index, or one
  TaskId stands at two indices (the list is not newest first, was reordered, or lost a task
  while gaining one). A page keeps, hashed, the TaskIds of its first and last ``samples``
  rows and of the rows at original indices that are multiples of ``2 * samples``: any two
  overlapping windows share a sampled index (an overlap shorter than ``2 * samples`` lies
  in one page's tail and the other's head, a longer one holds a multiple).

Two things stay with the caller, who sees every row: a TaskId read twice at different
indices beyond the samples' reach, which the caller finds by counting distinct TaskIds
against rows (``ScanReport.stable``); and a list reordered while its ``TotalCount`` holds
still, which shows the same way.

Memory: a few integers and about ``2 * samples + page_size / (2 * samples)`` hashes per
page (48 for pages of 500), not per task.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

DEFAULT_SAMPLES = 16
"""TaskIds kept from each end of a page, and half the stride of the ones kept between
(two new tasks a second while 45 pages are read each second make overlaps of 0 to 3)."""

Range = tuple[int, int]
"""``[start, stop)``."""


@dataclass
class PageWindow:
    """One page as the coverage saw it."""

    page_num: int
    total_count: int
    start: int
    """Original index of the page's first row."""
    rows: int
    head: array[int]
    """Hashes of the first rows' TaskIds (at ``start``, ``start + 1``, ...)."""
    tail: array[int]
    """Hashes of the last rows' TaskIds (ending at ``stop - 1``)."""
    anchors: array[int]
    """Hashes of the TaskIds at the original indices ``first_anchor + k * stride``."""
    first_anchor: int
    stride: int
    sent_at: float | None = None
    received_at: float | None = None

    @property
    def stop(self) -> int:
        return self.start + self.rows

    def samples(self) -> dict[int, int]:
        """Original index -> TaskId hash, for the sampled rows."""
        found = {self.start + offset: value for offset, value in enumerate(self.head)}
        tail_start = self.stop - len(self.tail)
        found.update((tail_start + offset, value) for offset, value in enumerate(self.tail))
        found.update(
            (self.first_anchor + k * self.stride, value) for k, value in enumerate(self.anchors)
        )
        return found


@dataclass
class Coverage:
    """The original indices one pass has read, from its pages' ``TotalCount`` and rows.

    Add every page of the pass, the first one first (it fixes ``T_0``), with
    :meth:`add`; it answers which rows of the page are new to the pass. The pass is
    :attr:`complete` when ``[0, T_0)`` is covered and nothing contradicted the model.
    """

    first_total: int
    page_size: int
    samples: int = DEFAULT_SAMPLES
    contradiction: str | None = None
    """Why the model does not hold for this pass; None while it does."""
    pages: int = 0
    refills: int = 0
    """Pages read again to fill a gap (counted by :meth:`refill_pages`)."""
    max_total: int = 0
    _covered: list[Range] = field(default_factory=list)
    _windows: list[PageWindow] = field(default_factory=list)
    """Non-empty windows by start."""
    _starts: list[int] = field(default_factory=list)
    _served: list[tuple[float, int]] = field(default_factory=list)
    """(received_at, TotalCount), by received_at."""
    _served_max: list[int] = field(default_factory=list)
    """Running maximum of ``_served``'s TotalCount."""

    def __post_init__(self) -> None:
        if self.page_size < 1:
            raise ValueError("page_size must be positive")
        if self.first_total < 0:
            raise ValueError("first_total must not be negative")
        self.max_total = self.first_total

    @property
    def shift(self) -> int:
        """Tasks added since the first page, by the highest ``TotalCount`` seen."""
        return self.max_total - self.first_total

    @property
    def covered(self) -> list[Range]:
        """The original indices read, as disjoint sorted ranges (negative: new tasks)."""
        return list(self._covered)

    @property
    def complete(self) -> bool:
        """Every index of ``[-shift, T_0)`` read and the model never contradicted."""
        return self.contradiction is None and not self.gaps()

    def gaps(self) -> list[Range]:
        """Indices of ``[-shift, T_0)`` that no page has covered yet: the tasks that were
        in the list at the first page, and those created since then."""
        found: list[Range] = []
        position = -self.shift
        for start, stop in self._covered:
            if stop <= position:
                continue
            if start >= self.first_total:
                break
            if start > position:
                found.append((position, start))
            position = max(position, stop)
        if position < self.first_total:
            found.append((position, self.first_total))
        return found

    def add(
        self,
        page_num: int,
        total_count: int,
        ids: Sequence[Hashable],
        sent_at: float | None = None,
        received_at: float | None = None,
    ) -> list[Range]:
        """Record one page (``ids``: its rows' TaskIds, in order; ``sent_at``/``received_at``:
        one clock's reading before the request and after its answer). Returns the row ranges
        of the page (offsets into ``ids``) not read before in this pass: all of them once the
        model is contradicted, since then nothing can be told a duplicate by position."""
        self.pages += 1
        rows = len(ids)
        first_row = (page_num - 1) * self.page_size
        shift = total_count - self.first_total
        start = first_row - shift
        stride = 2 * max(1, self.samples)
        first_anchor = -(-start // stride) * stride
        window = PageWindow(
            page_num=page_num,
            total_count=total_count,
            start=start,
            rows=rows,
            head=array("q", (hash(i) for i in ids[: self.samples])),
            tail=array("q", (hash(i) for i in ids[max(self.samples, rows - self.samples) :])),
            anchors=array("q", (hash(i) for i in ids[first_anchor - start :: stride])),
            first_anchor=first_anchor,
            stride=stride,
            sent_at=sent_at,
            received_at=received_at,
        )
        if self.contradiction is None:
            self._check(window, first_row)
        if self.contradiction is not None:
            return [(0, rows)] if rows else []
        self.max_total = max(self.max_total, total_count)
        fresh = self._uncovered(window.start, window.stop)
        self._cover(window.start, window.stop)
        if rows:
            position = bisect_right(self._starts, window.start)
            self._starts.insert(position, window.start)
            self._windows.insert(position, window)
        return [(start - window.start, stop - window.start) for start, stop in fresh]

    def refill_pages(self, limit: int | None = None) -> list[int]:
        """Pages to read now to cover the gaps, where the gaps stand at the latest known
        shift; at most ``limit`` of them (counted in :attr:`refills`). The head (the tasks
        created during the pass) comes alone, once no other gap is left, so that it is read
        after the pages that tell how far the list grew. None when the model was
        contradicted: then re-reading parts cannot make the pass whole."""
        if self.contradiction is not None:
            return []
        gaps = self.gaps()
        if len(gaps) > 1 and gaps[0][1] <= 0:
            gaps = gaps[1:]
        wanted: list[int] = []
        for start, stop in gaps:
            first = (start + self.shift) // self.page_size + 1
            last = (stop - 1 + self.shift) // self.page_size + 1
            for page_num in range(first, last + 1):
                if not wanted or wanted[-1] < page_num:
                    wanted.append(page_num)
        if limit is not None:
            wanted = wanted[: max(0, limit)]
        self.refills += len(wanted)
        return wanted

    def _check(self, window: PageWindow, first_row: int) -> None:
        size = self.page_size
        expected_rows = min(size, max(0, window.total_count - first_row))
        if window.total_count < self.first_total:
            self._contradict(
                f"TotalCount fell from {self.first_total} to {window.total_count} "
                f"(page {window.page_num}): tasks left the list"
            )
        elif window.rows != expected_rows:
            self._contradict(
                f"page {window.page_num} has {window.rows} rows where TotalCount "
                f"{window.total_count} puts {expected_rows}"
            )
        elif window.sent_at is not None and self._total_before(window.sent_at) > (
            window.total_count
        ):
            self._contradict(
                f"TotalCount fell to {window.total_count} (page {window.page_num}) after a "
                f"page answered with {self._total_before(window.sent_at)}: tasks left the list"
            )
        if window.received_at is not None:
            self._record_served(window.received_at, window.total_count)
        if self.contradiction is not None or not window.rows:
            return
        reach = self.samples + 1
        low = bisect_left(self._starts, window.start - size - reach)
        high = bisect_right(self._starts, window.stop + reach)
        mine = window.samples()
        by_id = {value: index for index, value in mine.items()}
        for other in self._windows[low:high]:
            if other.stop + reach <= window.start or window.stop + reach <= other.start:
                continue
            problem = _compare(window, mine, by_id, other)
            if problem:
                self._contradict(problem)
                return

    def _contradict(self, reason: str) -> None:
        if self.contradiction is None:
            self.contradiction = reason

    def _total_before(self, moment: float) -> int:
        """The highest TotalCount of the pages answered before ``moment``."""
        position = bisect_left(self._served, (moment, -1))
        return self._served_max[position - 1] if position else self.first_total

    def _record_served(self, moment: float, total: int) -> None:
        position = bisect_right(self._served, (moment, total))
        self._served.insert(position, (moment, total))
        running = self._served_max[position - 1] if position else self.first_total
        self._served_max.insert(position, 0)
        for index in range(position, len(self._served)):
            running = max(running, self._served[index][1])
            if self._served_max[index] == running and index > position:
                break  # the maxima after this point are unchanged
            self._served_max[index] = running

    def _uncovered(self, start: int, stop: int) -> list[Range]:
        found: list[Range] = []
        position = start
        index = bisect_right(self._covered, (start, stop)) - 1
        index = max(0, index)
        for low, high in self._covered[index:]:
            if low >= stop:
                break
            if high <= position:
                continue
            if low > position:
                found.append((position, low))
            position = max(position, high)
            if position >= stop:
                break
        if position < stop:
            found.append((position, stop))
        return found

    def _cover(self, start: int, stop: int) -> None:
        if start >= stop:
            return
        index = bisect_left(self._covered, (start, start))
        if index and self._covered[index - 1][1] >= start:
            index -= 1
        end = index
        while end < len(self._covered) and self._covered[end][0] <= stop:
            start = min(start, self._covered[end][0])
            stop = max(stop, self._covered[end][1])
            end += 1
        self._covered[index:end] = [(start, stop)]


def _compare(
    window: PageWindow, mine: dict[int, int], by_id: dict[int, int], other: PageWindow
) -> str | None:
    """Why ``window`` and ``other`` (a page read earlier) disagree, or None."""
    theirs = other.samples()
    compared = 0
    for index, value in theirs.items():
        own = mine.get(index)
        if own is not None:
            compared += 1
            if own != value:
                return (
                    f"pages {other.page_num} and {window.page_num} hold different tasks at "
                    "one place of the list: it is not newest first, or it was reordered"
                )
        elsewhere = by_id.get(value)
        if elsewhere is not None and elsewhere != index:
            return (
                f"a task of page {other.page_num} stands {index - elsewhere:+d} places away "
                f"in page {window.page_num}: the list is not newest first, was reordered, or "
                "lost tasks while gaining others"
            )
    overlap = min(window.stop, other.stop) - max(window.start, other.start)
    if overlap > 0 and not compared:
        return (
            f"pages {other.page_num} and {window.page_num} overlap by {overlap} rows, more "
            "than their sampled TaskIds can compare"
        )
    return None
