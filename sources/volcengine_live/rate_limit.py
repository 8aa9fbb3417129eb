"""A client-side rate limit shared by every page fetch of one client.

Why not a token bucket from a library: the limiter must also slow down when the API
answers 429 and climb back afterwards, which none of dlt's dependencies offer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

logger = logging.getLogger(__name__)


class RateLimiter:
    """Spaces requests evenly at ``rate`` per second across threads; halves the pace when
    the API answers 429 and climbs back to ``rate`` after a run of successes."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.target = rate
        self.rate = rate
        self._clock = clock
        self._next_slot = 0.0
        self._lock = threading.Lock()
        self._successes = 0
        self._last_throttle = float("-inf")

    def acquire(self) -> None:
        if not self.rate:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self.rate
        delay = slot - now
        if delay > 0:
            time.sleep(delay)

    def throttled(self) -> None:
        if not self.rate:
            return
        with self._lock:
            self._successes = 0
            now = self._clock()
            # 429s from requests that were in flight together are one signal: halve once
            # per second at most, or one burst would slow a scan to a crawl.
            if now - self._last_throttle < 1.0:
                return
            self._last_throttle = now
            self.rate = max(1.0, self.rate / 2)
            logger.info("API answered 429: slowing to %.1f requests/s", self.rate)

    def succeeded(self) -> None:
        if not self.rate or not self.target or self.rate >= self.target:
            return
        with self._lock:
            self._successes += 1
            if self._successes >= 10:
                self._successes = 0
                self.rate = min(self.target, self.rate * 1.25)
