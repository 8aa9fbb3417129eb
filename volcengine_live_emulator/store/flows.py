"""A moving list: tasks created (``grow``) or removed (``shrink``) at a steady rate while the
emulator serves, as on a busy account or under a retention purge.

Flows are not threads: they are caught up whenever the store is read or changed (wall-clock
rates) and before each API page request (per-request rates), so a scan sees tasks arrive as
it goes and a test never races a background thread.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any

from .changes import Changes, new_record
from .records import Records
from .removal import Removal


class Flow:
    """A steady creation (``grow``) or removal (``shrink``) of tasks."""

    def __init__(
        self,
        kind: str,
        per_second: float | None,
        per_request: int | None,
        start_ahead: float,
        duration: float,
        limit: int | None,
    ) -> None:
        if per_second is None and per_request is None:
            raise ValueError("give per_second or per_request")
        if (per_second is not None and per_second <= 0) or (
            per_request is not None and per_request <= 0
        ):
            raise ValueError("per_second and per_request must be positive")
        self.kind = kind
        self.per_second = None if per_second is None else float(per_second)
        self.per_request = None if per_request is None else int(per_request)
        self.start_ahead = float(start_ahead)
        self.duration = float(duration)
        self.limit = limit
        self.started = time.monotonic()
        self.done = 0
        self._by_requests = 0

    def elapsed(self, now: float) -> float:
        return max(0.0, now - self.started)

    def due(self, now: float, requests: int) -> int:
        """How many tasks to create or remove now to be on schedule."""
        target = 0
        if self.per_request is not None:
            self._by_requests += requests * self.per_request
            target += self._by_requests
        if self.per_second is not None:
            target += int(self.elapsed(now) * self.per_second)
        if self.limit is not None:
            target = min(target, self.limit)
        return max(0, target - self.done)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "per_second": self.per_second,
            "per_request": self.per_request,
            "start_ahead": self.start_ahead,
            "duration": self.duration,
            "limit": self.limit,
            "done": self.done,
        }


class Flows:
    """The running flows of one store."""

    def __init__(self, records: Records, changes: Changes, removal: Removal) -> None:
        self._records = records
        self._changes = changes
        self._removal = removal
        self._flows: list[Flow] = []

    def add(self, flow: Flow) -> None:
        self._flows.append(flow)

    def stop(self) -> list[dict[str, Any]]:
        """End every flow; returns what each did."""
        described = self.describe()
        self._flows.clear()
        return described

    def describe(self) -> list[dict[str, Any]]:
        return [flow.describe() for flow in self._flows]

    def run(self, requests: int) -> None:
        """Catch every flow up, counting ``requests`` more API page requests."""
        if not self._flows:
            return  # the page path's common case: one truth test
        now = time.monotonic()
        records = self._records
        for flow in self._flows:
            for _ in range(flow.due(now, requests)):
                if flow.kind == "grow":
                    at = records.clock + flow.start_ahead + flow.elapsed(now)
                    start = datetime.fromtimestamp(at, timezone.utc)
                    end = datetime.fromtimestamp(at + flow.duration, timezone.utc)
                    values = self._changes.complete({"StartTime": start, "EndTime": end})
                    self._changes.insert(*new_record(values))
                elif records.order:
                    self._removal.hide(records.order[0])
                flow.done += 1
