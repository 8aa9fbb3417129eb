"""The :class:`Emulator`: a local ListPullRecordTask endpoint with its controls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from types import TracebackType

from .api import DEFAULT_REGION, SERVICE, ApiService, RequestHook, Settings
from .control import ControlApi
from .data import TaskGenerator
from .faults import FaultQueue
from .ratelimit import SlidingWindowLimiter
from .server import EmulatorHTTPServer
from .signature import DEFAULT_MAX_SKEW_SECONDS, Keyring
from .stats import Stats
from .store import DEFAULT_CACHE_ROWS, TaskStore

DEFAULT_ACCESS_KEY_ID = "AKEMULATOR"
DEFAULT_SECRET_ACCESS_KEY = "emulator-secret"
"""The key pair an emulator accepts unless told otherwise. Not a secret: local use only."""

DEFAULT_RATE_LIMIT = 50.0
"""Requests per second per access key, as the real API documents."""


class Emulator:
    """A local ListPullRecordTask server over a seeded task list.

    >>> with Emulator(tasks=1000, seed=7) as emu:
    ...     client_endpoint = emu.endpoint          # "http://127.0.0.1:PORT"
    ...     emu.store.create_task(Stream="s1")      # newest task, on page 1
    ...     emu.faults.add("common_err", times=3)   # the next 3 pages fail with CommonErr

    ``now`` anchors the generated times and statuses (default: the wall clock at construction);
    the same ``seed``, ``tasks`` and ``now`` give the same tasks. ``credentials`` adds more
    AK → SK pairs, ``session_tokens`` marks AKs as temporary (STS) keys that must send that
    X-Security-Token. ``rate_limit=None`` turns the limit off; ``retry_after`` adds a
    Retry-After header (seconds) to 429 answers, which the real API does not document.
    """

    def __init__(
        self,
        tasks: int = 1000,
        seed: int = 7,
        access_key_id: str = DEFAULT_ACCESS_KEY_ID,
        secret_access_key: str = DEFAULT_SECRET_ACCESS_KEY,
        latency: float = 0.0,
        rate_limit: float | None = DEFAULT_RATE_LIMIT,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        session_token: str | None = None,
        credentials: Mapping[str, str] | None = None,
        session_tokens: Mapping[str, str] | None = None,
        latency_jitter: float = 0.0,
        retry_after: float | None = None,
        region: str = DEFAULT_REGION,
        now: datetime | float | None = None,
        max_clock_skew: float = DEFAULT_MAX_SKEW_SECONDS,
        cache_rows: int = DEFAULT_CACHE_ROWS,
        fault_seed: int | None = None,
    ) -> None:
        if tasks < 0:
            raise ValueError("tasks must be >= 0")
        anchor = _epoch(now)
        self.seed = seed
        self.host = host
        self._requested_port = port
        self.keyring = Keyring()
        self.keyring.add(access_key_id, secret_access_key, session_token)
        tokens = dict(session_tokens or {})
        for key_id, secret in (credentials or {}).items():
            self.keyring.add(key_id, secret, tokens.get(key_id))
        self.store = TaskStore(
            TaskGenerator(seed, tasks, anchor), clock=anchor, cache_rows=cache_rows
        )
        self.faults = FaultQueue(seed if fault_seed is None else fault_seed)
        self.stats = Stats()
        self._stop = threading.Event()
        self._service = ApiService(
            store=self.store,
            keyring=self.keyring,
            limiter=SlidingWindowLimiter(rate_limit),
            faults=self.faults,
            stats=self.stats,
            settings=Settings(
                latency=latency,
                latency_jitter=latency_jitter,
                retry_after=retry_after,
                region=region,
                service=SERVICE,
                max_skew=max_clock_skew,
            ),
            stop=self._stop,
            seed=seed,
        )
        self._server: EmulatorHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- life cycle

    def start(self) -> Emulator:
        """Bind and serve in a background (daemon) thread; returns self."""
        if self._server is not None:
            return self
        self._stop.clear()
        self._server = EmulatorHTTPServer(
            (self.host, self._requested_port), self._service, ControlApi(self._service)
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"volcengine-live-emulator:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: ends stalls in progress and closes open connections."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stop.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def serve_forever(self) -> None:
        """Serve in the calling thread until :meth:`stop` is called from another."""
        self.start()
        while self._server is not None and not self._stop.wait(0.2):
            pass

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        """The bound port (after :meth:`start`; before it, the requested one)."""
        if self._server is None:
            return self._requested_port
        return int(self._server.server_address[1])

    @property
    def endpoint(self) -> str:
        """``http://HOST:PORT``: what a client's endpoint setting should be."""
        if self._server is None:
            raise RuntimeError("the emulator is not running; call start() first")
        return f"http://{self.host}:{self.port}"

    # ------------------------------------------------------------------ controls

    @property
    def latency(self) -> float:
        """Seconds added before answering every API request."""
        return self._service.settings.latency

    @latency.setter
    def latency(self, value: float) -> None:
        self._service.settings.latency = max(0.0, float(value))

    @property
    def latency_jitter(self) -> float:
        """Up to this many extra seconds (uniform, seeded) on top of :attr:`latency`."""
        return self._service.settings.latency_jitter

    @latency_jitter.setter
    def latency_jitter(self, value: float) -> None:
        self._service.settings.latency_jitter = max(0.0, float(value))

    @property
    def rate_limit(self) -> float | None:
        """Requests per second per access key (sliding one-second window); None = off."""
        return self._service.limiter.rate

    @rate_limit.setter
    def rate_limit(self, value: float | None) -> None:
        self._service.limiter.rate = value

    @property
    def retry_after(self) -> float | None:
        """Seconds sent as Retry-After with 429 answers; None (default) sends none."""
        return self._service.settings.retry_after

    @retry_after.setter
    def retry_after(self, value: float | None) -> None:
        self._service.settings.retry_after = value

    @property
    def region(self) -> str:
        return self._service.settings.region

    @property
    def hook_errors(self) -> list[BaseException]:
        """Exceptions raised by :meth:`on_request` callbacks (the request was still served)."""
        return self._service.hook_errors

    def on_request(self, callback: RequestHook | None) -> Callable[[], None]:
        """Call ``callback(page_num)`` on every accepted page request, before the page is read
        (so a task created there shows on that very page). Returns a function that removes
        it; ``on_request(None)`` removes every callback."""
        if callback is None:
            self._service.clear_hooks()
            return lambda: None
        return self._service.add_hook(callback)

    def add_credentials(
        self, access_key_id: str, secret_access_key: str, session_token: str | None = None
    ) -> None:
        """Accept another key pair (an STS key when ``session_token`` is given)."""
        self.keyring.add(access_key_id, secret_access_key, session_token)

    def remove_credentials(self, access_key_id: str) -> None:
        self.keyring.remove(access_key_id)

    def reset_rate_limit(self) -> None:
        """Forget the requests counted in the current window."""
        self._service.limiter.reset()


def _epoch(moment: datetime | float | None) -> float:
    if moment is None:
        return time.time()
    if isinstance(moment, datetime):
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        return moment.timestamp()
    return float(moment)
