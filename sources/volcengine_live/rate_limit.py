"""Client-side pacing for the account's request limit (50 requests/s, shared by every client
of the account), shared by all threads of one client.

Design: a model of the server's one-second window
--------------------------------------------------
The API allows an account 50 requests per second and answers 429 ``FlowLimitExceeded`` to
the requests over it; the emulator counts them in a sliding one-second window, the strictest
reading of "per second". :class:`RateLimiter` keeps the same kind of window on the client
side, over the moments requests were *sent* (in-flight requests included: a request counts
from the moment it starts), and lets a request start only when that keeps the window within
the current rate ``r``:

* at most ``n = ceil(r)`` requests start in any ``n / r`` seconds (``>= 1``), so no
  one-second window the server could see holds more than ``n`` of them, and over time the
  pace is ``r``. Within 10 % of the account's documented limit, and after any 429, a
  ``guard`` of 20 ms is added to that window: the server sees a request one latency after
  it was sent, and two requests a window apart must still be a window apart when they
  arrive, however their latencies differ. Far below the limit (told 40 of 50) the guard
  would cost 2 % for nothing;
* consecutive starts are at least ``0.8 / r`` apart: a pause (a retry, the first page read
  alone) can be caught up at 1.25 times the rate, but the window is not spent in one burst
  of every worker at once, which a server whose limit is a small token bucket would refuse,
  and which leaves no worker free to absorb a slow answer: a start that waits for a worker
  is late for good, since the window then holds its slot one window later too.

Every request's outcome is kept beside its start (in flight, admitted, refused), and a 429
is read against that log:

* **how far to slow down**: the server refused the request when its window held the
  requests of ours admitted in the second before it. That count is the room the account
  leaves this client (another client of the same account may take the rest). When it is
  nearly all we sent (90 % or more: latency jitter at the edge of the limit blurs the
  count by a few) the rate steps down a gentle 3 %; when it is far less, the rate goes
  straight to 3 % below that measured room, where another client takes part of it (told
  40, room for 20: 20 at once, 19.4 a window later, with no oscillation on the way). It
  never falls below half the rate of one window before, however many 429s come in it, so a
  window full of others' requests (a competitor's burst, or 429s one round trip apart at a
  low latency) cannot collapse it.
  Against a competitor that never backs off the count overstates the room while we crowd it
  out, so the rate comes down by one step per window: about five seconds from 40 to 20.
* **one burst, one decrease**: 429s of requests sent before the last decrease were sent at
  the old rate (in flight when it changed) and change nothing more.
* **``Retry-After``**: when an answer carries one, no request of this client starts before
  it has passed; every thread waits, not only the one that got the 429.

After a decrease the rate holds for one window (the server's window still holds requests
sent at the old rate), then probes upwards: 0.25 % per second at first, the speed doubling
every second up to 25 % per second, and never above the rate told. Near the last limit that
found a 429 the probe is slow (back to it in about four seconds, about one 429 per probe);
when the room has grown (the other client stopped) it reaches the told rate within about ten.

Why not X
---------
* **Even spacing at the told rate** (the previous limiter): at exactly the account's limit
  a request is refused whenever its latency is a little shorter than that of the request
  sent one second before it, so 429s come in every window; halving on them then costs a
  quarter of the throughput, and a ``x1.25 per 10 successes`` climb back overshoots again.
* **AIMD with a fixed decrease factor only**: a gentle factor (0.9) takes seven bursts and
  dozens of 429s to go from 40 to a room of 20, a steep one (0.5) oscillates around it. The
  log of admitted requests measures the room directly, so one decrease reaches it.
* **A token bucket**: it allows twice its rate in a second (a full bucket, then the refill),
  which a one-second window on the server refuses.
* **Reacting to 429s alone, with no client-side window**: every adjustment then costs 429s,
  which come out of the account's limit too.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable

from .settings import ACCOUNT_REQUESTS_PER_SECOND

logger = logging.getLogger(__name__)

_IN_FLIGHT = 0
_ADMITTED = 1
_REFUSED = 2


class Ticket:
    """One request's start and outcome, as the limiter's window sees it.
    :meth:`RateLimiter.acquire` returns it; a caller that reports the outcome from another
    thread than the one that acquired passes it back."""

    __slots__ = ("epoch", "sent_at", "state")

    def __init__(self, sent_at: float, epoch: int) -> None:
        self.sent_at = sent_at
        self.epoch = epoch
        """How many decreases had happened when it started."""
        self.state = _IN_FLIGHT


class RateLimiter:
    """Lets requests start at up to ``rate`` per second across threads, slows down by what
    the server's 429s say about the room left, and probes back up; see the module docstring.

    ``rate=None`` (or 0) paces nothing; ``Retry-After`` pauses are still honoured. Each
    thread calls :meth:`acquire` before a request, then :meth:`succeeded` or
    :meth:`throttled` with its outcome (any other outcome needs no call). ``clock`` and
    ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        rate: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        *,
        window: float = 1.0,
        guard: float = 0.02,
        spacing: float = 0.8,
        account_limit: float | None = ACCOUNT_REQUESTS_PER_SECOND,
        decrease: float = 0.97,
        min_rate: float = 1.0,
        max_pause: float = 60.0,
    ) -> None:
        self.target = rate if rate and rate > 0 else None
        self.rate = self.target
        """The current pace (requests/s): ``target`` until the server refuses a request."""
        self.window = window
        self.guard = guard
        self.spacing = spacing
        self.account_limit = account_limit
        self.decrease = decrease
        self.min_rate = min(min_rate, self.target) if self.target else min_rate
        self.max_pause = max_pause
        self.throttles = 0
        """429s reported, for tests and the benchmark."""
        self.decreases = 0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # Requests start in the order they asked: woken sleepers racing for a slot would
        # send pages out of order, and a list that grows between two pages sent out of
        # order leaves a gap the scan must re-read (see coverage.py).
        self._turns = threading.Condition(self._lock)
        self._next_turn = 0
        self._serving = 0
        self._abandoned: set[int] = set()
        self._local = threading.local()
        # Enough starts for the widest window (``ceil(target)``) plus the second before a
        # refused request that was sent while others were in flight.
        size = 2 * math.ceil(self.target) + 32 if self.target else 0
        self._log: deque[Ticket] = deque(maxlen=size)
        self._pause_until = float("-inf")
        self._last_decrease = float("-inf")
        self._last_growth = float("-inf")
        self._floor = 0.0
        self._floor_until = float("-inf")

    # ------------------------------------------------------------------ the client's calls

    def acquire(self) -> Ticket | None:
        """Block until this thread may send a request, and count it as started. The ticket
        returned is also this thread's current request for :meth:`succeeded` and
        :meth:`throttled`; it is None when nothing is paced."""
        with self._lock:
            turn = self._next_turn
            self._next_turn += 1
        try:
            return self._acquire_turn(turn)
        except BaseException:
            with self._turns:  # interrupted: give the turn up, so the next caller is served
                self._abandoned.add(turn)
                self._skip_abandoned()
            raise

    def _acquire_turn(self, turn: int) -> Ticket | None:
        while True:
            with self._turns:
                while self._serving != turn:
                    self._turns.wait()
                now = self._clock()
                start = self._earliest_start(now)
                if start <= now:
                    self._serving += 1
                    self._skip_abandoned()
                    if self.rate is not None:
                        request = Ticket(now, self.decreases)
                        self._log.append(request)
                        self._local.request = request
                        return request
                    return None
            self._sleep(start - now)

    def _skip_abandoned(self) -> None:
        while self._serving in self._abandoned:
            self._abandoned.discard(self._serving)
            self._serving += 1
        self._turns.notify_all()

    def succeeded(self, ticket: Ticket | None = None) -> None:
        """This thread's request (or ``ticket``'s) was answered, not with a 429."""
        request = self._take_request(ticket)
        if request is not None:
            with self._lock:
                request.state = _ADMITTED

    def throttled(self, retry_after: float | None = None, ticket: Ticket | None = None) -> None:
        """This thread's request (or ``ticket``'s) was answered 429; ``retry_after`` is the
        answer's ``Retry-After`` in seconds, if it had one."""
        request = self._take_request(ticket)
        with self._lock:
            now = self._clock()
            self.throttles += 1
            if retry_after is not None and retry_after > 0:
                self._pause_until = max(self._pause_until, now + min(retry_after, self.max_pause))
            if self.rate is None:
                return
            if request is not None:
                request.state = _REFUSED
            if request is not None and request.epoch != self.decreases:
                return  # sent at the old rate, before the burst's first 429 slowed us down
            sent_at = request.sent_at if request is not None else now
            admitted = self._admitted_before(request, sent_at)
            # Nearly all we sent was admitted: the edge of the limit, a 3 % step. Far fewer:
            # the room another client leaves us, measured.
            room = self.rate if admitted >= 0.9 * self.rate else admitted
            slower = self.decrease * room
            if now >= self._floor_until:  # at most half the rate of one window ago
                self._floor, self._floor_until = self.rate / 2, now + self.window
            self.rate = max(slower, self._floor, self.min_rate)
            self._last_decrease = now
            self.decreases += 1
        logger.info(
            "API answered 429 with %d of our requests admitted in the second before: "
            "slowing to %.1f requests/s",
            admitted,
            self.rate,
        )

    # ------------------------------------------------------------------ the model

    def _take_request(self, ticket: Ticket | None) -> Ticket | None:
        request: Ticket | None = getattr(self._local, "request", None)
        if ticket is not None and ticket is not request:
            return ticket
        self._local.request = None
        return request

    def _earliest_start(self, now: float) -> float:
        start = max(now, self._pause_until)
        rate = self.rate
        if rate is None:
            return start
        self._grow(now)
        rate = self.rate
        assert rate is not None
        log = self._log
        if log:
            start = max(start, log[-1].sent_at + self.spacing / rate)
        n = math.ceil(rate - 1e-9)
        if len(log) >= n:
            start = max(start, log[-n].sent_at + n / rate + self.current_guard())
        return start

    def current_guard(self) -> float:
        """Seconds added to the window: ``guard``, or none while the rate is far below the
        account's limit and no 429 has said that the room is smaller."""
        rate = self.rate
        far_below = (
            rate is not None
            and self.account_limit is not None
            and rate <= 0.9 * self.account_limit
            and not self.decreases
        )
        return 0.0 if far_below else self.guard

    def _grow(self, now: float) -> None:
        """Probe back towards the told rate, starting one window after the last decrease."""
        rate, target = self.rate, self.target
        if rate is None or target is None or rate >= target:
            self._last_growth = now
            return
        begin = self._last_decrease + self.window
        if now <= begin:
            self._last_growth = now
            return
        since = max(self._last_growth, begin)
        middle = (since + now) / 2 - begin
        speed = min(0.25, 0.0025 * 2.0**middle)
        self.rate = min(target, rate * (1.0 + speed * (now - since)))
        self._last_growth = now

    def _admitted_before(self, refused: Ticket | None, sent_at: float) -> int:
        """Our requests sent in the window before ``refused`` and not refused themselves
        (those still in flight were judged before it, most likely admitted)."""
        horizon = sent_at - self.window
        admitted = 0
        for request in self._log:
            if request is refused or request.sent_at > sent_at:
                break
            if request.sent_at > horizon and request.state != _REFUSED:
                admitted += 1
        return admitted
