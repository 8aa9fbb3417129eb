"""The API's per-account request limit: a sliding one-second window per access key."""

from __future__ import annotations

import threading
import time
from collections import deque


class SlidingWindowLimiter:
    """Allows at most ``rate`` requests per access key in any ``window`` seconds.

    ``rate=None`` turns limiting off. Refused requests do not count against the window, so a
    client that backs off gets through as soon as the window has room again.
    """

    def __init__(self, rate: float | None = 50.0, window: float = 1.0) -> None:
        self._rate = rate
        self.window = window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @property
    def rate(self) -> float | None:
        return self._rate

    @rate.setter
    def rate(self, value: float | None) -> None:
        if value is not None and value <= 0:
            raise ValueError("rate must be positive, or None for no limit")
        with self._lock:
            self._rate = value

    def allow(self, key: str, now: float | None = None) -> bool:
        """Record a request for ``key`` and say whether it is within the limit."""
        with self._lock:
            if self._rate is None:
                return True
            moment = time.monotonic() if now is None else now
            hits = self._hits.setdefault(key, deque())
            horizon = moment - self.window
            while hits and hits[0] <= horizon:
                hits.popleft()
            if len(hits) >= self._rate:
                return False
            hits.append(moment)
            return True

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()
