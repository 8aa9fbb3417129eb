"""The rate limiter: unit tests on an injected clock (deterministic, no timing), a
simulation of a scan against a server with a sliding one-second window, and integration
tests against the emulator's own limiter over loopback HTTP (counts, never durations)."""

from __future__ import annotations

import heapq
import itertools
import math
import random
import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from volcengine_live.client import ClientConfig, LiveApiClient
from volcengine_live.rate_limit import RateLimiter, Ticket
from volcengine_live.scan import Scan

from helpers import (
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    Loader,
    assert_matches_emulator,
    make_emulator,
)


class Clock:
    """A fake monotonic clock; ``sleep`` moves it on."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(0.0, seconds)


def limiter_on(clock: Clock, rate: float | None, **options: Any) -> RateLimiter:
    return RateLimiter(rate, clock=clock, sleep=clock.sleep, **options)


# ---------------------------------------------------------------------------- unit tests


def test_no_more_starts_in_any_window_than_the_rate() -> None:
    clock = Clock()
    limiter = limiter_on(clock, 10.0)
    starts = []
    for _ in range(60):
        ticket = limiter.acquire()
        assert ticket is not None
        starts.append(ticket.sent_at)
        limiter.succeeded(ticket)
    for first, eleventh in zip(starts, starts[10:], strict=False):
        assert eleventh - first >= 1.0 - 1e-9
    # and no burst: consecutive starts at least 0.8 of a slot apart
    assert min(b - a for a, b in itertools.pairwise(starts)) >= 0.08 - 1e-9
    # the pace over the run is the rate
    assert (len(starts) - 1) / (starts[-1] - starts[0]) >= 10.0 * 0.99


@pytest.mark.parametrize(("rate", "guard"), [(40.0, 0.0), (45.0, 0.0), (46.0, 0.02), (50.0, 0.02)])
def test_the_guard_against_latency_jitter_applies_at_the_edge_of_the_account_limit(
    rate: float, guard: float
) -> None:
    clock = Clock()
    limiter = limiter_on(clock, rate)
    n = math.ceil(rate)
    starts = [limiter.acquire() for _ in range(n + 1)]
    assert starts[0] is not None and starts[n] is not None
    assert starts[n].sent_at - starts[0].sent_at == pytest.approx(1.0 + guard)


def test_a_pause_is_caught_up_within_the_window() -> None:
    """Unlike even spacing, a request that could not start on time (the first page read
    alone, a retry) does not lose its slot for good."""
    clock = Clock()
    limiter = limiter_on(clock, 10.0)
    limiter.acquire()
    clock.now = 0.5  # nothing sent for half a window
    for _ in range(7):
        limiter.acquire()
    assert clock.now == pytest.approx(0.5 + 6 * 0.08)
    assert clock.now < 1.0  # 8 in the first second, where even spacing allows 5 by then


def test_a_429_at_the_edge_of_the_limit_slows_by_three_percent_not_by_half() -> None:
    clock = Clock()
    limiter = limiter_on(clock, 10.0)
    tickets = [limiter.acquire() for _ in range(11)]
    for ticket in tickets[:-1]:
        limiter.succeeded(ticket)
    # 9 of ours admitted in the second before the 11th (it started a second after the
    # first): the server took nearly all we sent, so this is the edge of its limit
    limiter.throttled(ticket=tickets[-1])
    assert limiter.rate == pytest.approx(0.97 * 10)
    assert limiter.decreases == 1


def test_no_guard_far_below_the_account_limit_until_a_429() -> None:
    clock = Clock()
    calm = limiter_on(clock, 40.0)
    assert calm.current_guard() == 0.0
    calm.throttled()
    assert calm.current_guard() == calm.guard
    assert limiter_on(clock, 46.0).current_guard() == calm.guard


def test_a_429_that_shows_another_client_takes_half_the_room_goes_to_that_room() -> None:
    clock = Clock()
    limiter = limiter_on(clock, 30.0)
    tickets = [limiter.acquire() for _ in range(21)]
    for ticket in tickets[:20]:
        limiter.succeeded(ticket)
    limiter.throttled(ticket=tickets[20])  # the server admitted 20 of ours, then refused
    assert limiter.rate == pytest.approx(0.97 * 20)


def test_one_decrease_never_more_than_halves() -> None:
    clock = Clock()
    limiter = limiter_on(clock, 40.0)
    limiter.throttled()  # nothing of ours admitted: a competitor's burst, or a fault
    assert limiter.rate == 20.0


def test_429s_one_round_trip_apart_cannot_collapse_the_rate_within_a_window() -> None:
    clock = Clock()
    limiter = limiter_on(clock, 40.0)
    for _ in range(5):  # each sent after the previous decrease: each one news
        limiter.throttled(ticket=limiter.acquire())
    assert limiter.decreases == 5
    assert limiter.rate == 20.0
    clock.now += 1.0  # a window later the room may be measured again
    limiter.throttled(ticket=limiter.acquire())
    assert limiter.rate == 10.0


def test_429s_of_requests_in_flight_together_are_one_decrease() -> None:
    clock = Clock()
    limiter = limiter_on(clock, 40.0)
    admitted = [limiter.acquire() for _ in range(30)]
    for ticket in admitted:
        limiter.succeeded(ticket)
    in_flight = [limiter.acquire() for _ in range(6)]
    for ticket in in_flight:
        limiter.throttled(ticket=ticket)
    assert limiter.decreases == 1
    assert limiter.throttles == 6
    # a request sent after the decrease that is refused again is news: a second decrease
    later = limiter.acquire()
    limiter.throttled(ticket=later)
    assert limiter.decreases == 2


def test_thread_local_tickets_need_no_argument() -> None:
    clock = Clock()
    limiter = limiter_on(clock, 10.0)
    outcomes: list[int] = []

    def worker() -> None:
        limiter.acquire()
        limiter.throttled()
        outcomes.append(limiter.decreases)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    limiter.acquire()
    limiter.succeeded()
    assert outcomes == [1] and limiter.throttles == 1
    assert [ticket.state for ticket in limiter._log] == [2, 1]


def test_retry_after_holds_every_thread_back() -> None:
    clock = Clock()
    limiter = limiter_on(clock, 40.0)
    ticket = limiter.acquire()
    clock.now = 5.0
    limiter.throttled(retry_after=3.0, ticket=ticket)
    limiter.acquire()
    assert clock.now >= 8.0
    # capped, so that a bogus header cannot stall a run for hours
    limiter.throttled(retry_after=10_000.0)
    limiter.acquire()
    assert clock.now <= 8.0 + limiter.max_pause + 1


def test_unlimited_paces_nothing_but_honours_retry_after() -> None:
    clock = Clock()
    limiter = limiter_on(clock, None)
    for _ in range(1000):
        assert limiter.acquire() is None
        limiter.succeeded()
    assert clock.slept == []
    limiter.throttled(retry_after=2.0)
    limiter.acquire()
    assert clock.now == pytest.approx(2.0)
    assert limiter_on(clock, 0).rate is None


def test_after_a_decrease_the_rate_holds_then_probes_back_to_the_told_rate() -> None:
    clock = Clock()
    limiter = limiter_on(clock, 40.0)
    limiter.throttled()
    assert limiter.rate == 20.0
    rates = []
    for _ in range(400):
        ticket = limiter.acquire()
        limiter.succeeded(ticket)
        rates.append((clock.now, limiter.rate))
    assert all(rate == 20.0 for moment, rate in rates if moment <= 1.0)
    assert rates == sorted(rates)  # never down without a 429
    near = [moment for moment, rate in rates if rate is not None and rate >= 20.0 * 1.03]
    assert near and near[0] > 3.0  # gently near the rate that found the 429
    full = [moment for moment, rate in rates if rate == 40.0]
    assert full and full[0] < 12.0  # but back to the told rate within seconds


def test_many_threads_never_start_more_than_the_rate_in_a_window() -> None:
    """Real threads and the real clock; the assertion is on the limiter's own start times,
    which its lock guarantees whatever the scheduling."""
    limiter = RateLimiter(100.0)
    tickets: list[Ticket] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            ticket = limiter.acquire()
            assert ticket is not None
            limiter.succeeded()
            with lock:
                tickets.append(ticket)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    starts = sorted(ticket.sent_at for ticket in tickets)
    assert len(starts) == 200
    for first, later in zip(starts, starts[100:], strict=False):
        assert later - first >= 1.0
    assert all(ticket.state == 1 for ticket in tickets)


# ---------------------------------------------------------------------------- simulation


@dataclass
class Simulation:
    """A scan of ``pages`` pages by ``workers`` threads through a limiter, against a server
    that admits ``room`` requests per sliding second (the emulator's rule: refused ones do
    not count), each request arriving ``latency`` plus up to ``jitter`` after it was sent.
    ``other`` is another client's traffic on the same key (requests per second, evenly).
    Everything runs on one fake clock; the limiter's sleeps deliver the answers due."""

    told: float
    room: float
    pages: int = 2000
    workers: int = 8
    latency: float = 0.1
    jitter: float = 0.015
    other: float = 0.0
    seed: int = 3
    retry_after: float | None = None
    clock: Clock = field(default_factory=Clock)
    sends: list[tuple[float, bool]] = field(default_factory=list)
    other_refused: int = 0

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        self.limiter = RateLimiter(self.told, clock=self.clock, sleep=self._sleep)
        self.window: deque[float] = deque()
        self.events: list[tuple[float, int, str, Any]] = []
        self.sequence = 0
        self.ready: deque[tuple[int, int]] = deque()  # (page, attempt) a free worker holds
        self.free_workers = self.workers
        self.next_page = 1
        self.done = 0
        if self.other:
            for index in range(int(self.other * (self.pages / self.room + 30))):
                self._schedule(index / self.other, "other", None)

    def _schedule(self, moment: float, kind: str, data: Any) -> None:
        self.sequence += 1
        heapq.heappush(self.events, (moment, self.sequence, kind, data))

    def _admit(self, moment: float) -> bool:
        while self.window and self.window[0] <= moment - 1.0:
            self.window.popleft()
        if len(self.window) >= self.room:
            return False
        self.window.append(moment)
        return True

    def _deliver(self, until: float) -> None:
        while self.events and self.events[0][0] <= until:
            moment, _, kind, data = heapq.heappop(self.events)
            self.clock.now = max(self.clock.now, moment)
            if kind == "other":
                self.other_refused += not self._admit(moment)
            elif kind == "arrive":
                ticket, page, attempt = data
                admitted = self._admit(moment)
                self.sends.append((ticket.sent_at, admitted))
                if admitted:
                    self.limiter.succeeded(ticket)
                    self.done += 1
                    self.free_workers += 1
                else:
                    self.limiter.throttled(retry_after=self.retry_after, ticket=ticket)
                    backoff = 0.5 * 2.0 ** (attempt - 1) * self.random.uniform(0.5, 1.0)
                    if self.retry_after is not None:
                        backoff = self.retry_after
                    self._schedule(moment + backoff, "retry", (page, attempt + 1))
            elif kind == "retry":
                self.ready.append(data)

    def _sleep(self, seconds: float) -> None:
        until = self.clock.now + max(0.0, seconds)
        self._deliver(until)
        self.clock.now = until

    def run(self) -> Simulation:
        while self.done < self.pages:
            if not self.ready and self.free_workers and self.next_page <= self.pages:
                self.ready.append((self.next_page, 1))
                self.next_page += 1
                self.free_workers -= 1
            if self.ready:
                page, attempt = self.ready.popleft()
                ticket = self.limiter.acquire()
                assert ticket is not None
                arrival = self.clock.now + self.latency + self.random.uniform(0, self.jitter)
                self._schedule(arrival, "arrive", (ticket, page, attempt))
            else:
                self._deliver(self.events[0][0])
        return self

    @property
    def throttled(self) -> int:
        return sum(1 for _, admitted in self.sends if not admitted)

    @property
    def rate(self) -> float:
        """Admitted requests per second from the first sent to the last answered."""
        return self.done / (self.clock.now - self.sends[0][0])

    def sent_per_window(self, after: float) -> list[int]:
        starts = sorted(sent for sent, _ in self.sends)
        counts = []
        begin = after
        while begin + 1.0 <= starts[-1]:
            counts.append(sum(1 for sent in starts if begin <= sent < begin + 1.0))
            begin += 0.25
        return counts


def test_simulated_told_40_on_a_50_account_gets_40_with_no_429() -> None:
    sim = Simulation(told=40, room=50, jitter=0.03).run()
    assert sim.throttled == 0
    assert sim.rate >= 0.97 * 40


@pytest.mark.parametrize("jitter", [0.015, 0.05])
def test_simulated_told_50_on_a_50_account_gets_the_ceiling_with_few_429s(jitter: float) -> None:
    """Within the guard no 429 at all; with latency jitter beyond it, a few, each one a
    3 % step down and a slow probe back."""
    sim = Simulation(told=50, room=50, jitter=jitter).run()
    assert sim.rate >= 0.92 * 50
    assert sim.throttled <= 0.01 * len(sim.sends)
    if jitter < sim.limiter.guard:
        assert sim.throttled == 0


def test_simulated_room_of_20_is_found_at_once_and_held() -> None:
    sim = Simulation(told=40, room=20, pages=600).run()
    windows = sim.sent_per_window(after=2.0)
    assert windows and all(16 <= count <= 21 for count in windows), windows
    assert sim.rate >= 0.85 * 20
    # the first burst (requests in flight when the first 429 came back), then a 429 per probe
    assert sim.throttled <= 20 + len(sim.sends) * 0.02, sim.throttled


def test_simulated_competing_client_at_30_per_second_leaves_us_about_20() -> None:
    """A competitor that never backs off: while we crowd it out, the server admits more of
    ours than the room it leaves us, so this takes one decrease per window, about five."""
    sim = Simulation(told=40, room=50, other=30.0, pages=600).run()
    assert sim.limiter.decreases <= 12
    windows = sim.sent_per_window(after=6.0)
    assert windows and all(15 <= count <= 22 for count in windows), windows
    assert sim.throttled <= 20 + len(sim.sends) * 0.03, sim.throttled
    assert sim.rate >= 0.8 * 20


def test_simulated_retry_after_on_every_429_still_completes_near_the_room() -> None:
    sim = Simulation(told=40, room=20, pages=300, retry_after=1.0).run()
    assert sim.done == 300
    assert sim.rate >= 0.6 * 20


# ---------------------------------------------------------------------------- emulator


def scan_all(endpoint: str, rate: float, page_size: int) -> tuple[LiveApiClient, set[str]]:
    config = ClientConfig(
        endpoint=endpoint,
        requests_per_second=rate,
        max_attempts=10,
        backoff_seconds=0.2,
        max_concurrency=8,
    )
    client = LiveApiClient(ACCESS_KEY_ID, SECRET_ACCESS_KEY, config=config)
    seen: set[str] = set()
    try:
        for page in Scan.of(client, page_size):
            seen.update(task["TaskId"] for task in page.tasks)
    finally:
        client.close()
    return client, seen


@pytest.mark.slow
def test_told_40_on_a_50_per_second_account_is_never_throttled() -> None:
    with make_emulator(tasks=6000, rate_limit=50, latency=0.05, latency_jitter=0.02) as emu:
        client, seen = scan_all(emu.endpoint, 40.0, page_size=50)  # 120 pages, 3 s
        assert len(seen) == 6000
        assert emu.stats.throttled == 0
        assert client.stats.throttled == 0
        assert client.limiter.rate == 40.0


@pytest.mark.slow
def test_a_key_limited_to_20_per_second_completes_exactly_with_few_429s(tmp_path: Path) -> None:
    """Another client of the account takes the rest: the emulator admits 20/s for this key
    while the source is told the default 40."""
    with make_emulator(tasks=4000, rate_limit=20, latency=0.05) as emu:
        loader = Loader(emu, tmp_path)
        metrics = loader.run(page_size=50, max_attempts=10, requests_per_second=40)  # 80 pages
        assert_matches_emulator(loader)
        # the requests in flight when the first 429 came back, then one now and then
        assert emu.stats.throttled <= 16, emu.stats.throttled
        assert metrics["throttled"] == emu.stats.throttled
        assert metrics["requests"] == 81 + emu.stats.throttled


def test_requests_start_in_the_order_they_asked_for_a_slot() -> None:
    """Threads queued behind the pacing start in the order they called ``acquire``:
    pages sent out of order leave gaps on a growing list that the scan must re-read."""
    limiter = RateLimiter(20.0)  # starts 40 ms apart: every thread but the first waits
    order: list[int] = []
    threads = []
    for index in range(12):

        def run(index: int = index) -> None:
            limiter.acquire()
            order.append(index)
            limiter.succeeded()

        thread = threading.Thread(target=run)
        thread.start()
        threads.append(thread)
        while limiter._next_turn <= index:  # the next thread asks only after this one did
            threading.Event().wait(0.001)
    for thread in threads:
        thread.join()
    assert order == sorted(order)


class Interrupted(BaseException):
    """Like KeyboardInterrupt, which pytest would not let a test catch."""


def test_an_interrupted_wait_gives_its_turn_to_the_next_caller() -> None:
    clock = Clock()
    interrupt = False

    def sleep_or_interrupt(seconds: float) -> None:
        nonlocal interrupt
        if interrupt:
            interrupt = False
            raise Interrupted
        clock.sleep(seconds)

    limiter = RateLimiter(10.0, clock=clock, sleep=sleep_or_interrupt)
    limiter.succeeded(limiter.acquire())
    interrupt = True
    with pytest.raises(Interrupted):
        limiter.acquire()  # must wait for its slot, and is interrupted while waiting
    assert limiter.acquire() is not None  # the next caller is served, not left waiting
