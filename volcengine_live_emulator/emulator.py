"""The :class:`Emulator`: a local ListPullRecordTask (and DescribeRecordTaskFileHistory)
endpoint with its controls."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType

from .api import DEFAULT_REGION, SERVICE, ApiService, RequestHook, Settings
from .control import ControlApi
from .data import TaskGenerator
from .faults import FaultQueue
from .files import DEFAULT_FILE_RATE_LIMIT, SELECTIONS, RecordFiles
from .ratelimit import SlidingWindowLimiter
from .server import EmulatorHTTPServer
from .signature import DEFAULT_MAX_SKEW_SECONDS, Keyring
from .stats import Stats
from .store import DEFAULT_CACHE_ROWS, DEFAULT_LIST_ORDER, TaskStore, to_epoch

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

    ``list_order`` is one of :data:`~volcengine_live_emulator.store.LIST_ORDERS` (default
    newest-created first). ``key_rate_limits`` gives access keys (or accounts) a limit of their
    own (None = unlimited); ``accounts`` maps access keys to a shared account window.
    ``prerender`` (a page size) renders every page of that size at :meth:`start` and serves
    them from memory; ``verify_signatures=False`` skips the signature check (the access key
    named in Authorization is still what the rate limit counts).

    ``DescribeRecordTaskFileHistory`` serves the files of the finished tasks
    (:attr:`record_files`, see :mod:`volcengine_live_emulator.files`), under a limit of its
    own, ``file_rate_limit`` per access key (None: off), with its own fault queue
    (:attr:`file_faults`); ``file_selection`` is which files a window selects (``start``:
    those starting in it; ``overlap``). ``filter_tasks=False`` makes ``ListPullRecordTask``
    ignore its optional Vhost/Domain/App/Stream filters, as an older server would.
    """

    _server: EmulatorHTTPServer | None = None
    _thread: threading.Thread | None = None

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
        list_order: str = DEFAULT_LIST_ORDER,
        key_rate_limits: Mapping[str, float | None] | None = None,
        accounts: Mapping[str, str] | None = None,
        prerender: int | None = None,
        verify_signatures: bool = True,
        file_rate_limit: float | None = DEFAULT_FILE_RATE_LIMIT,
        file_selection: str = "start",
        filter_tasks: bool = True,
    ) -> None:
        _check_arguments(tasks, file_selection)
        anchor = to_epoch(now)
        self.seed = seed
        self.host = host
        self._requested_port = port
        self.keyring = _keyring(
            access_key_id, secret_access_key, session_token, credentials, session_tokens
        )
        self.store = TaskStore(
            TaskGenerator(seed, tasks, anchor), clock=anchor, cache_rows=cache_rows
        )
        self.store.set_list_order(list_order)
        self._prerender = prerender
        self.faults = FaultQueue(seed if fault_seed is None else fault_seed)
        self.file_faults = FaultQueue(seed if fault_seed is None else fault_seed)  # files' only
        self.record_files = RecordFiles(self.store, seed, file_selection)  # the files listed
        self.stats = Stats()
        self._stop = threading.Event()
        settings = Settings(
            latency=latency,
            latency_jitter=latency_jitter,
            retry_after=retry_after,
            region=region,
            service=SERVICE,
            max_skew=max_clock_skew,
            verify_signatures=verify_signatures,
            filter_tasks=filter_tasks,
        )
        limiter = _limiter(rate_limit, key_rate_limits, accounts)
        self._service = self._api_service(settings, limiter, SlidingWindowLimiter(file_rate_limit))

    def _api_service(
        self, settings: Settings, limiter: SlidingWindowLimiter, file_limiter: SlidingWindowLimiter
    ) -> ApiService:
        # The request path over this emulator's store, keys, faults and counters.
        return ApiService(
            store=self.store,
            keyring=self.keyring,
            limiter=limiter,
            faults=self.faults,
            stats=self.stats,
            settings=settings,
            stop=self._stop,
            seed=self.seed,
            record_files=self.record_files,
            file_limiter=file_limiter,
            file_faults=self.file_faults,
        )

    # ---------------------------------------------------------------- life cycle

    def start(self) -> Emulator:
        """Bind and serve in a background (daemon) thread; returns self."""
        if self._server is not None:
            return self
        if self._prerender is not None and self.store.prerender_size != self._prerender:
            self.store.prerender(self._prerender)
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
    def file_rate_limit(self) -> float | None:
        """``DescribeRecordTaskFileHistory`` requests per second per access key; None = off."""
        return self._service.file_limiter.rate

    @file_rate_limit.setter
    def file_rate_limit(self, value: float | None) -> None:
        self._service.file_limiter.rate = value

    @property
    def file_limiter(self) -> SlidingWindowLimiter:
        """The ``DescribeRecordTaskFileHistory`` limiter (its window, its counts)."""
        return self._service.file_limiter

    @property
    def filter_tasks(self) -> bool:
        """Whether ListPullRecordTask applies its optional filters (default True)."""
        return self._service.settings.filter_tasks

    @filter_tasks.setter
    def filter_tasks(self, value: bool) -> None:
        self._service.settings.filter_tasks = bool(value)

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

    @property
    def key_rate_limits(self) -> dict[str, float | None]:
        """Access keys (or accounts) with a limit of their own: name -> rate (None = none)."""
        return self._service.limiter.key_rates

    def set_key_rate_limit(self, access_key_id: str, rate: float | None) -> None:
        """Limit this access key (or account) to ``rate`` requests/s whatever
        :attr:`rate_limit` says (None: unlimited), e.g. 20/s for one client while the
        account default is 50/s."""
        self._service.limiter.set_key_rate(access_key_id, rate)

    def clear_key_rate_limit(self, access_key_id: str) -> None:
        """Back to :attr:`rate_limit` for this access key (or account)."""
        self._service.limiter.clear_key_rate(access_key_id)

    def set_account(self, access_key_id: str, account: str | None) -> None:
        """Count this key's requests in ``account``'s window (shared with every key of that
        account; an access key id names its own account); None: its own window again."""
        self._service.limiter.set_account(access_key_id, account)

    @property
    def verify_signatures(self) -> bool:
        """Whether requests must be signed correctly (default True)."""
        return self._service.settings.verify_signatures

    @verify_signatures.setter
    def verify_signatures(self, value: bool) -> None:
        self._service.settings.verify_signatures = bool(value)


def _keyring(
    access_key_id: str,
    secret_access_key: str,
    session_token: str | None,
    credentials: Mapping[str, str] | None,
    session_tokens: Mapping[str, str] | None,
) -> Keyring:
    # The main key pair, then the others (an STS key when a session token names it).
    keyring = Keyring()
    keyring.add(access_key_id, secret_access_key, session_token)
    tokens = dict(session_tokens or {})
    for key_id, secret in (credentials or {}).items():
        keyring.add(key_id, secret, tokens.get(key_id))
    return keyring


def _check_arguments(tasks: int, file_selection: str) -> None:
    if file_selection not in SELECTIONS:
        raise ValueError(f"file_selection must be one of {SELECTIONS}")
    if tasks < 0:
        raise ValueError("tasks must be >= 0")


def _limiter(
    rate_limit: float | None,
    key_rate_limits: Mapping[str, float | None] | None,
    accounts: Mapping[str, str] | None,
) -> SlidingWindowLimiter:
    """The ``ListPullRecordTask`` limit: ``rate_limit`` per key, with the keys' and accounts'
    own limits."""
    limiter = SlidingWindowLimiter(rate_limit)
    limiter.update(key_rate_limits, accounts)
    return limiter
