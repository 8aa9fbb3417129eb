"""Counters of what the emulator served, for tests and benchmarks to assert on."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any


class Stats:
    """Thread-safe counters of API requests (control requests are not counted).

    * ``requests``: API requests answered or dropped, whatever the outcome;
    * ``by_status``: HTTP status -> responses (network faults that send no status excluded);
    * ``by_code``: error code -> error envelopes sent;
    * ``throttled``: HTTP 429 responses (rate limit and injected ``flow_limit`` faults);
    * ``faults``: fault kind -> faults that fired;
    * ``pages`` / ``rows``: successful pages and the task rows they carried.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero every counter."""
        with self._lock:
            self._requests = 0
            self._throttled = 0
            self._pages = 0
            self._rows = 0
            self._by_status: Counter[int] = Counter()
            self._by_code: Counter[str] = Counter()
            self._faults: Counter[str] = Counter()

    def record_response(
        self, status: int, code: str | None = None, rows: int | None = None
    ) -> None:
        with self._lock:
            self._requests += 1
            self._by_status[status] += 1
            if code is not None:
                self._by_code[code] += 1
            if status == 429:
                self._throttled += 1
            if rows is not None:
                self._pages += 1
                self._rows += rows

    def record_dropped(self) -> None:
        """A request answered with no HTTP response at all (reset, truncated)."""
        with self._lock:
            self._requests += 1

    def record_fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    @property
    def requests(self) -> int:
        return self._requests

    @property
    def throttled(self) -> int:
        return self._throttled

    @property
    def pages(self) -> int:
        return self._pages

    @property
    def rows(self) -> int:
        return self._rows

    @property
    def by_status(self) -> dict[int, int]:
        with self._lock:
            return dict(self._by_status)

    @property
    def by_code(self) -> dict[str, int]:
        with self._lock:
            return dict(self._by_code)

    @property
    def faults(self) -> dict[str, int]:
        with self._lock:
            return dict(self._faults)

    def snapshot(self) -> dict[str, Any]:
        """All counters as one JSON-friendly dict (status keys as strings)."""
        with self._lock:
            return {
                "requests": self._requests,
                "throttled": self._throttled,
                "pages": self._pages,
                "rows": self._rows,
                "by_status": {str(key): value for key, value in sorted(self._by_status.items())},
                "by_code": dict(sorted(self._by_code.items())),
                "faults": dict(sorted(self._faults.items())),
            }
