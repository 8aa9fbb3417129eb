"""The API's per-account request limit: a sliding one-second window per access key.

Two refinements for tests and benchmarks: a key can have a limit of its own (this client gets
20/s while the account default is 50/s), and several keys can share one window (two clients
of the same account, as the real limit is per account).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping


class SlidingWindowLimiter:
    """Allows at most ``rate`` requests per account in any ``window`` seconds.

    An account is an access key unless :meth:`set_account` groups keys under one name.
    ``rate=None`` turns limiting off; :meth:`set_key_rate` gives one account (or key) a rate
    of its own, None meaning unlimited. Refused requests do not count against the window, so
    a client that backs off gets through as soon as the window has room again.
    """

    def __init__(self, rate: float | None = 50.0, window: float = 1.0) -> None:
        self._rate = rate
        self.window = window
        self._hits: dict[str, deque[float]] = {}
        self._key_rates: dict[str, float | None] = {}
        self._accounts: dict[str, str] = {}
        self._lock = threading.Lock()

    @property
    def rate(self) -> float | None:
        """The default rate of every account without one of its own."""
        return self._rate

    @rate.setter
    def rate(self, value: float | None) -> None:
        _check(value)
        with self._lock:
            self._rate = value

    @property
    def key_rates(self) -> dict[str, float | None]:
        """Accounts (or keys) with a rate of their own: name -> rate (None = unlimited)."""
        with self._lock:
            return dict(self._key_rates)

    def set_key_rate(self, name: str, rate: float | None) -> None:
        """Give the account or access key ``name`` its own limit (None: unlimited)."""
        _check(rate)
        with self._lock:
            self._key_rates[name] = rate

    def clear_key_rate(self, name: str) -> None:
        """Back to the default rate for ``name``."""
        with self._lock:
            self._key_rates.pop(name, None)

    @property
    def accounts(self) -> dict[str, str]:
        """Access key -> account name, for keys that share a window."""
        with self._lock:
            return dict(self._accounts)

    def set_account(self, access_key_id: str, account: str | None) -> None:
        """Count ``access_key_id`` in ``account``'s window (None: its own again)."""
        with self._lock:
            if account is None or account == access_key_id:
                self._accounts.pop(access_key_id, None)
            else:
                self._accounts[access_key_id] = account

    def update(
        self,
        key_rates: Mapping[str, float | None] | None = None,
        accounts: Mapping[str, str] | None = None,
    ) -> None:
        for name, rate in (key_rates or {}).items():
            self.set_key_rate(name, rate)
        for access_key_id, account in (accounts or {}).items():
            self.set_account(access_key_id, account)

    def allow(self, key: str, now: float | None = None) -> bool:
        """Record a request for ``key`` and say whether it is within the limit."""
        with self._lock:
            account = self._accounts.get(key, key)
            if account in self._key_rates:
                rate = self._key_rates[account]
            elif key in self._key_rates:
                rate = self._key_rates[key]
            else:
                rate = self._rate
            if rate is None:
                return True
            moment = time.monotonic() if now is None else now
            hits = self._hits.setdefault(account, deque())
            horizon = moment - self.window
            while hits and hits[0] <= horizon:
                hits.popleft()
            if len(hits) >= rate:
                return False
            hits.append(moment)
            return True

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()


def _check(rate: float | None) -> None:
    if rate is not None and rate <= 0:
        raise ValueError("rate must be positive, or None for no limit")
