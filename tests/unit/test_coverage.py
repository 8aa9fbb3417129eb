"""The shift-aware coverage of one pass (``coverage.py``), against a simulated list.

A simulated list changes between page reads (tasks added at the head, appended at the
tail, removed, reordered) while pages are fetched in generated concurrent orders. Two
properties hold for every sequence:

* **sound**: when the coverage calls the pass complete and the rows it passed on are
  distinct TaskIds (what the scan checks on top), every task that was in the list when the
  pass began, and is still there at its end, was passed on exactly once;
* **useful**: when the list only grows at its head, the pass completes after re-reading
  only the pages that cover a gap, and passes every task on once.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from volcengine_live.coverage import Coverage

S = 10
"""Page size of the simulation: small, so that a few new tasks cross page boundaries."""

Mutate = Callable[["SimList", random.Random], None]
"""A change to the list, made (or not, at random) before each page is served."""


@dataclass
class SimList:
    """The task list as the API would serve it: index 0 first."""

    items: list[str]
    created: int = 0

    @classmethod
    def of(cls, size: int) -> SimList:
        return cls([f"old{i}" for i in range(size)])

    def new_id(self) -> str:
        self.created += 1
        return f"new{self.created}"

    def prepend(self, count: int = 1) -> None:
        for _ in range(count):
            self.items.insert(0, self.new_id())

    def append(self, count: int = 1) -> None:
        for _ in range(count):
            self.items.append(self.new_id())

    def insert_random(self, rng: random.Random) -> None:
        self.items.insert(rng.randrange(len(self.items) + 1), self.new_id())

    def remove_at(self, index: int) -> None:
        del self.items[index]

    def swap(self, rng: random.Random) -> None:
        if len(self.items) > 1:
            a, b = rng.sample(range(len(self.items)), 2)
            self.items[a], self.items[b] = self.items[b], self.items[a]

    def page(self, page_num: int) -> tuple[list[str], int]:
        start = (page_num - 1) * S
        return list(self.items[start : start + S]), len(self.items)


@dataclass
class Outcome:
    coverage: Coverage
    passed: list[str] = field(default_factory=list)
    requests: int = 0
    planned: int = 0
    original: list[str] = field(default_factory=list)
    final: list[str] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        """What the scan accepts: coverage complete and every passed-on row distinct."""
        return self.coverage.complete and len(set(self.passed)) == len(self.passed)


def run_pass(
    sim: SimList,
    rng: random.Random,
    mutate: Mutate,
    concurrency: int = 4,
    refill_rounds: int = 6,
) -> Outcome:
    """One pass: page 1, then the planned pages fetched ``concurrency`` at a time, served
    and answered in a random order within that window, ``mutate(sim, rng)`` called at random
    moments between serves; then rounds of refills."""
    clock = 0.0
    first, total = sim.page(1)
    outcome = Outcome(coverage=Coverage(total, S, samples=4), original=list(sim.items))
    coverage = outcome.coverage
    outcome.requests = 1
    clock += 1
    ranges = coverage.add(1, total, first, sent_at=0.0, received_at=clock)
    outcome.passed = [task for a, b in ranges for task in first[a:b]]
    last = max(1, -(-total // S)) + (1 if total % S == 0 and total else 0)
    outcome.planned = last if len(first) >= S else 1
    todo = list(range(2, outcome.planned + 1))
    rounds = 0
    while todo:
        clock = _fetch(sim, rng, mutate, coverage, outcome, todo, concurrency, clock)
        if rounds >= refill_rounds:
            break
        rounds += 1
        todo = coverage.refill_pages(limit=max(4, outcome.planned // 4))
    outcome.final = list(sim.items)
    return outcome


def _fetch(
    sim: SimList,
    rng: random.Random,
    mutate: Mutate,
    coverage: Coverage,
    outcome: Outcome,
    pages: list[int],
    concurrency: int,
    clock: float,
) -> float:
    """Requests sent in order one tick apart; each served within ``concurrency`` ticks of
    being sent and answered within a tick of being served; changes land between serves."""
    requests = []
    for offset, page_num in enumerate(pages):
        sent = clock + offset
        served = sent + rng.uniform(0, concurrency)
        requests.append((served, sent, page_num))
    answered: list[tuple[float, float, int, list[str], int]] = []
    for served, sent, page_num in sorted(requests):
        mutate(sim, rng)
        rows, total = sim.page(page_num)
        answered.append((served + rng.uniform(0, 1), sent, page_num, rows, total))
        outcome.requests += 1
    for received, sent, page_num, rows, total in sorted(answered):
        ranges = coverage.add(page_num, total, rows, sent_at=sent, received_at=received)
        outcome.passed.extend(task for a, b in ranges for task in rows[a:b])
    return max(received for received, *_ in answered) + 1


def read(
    coverage: Coverage,
    sim: SimList,
    page_num: int,
    sent_at: float | None = None,
    received_at: float | None = None,
) -> list[str]:
    """Serve one page of ``sim`` now and add it: the rows new to the pass."""
    rows, total = sim.page(page_num)
    fresh = coverage.add(page_num, total, rows, sent_at=sent_at, received_at=received_at)
    return [task for a, b in fresh for task in rows[a:b]]


def _grow(rate: float) -> Mutate:
    def mutate(sim: SimList, rng: random.Random) -> None:
        while rng.random() < rate:
            sim.prepend()

    return mutate


def _still(sim: SimList, rng: random.Random) -> None:
    pass


def assert_sound(outcome: Outcome) -> None:
    if not outcome.accepted:
        return
    survivors = set(outcome.original) & set(outcome.final)
    passed = set(outcome.passed)
    missing = survivors - passed
    assert not missing, f"accepted a pass that missed {sorted(missing)[:5]}"
    assert len(passed) == len(outcome.passed)


# --- the coverage arithmetic ---------------------------------------------------------


def test_a_still_list_is_covered_by_its_pages_and_every_row_is_fresh() -> None:
    coverage = Coverage(first_total=25, page_size=S)
    for page_num, size in ((1, 10), (3, 5), (2, 10)):
        ids = [f"t{(page_num - 1) * S + i}" for i in range(size)]
        assert coverage.add(page_num, 25, ids) == [(0, size)]
    assert coverage.complete
    assert coverage.covered == [(0, 25)]
    assert coverage.refill_pages() == []


def test_a_page_read_after_new_tasks_is_shifted_and_its_overlap_is_not_fresh() -> None:
    sim = SimList.of(30)
    coverage = Coverage(first_total=30, page_size=S)
    rows, total = sim.page(1)
    coverage.add(1, total, rows)
    sim.prepend(3)
    rows, total = sim.page(2)  # holds old7..old16: old7..old9 were on page 1
    assert coverage.add(2, total, rows) == [(3, 10)]
    assert coverage.covered == [(0, 17)]
    rows, total = sim.page(3)
    assert coverage.add(3, total, rows) == [(0, 10)]
    # The tail moved onto page 4; the three new tasks are at the head, on page 1.
    assert coverage.gaps() == [(-3, 0), (27, 30)]
    assert coverage.refill_pages() == [4]  # the head comes last, alone
    rows, total = sim.page(4)
    assert rows == ["old27", "old28", "old29"]
    assert coverage.add(4, total, rows) == [(0, 3)]
    assert coverage.refill_pages() == [1]
    rows, total = sim.page(1)
    assert coverage.add(1, total, rows) == [(0, 3)]
    assert rows[:3] == ["new3", "new2", "new1"]
    assert coverage.complete
    assert coverage.covered == [(-3, 30)]


def test_a_gap_left_by_pages_served_out_of_order_is_refilled_where_it_stands_now() -> None:
    sim = SimList.of(30)
    coverage = Coverage(first_total=30, page_size=S)
    read(coverage, sim, 1)
    rows3, total3 = sim.page(3)
    sim.prepend(2)
    rows2, total2 = sim.page(2)  # old8..old17: page 3 (old20..) was served before the shift
    coverage.add(3, total3, rows3)
    coverage.add(2, total2, rows2)
    assert coverage.gaps() == [(-2, 0), (18, 20)]
    sim.prepend(1)
    assert coverage.refill_pages() == [3]  # old18 is at 20 now: page 3
    rows, total = sim.page(3)
    fresh = coverage.add(3, total, rows)
    assert [t for a, b in fresh for t in rows[a:b]] == ["old18", "old19"]
    read(coverage, sim, 4)
    rows, total = sim.page(1)
    fresh = coverage.add(1, total, rows)
    assert [t for a, b in fresh for t in rows[a:b]] == ["new3", "new2", "new1"]
    assert coverage.complete


def test_refills_are_bounded_by_the_limit_and_counted() -> None:
    coverage = Coverage(first_total=100, page_size=S)
    coverage.add(1, 100, [f"t{i}" for i in range(10)])
    assert coverage.refill_pages(limit=3) == [2, 3, 4]
    assert coverage.refills == 3


def test_an_empty_list_is_complete_at_once() -> None:
    coverage = Coverage(first_total=0, page_size=S)
    assert coverage.add(1, 0, []) == []
    assert coverage.complete


def test_a_falling_total_count_contradicts() -> None:
    coverage = Coverage(first_total=30, page_size=S)
    coverage.add(1, 30, [f"t{i}" for i in range(10)])
    coverage.add(2, 29, [f"t{i}" for i in range(11, 21)])
    assert coverage.contradiction and "fell" in coverage.contradiction
    assert not coverage.complete
    assert coverage.refill_pages() == []
    # After a contradiction every row is passed on: position no longer tells duplicates.
    assert coverage.add(3, 29, [f"t{i}" for i in range(21, 30)]) == [(0, 9)]


def test_a_total_count_below_one_answered_before_the_request_contradicts() -> None:
    coverage = Coverage(first_total=30, page_size=S)
    coverage.add(1, 30, [f"t{i}" for i in range(10)], sent_at=0, received_at=1)
    coverage.add(3, 33, [f"t{i}" for i in range(17, 27)], sent_at=1, received_at=2)
    # Page 2 was asked for after page 3's answer (TotalCount 33) and says 31.
    coverage.add(2, 31, [f"t{i}" for i in range(9, 19)], sent_at=3, received_at=4)
    assert coverage.contradiction and "after a page answered" in coverage.contradiction


def test_pages_in_flight_together_may_report_totals_in_any_order() -> None:
    coverage = Coverage(first_total=30, page_size=S)
    sim = SimList.of(30)
    read(coverage, sim, 1, sent_at=0, received_at=1)
    rows3, total3 = sim.page(3)
    sim.prepend(1)
    rows2, total2 = sim.page(2)
    # Page 3 was served before the new task (30), page 2 after it (31); page 3 was asked
    # for before page 2 answered, so no order between them is known: no contradiction.
    coverage.add(2, total2, rows2, sent_at=1, received_at=2)
    coverage.add(3, total3, rows3, sent_at=1.5, received_at=2.5)
    assert coverage.contradiction is None


def test_a_page_whose_rows_disagree_with_its_total_count_contradicts() -> None:
    coverage = Coverage(first_total=25, page_size=S)
    coverage.add(1, 25, [f"t{i}" for i in range(10)])
    coverage.add(3, 25, [f"t{i}" for i in range(20, 24)])  # 5 promised
    assert coverage.contradiction and "rows" in coverage.contradiction


def test_an_oldest_first_list_that_grows_contradicts() -> None:
    sim = SimList.of(30)
    coverage = Coverage(first_total=30, page_size=S)
    read(coverage, sim, 1)
    sim.append(2)  # oldest first: new tasks at the end, nothing moves
    read(coverage, sim, 2)
    assert coverage.contradiction and "different tasks" in coverage.contradiction


def test_a_task_found_at_another_place_contradicts() -> None:
    sim = SimList.of(30)
    coverage = Coverage(first_total=30, page_size=S)
    read(coverage, sim, 1)
    sim.remove_at(25)  # a task past page 2 leaves, a new one comes: TotalCount holds
    sim.prepend(1)
    rows, total = sim.page(2)
    assert total == 30
    coverage.add(2, total, rows)  # starts with old9, which page 1 holds at 9, not 10
    assert coverage.contradiction and "places away" in coverage.contradiction


def test_a_long_overlap_is_compared_at_the_sampled_multiples() -> None:
    # Two samples at each end; a page 6 rows into the one before shares none of those,
    # but it shares the rows at indices 4 and 8 (multiples of 2 * samples).
    sim = SimList.of(100)
    coverage = Coverage(first_total=100, page_size=S, samples=2)
    read(coverage, sim, 1)
    sim.prepend(6)
    assert read(coverage, sim, 2) == [f"old{i}" for i in range(10, 14)]
    assert coverage.contradiction is None
    moved = SimList.of(100)
    coverage = Coverage(first_total=100, page_size=S, samples=2)
    read(coverage, moved, 1)
    moved.append(6)  # oldest first: page 2 did not move
    read(coverage, moved, 2)
    assert coverage.contradiction and "different tasks" in coverage.contradiction


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError):
        Coverage(first_total=1, page_size=0)
    with pytest.raises(ValueError):
        Coverage(first_total=-1, page_size=1)


# --- generated sequences -------------------------------------------------------------

SEEDS = range(300)


@pytest.mark.parametrize("size", [0, 1, 9, 10, 11, 57, 100, 203])
@pytest.mark.parametrize("concurrency", [1, 3, 8])
def test_a_still_list_takes_the_planned_pages_only(size: int, concurrency: int) -> None:
    for seed in range(10):
        outcome = run_pass(SimList.of(size), random.Random(seed), _still, concurrency)
        assert outcome.accepted
        assert sorted(outcome.passed) == sorted(outcome.original)
        assert outcome.requests == outcome.planned


@pytest.mark.parametrize("rate", [0.02, 0.1, 0.25])
@pytest.mark.parametrize("concurrency", [1, 3, 8])
def test_a_list_growing_at_its_head_is_covered_with_few_refills(
    rate: float, concurrency: int
) -> None:
    extra = 0
    planned = 0
    for seed in SEEDS:
        rng = random.Random(seed)
        sim = SimList.of(rng.randrange(0, 250))
        outcome = run_pass(sim, rng, _grow(rate), concurrency)
        assert outcome.coverage.contradiction is None, outcome.coverage.contradiction
        assert outcome.accepted, (seed, outcome.coverage.gaps())
        assert_sound(outcome)
        passed = set(outcome.passed)
        assert set(outcome.original) <= passed
        # New tasks passed on are those a page read after they came: never old ones twice.
        assert len(passed) == len(outcome.passed)
        extra += outcome.requests - outcome.planned
        planned += outcome.planned
    # Page size 10 and up to one new task per two page reads is far busier than an account
    # adding 2 tasks/s while 45 pages of 500 are read each second; refills stay a minority.
    assert extra <= planned * (0.25 if rate < 0.2 else 0.5), (extra, planned)


def _churn(sim: SimList, rng: random.Random) -> None:
    """Removals and additions at the head that keep TotalCount about even."""
    if rng.random() < 0.3 and sim.items:
        sim.remove_at(rng.randrange(len(sim.items)))
        sim.prepend()
    elif rng.random() < 0.1:
        sim.prepend()


def _shrink(sim: SimList, rng: random.Random) -> None:
    if rng.random() < 0.2 and sim.items:
        sim.remove_at(rng.randrange(len(sim.items)))


def _append(sim: SimList, rng: random.Random) -> None:
    if rng.random() < 0.3:
        sim.append()


def _insert_anywhere(sim: SimList, rng: random.Random) -> None:
    if rng.random() < 0.3:
        sim.insert_random(rng)


def _reorder(sim: SimList, rng: random.Random) -> None:
    if rng.random() < 0.2:
        sim.swap(rng)


def _grow_and_reorder(sim: SimList, rng: random.Random) -> None:
    _grow(0.3)(sim, rng)
    _reorder(sim, rng)


@pytest.mark.parametrize(
    "mutate",
    [_churn, _shrink, _append, _insert_anywhere, _reorder, _grow_and_reorder],
    ids=["churn", "shrink", "append", "insert_anywhere", "reorder", "grow_and_reorder"],
)
@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_pass_over_a_list_that_breaks_the_model_is_never_accepted_incomplete(
    mutate: Mutate, concurrency: int
) -> None:
    rejected = 0
    for seed in SEEDS:
        rng = random.Random(seed)
        sim = SimList.of(rng.randrange(20, 120))
        outcome = run_pass(sim, rng, mutate, concurrency)
        assert_sound(outcome)
        rejected += not outcome.accepted
    assert rejected  # the change is seen, not merely survived


# --- the scan, with a simulated list behind fetch_page --------------------------------


def scan_sim(sim: SimList, mutate: Mutate, concurrency: int, seed: int = 0) -> Any:
    """One :class:`Scan` pass over ``sim``, ``mutate`` called before each page is served."""
    import threading

    from volcengine_live.responses import Page
    from volcengine_live.scan import Scan

    rng = random.Random(seed)
    lock = threading.Lock()

    def fetch_page(page_num: int, page_size: int) -> Page:
        with lock:
            mutate(sim, rng)
            start = (page_num - 1) * page_size
            rows = [{"TaskId": t} for t in sim.items[start : start + page_size]]
            return Page(page_num, page_size, rows, len(sim.items), 0.0)

    scan = Scan(fetch_page, S, concurrency)
    passed: list[str] = []
    repeated = 0
    for page in scan:
        passed.extend(task["TaskId"] for task in page.tasks)
        repeated += len(page.repeated)
    return scan.report, passed, repeated


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_scan_of_a_growing_list_hands_every_task_on_once(concurrency: int) -> None:
    for seed in range(20):
        sim = SimList.of(95)
        original = list(sim.items)
        report, passed, repeated = scan_sim(sim, _grow(0.2), concurrency, seed)
        assert report.stable, report.contradiction
        assert set(original) <= set(passed)
        assert len(passed) == len(set(passed)) == report.rows
        assert report.refills >= 1 or len(report.total_counts) == 1
        assert repeated == 0 or report.repeated == repeated


def test_a_scan_of_a_still_list_reads_its_pages_once() -> None:
    report, passed, repeated = scan_sim(SimList.of(100), _still, 4)
    assert report.stable and report.pages == 11 and report.refills == 0 and repeated == 0
    assert len(passed) == 100


def test_a_scan_of_a_shrinking_list_is_not_stable() -> None:
    fetched: list[int] = []

    def remove_before_page_2(sim: SimList, rng: random.Random) -> None:
        fetched.append(1)
        if len(fetched) == 2:
            sim.remove_at(0)  # page 1 is read: every later task slides up one place

    report, _passed, _repeated = scan_sim(SimList.of(95), remove_before_page_2, 1)
    assert not report.stable and report.contradiction and "fell" in report.contradiction
