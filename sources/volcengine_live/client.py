"""A client for one action of the Live API (``ListPullRecordTask`` unless told otherwise): one
signed, retried request, from as many threads as ask at once, under the action's rate limit
(reading the whole task list, concurrently, is ``scan.py``'s job, above this module).
``DescribeRecordTaskFileHistory`` (``record_files.py``) uses a client of
its own, for its own limit (10/s), through :meth:`LiveApiClient.call`.

Why not dlt's retrying ``Client``: it retries by re-sending the same prepared request, so
the ``X-Date`` signed into it grows stale and a long backoff ends in ``InvalidTimestamp``;
it cannot see errors that arrive with HTTP 200 (``CommonErr``) without parsing the body; and
it has no hook to slow a rate limiter shared by all page fetches when the API answers 429.
Here each attempt is prepared and signed afresh, every body is classified, and 429s feed
the shared limiter.

Why not ``Session.post``: it looks up proxies and CA bundles in the environment on every
request, and ``Response.content`` reads the body in 10 KB chunks; together 0.7 ms of CPU a
page, 1.4 s of a million-task run's one GIL (``benchmarks/RESULTS.md``). Each thread's
session does the environment lookup once, and each body is read in one call (two at most
for a compressed one).

Why not ``request_timeout`` as the ``requests`` timeout alone: that bounds each socket read,
so a server that sends a byte a second keeps a request alive for ever. Each attempt has a
deadline instead (connect, headers and the whole body), kept by one watchdog thread per
client that shuts the attempt's socket down when it passes; that ends a read wherever it
blocks, which a check between reads cannot (``http.client`` reads the headers in a loop of
its own). Why not one ``threading.Timer`` per attempt: a thread started for every request,
0.1 ms each, where the one watchdog sleeps until the earliest deadline.

Why not urllib3's decompression: it inflates each chunk read whole, so a 255 KB gzip body
became 1.8 GB in memory before anything could look at its size. The body is inflated here
with ``zlib``'s ``max_length``, never more than ``max_response_bytes`` plus one.
"""

from __future__ import annotations

import contextlib
import heapq
import ipaddress
import itertools
import logging
import random
import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import requests
from dlt.common.json import json
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

from . import settings
from .errors import (
    ApiError,
    ConfigurationError,
    RequestDeadlineError,
    ResponseTooLargeError,
    RetriesExhaustedError,
    RunTimeoutError,
    TransientError,
)
from .rate_limit import RateLimiter
from .responses import Page, parse_page
from .settings import ClientConfig
from .signing import VolcengineSigner

if TYPE_CHECKING:
    from urllib3._base_connection import BaseHTTPConnection

__all__ = ["ClientConfig", "ClientStats", "LiveApiClient", "validate_endpoint"]

logger = logging.getLogger(__name__)

_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
_JSON = {"Content-Type": "application/json"}
_ACCEPT_ENCODING = "gzip, deflate"
"""What the body reader can inflate (urllib3 would also offer br and zstd when installed)."""
_READ_SIZE = 1 << 20
"""Largest read of a body of unknown length; a body of known length is read in one call."""
_REARM_SECONDS = 0.05
"""How soon the watchdog looks again at an attempt past its deadline that is still running
(its socket was not connected yet, or is being replaced)."""
T = TypeVar("T")
Parse = Callable[[int, Any, bytes], T]
"""``parse(status, headers, body)``: the answer's meaning, or the error it carries."""


@dataclass
class ClientStats:
    """Counters for the run summary; updated from several threads under one lock."""

    requests: int = 0
    retries: int = 0
    throttled: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    first_request_at: float | None = None
    last_answer_at: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count_request(self) -> None:
        with self._lock:
            self.requests += 1
            if self.first_request_at is None:
                self.first_request_at = time.monotonic()

    def count_answer(self) -> None:
        with self._lock:
            self.last_answer_at = time.monotonic()

    def count_retry(self, reason: str, throttled: bool) -> None:
        with self._lock:
            self.retries += 1
            self.throttled += throttled
            self.faults[reason] = self.faults.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            span = (
                self.last_answer_at - self.first_request_at
                if self.first_request_at is not None and self.last_answer_at is not None
                else 0.0
            )
            return {
                "requests": self.requests,
                "retries": self.retries,
                "throttled": self.throttled,
                "faults": dict(self.faults),
                # From the first request sent to the last answer: the rate the API saw.
                "request_seconds": round(span, 3),
            }


def validate_endpoint(endpoint: str) -> str:
    """The endpoint without a trailing slash; HTTPS unless it is on this machine, so that
    signed requests and the data never cross a network in clear text."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigurationError(
            f"endpoint {endpoint!r} is not an http(s) URL. Set [sources.volcengine_live] "
            "endpoint, e.g. https://live.volcengineapi.com"
        )
    loopback = _is_loopback(parts.hostname)
    if parts.scheme == "http" and not loopback:
        raise ConfigurationError(
            f"endpoint {endpoint!r} uses plain http to a remote host; only https is allowed "
            "there. Set [sources.volcengine_live] endpoint to an https:// URL"
        )
    return endpoint.rstrip("/")


def _is_loopback(hostname: str) -> bool:
    """An address on this machine: ``localhost`` or a loopback IP, never a DNS name that
    merely starts with ``127.`` (``127.0.0.1.nip.io`` resolves anywhere)."""
    if hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname).is_loopback
    except ValueError:
        return False


class LiveApiClient:
    """Reads ``ListPullRecordTask`` pages (or calls ``action``) with signing, retries and a
    rate limit shared by every thread of this client.

    ``account_limit`` is the action's documented limit per account (the rate limiter's
    guard depends on how close the configured rate is to it); ``body_fields`` are sent with
    every page of the task list (its optional filters)."""

    def __init__(
        self,
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None = None,
        config: ClientConfig | None = None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        action: str = settings.ACTION,
        account_limit: float = settings.ACCOUNT_REQUESTS_PER_SECOND,
        body_fields: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config or ClientConfig()
        self._sleep = sleep  # injectable, as the rate limiter's: tests wait without waiting
        self.endpoint = validate_endpoint(self.config.endpoint)
        self.action = action
        self.body_fields = dict(body_fields or {})
        self.url = f"{self.endpoint}/?Action={action}&Version={settings.API_VERSION}"
        self._signer = VolcengineSigner(
            access_key_id,
            secret_access_key,
            session_token,
            region=self.config.region,
            service=self.config.service,
        )
        self.limiter = RateLimiter(self.config.requests_per_second, account_limit=account_limit)
        self.stats = ClientStats()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()
        self._watchdog = _Watchdog()
        self._run_started: float | None = None

    def __repr__(self) -> str:
        endpoint = getattr(self, "endpoint", None)
        return f"LiveApiClient(endpoint={endpoint!r}, signer={getattr(self, '_signer', None)!r})"

    def _session(self) -> tuple[requests.Session, dict[str, Any]]:
        """This thread's session, and what ``Session.send`` needs from the environment
        (proxies, CA bundle), looked up when the session was made."""
        # requests.Session is not documented as thread-safe: one per worker thread.
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = _WatchedAdapter(pool_connections=1, pool_maxsize=2, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = "volcengine-live-dlt/0.1"
            session.headers["Accept-Encoding"] = _ACCEPT_ENCODING
            send_settings = session.merge_environment_settings(self.url, {}, True, None, None)
            self._local.session, self._local.send_settings = session, send_settings
            with self._sessions_lock:
                self._sessions.append(session)
        return session, self._local.send_settings

    def close(self) -> None:
        """Close the connections and the watchdog; a later page starts a new run (its
        ``run_timeout`` counted afresh)."""
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()
            self._run_started = None
        self._watchdog.close()

    def run_deadline(self) -> float | None:
        """When the run must end (``time.monotonic()``), counted from its first request;
        None without a ``run_timeout``."""
        if self.config.run_timeout is None:
            return None
        with self._sessions_lock:
            if self._run_started is None:
                self._run_started = time.monotonic()
            return self._run_started + self.config.run_timeout

    def _check_run_deadline(self, what: str, last_error: Exception | None) -> None:
        """Fail the run once its deadline has passed: checked before each request and
        each wait, so it ends one request late at most (and that request is cut short)."""
        deadline = self.run_deadline()
        if deadline is None or time.monotonic() < deadline:
            return
        last = f" The last fault: {_describe(last_error)}." if last_error else ""
        raise RunTimeoutError(
            f"The run took longer than run_timeout ({self.config.run_timeout:g} s) and was "
            f"stopped while reading {what.lower()}; nothing of it was committed, so the next "
            f"run starts where the last complete one ended.{last} Raise run_timeout under "
            "[sources.volcengine_live] if the account needs longer, or look at the API's "
            "speed and the warnings above."
        ) from last_error

    def fetch_page(self, page_num: int, page_size: int) -> Page:
        """One page of the task list, retrying transient faults with exponential backoff;
        each attempt is signed afresh. Permanent errors raise :class:`ApiError` at once."""
        if self.body_fields:
            fields = {"PageNum": int(page_num), "PageSize": int(page_size), **self.body_fields}
            body = json.dumps(fields).encode()
        else:  # the usual body, without a JSON encoder's cost per page
            body = f'{{"PageNum": {int(page_num)}, "PageSize": {int(page_size)}}}'.encode()

        def parse(status: int, headers: Any, content: bytes) -> Page:
            return parse_page(status, headers, content, page_num, page_size)

        return self.call(body, parse, f"Page {page_num}")

    def call(self, body: bytes, parse: Parse[T], what: str) -> T:
        """One request of this client's action with ``body``, its answer read by ``parse``;
        transient faults retried as for a page, ``what`` naming the request in logs and
        errors."""
        last_error: Exception | None = None
        for attempt in range(1, self.config.max_attempts + 1):
            self._check_run_deadline(what, last_error)
            self.limiter.acquire()
            self._check_run_deadline(what, last_error)
            retry_after: float | None = None
            try:
                page = self._attempt(body, parse, what)
            except ApiError as error:
                if not error.transient:
                    raise
                last_error = error
                throttled = error.http_status == 429 or error.code == "FlowLimitExceeded"
                if error.retry_after is not None:
                    # The limiter pauses every thread this long, and this thread sleeps it
                    # too: capped alike, so the wait is the one the log announces.
                    retry_after = min(error.retry_after, self.config.max_backoff_seconds)
                if throttled:
                    self.limiter.throttled(retry_after=retry_after)
                reason = error.code
            except TransientError as error:
                last_error, throttled, reason = error, False, type(error).__name__
            except _NETWORK_ERRORS as error:
                last_error, throttled, reason = error, False, type(error).__name__
            else:
                self.limiter.succeeded()
                return page
            if attempt == self.config.max_attempts:
                break
            self.stats.count_retry(reason, throttled)
            delay = self._backoff(attempt, retry_after)
            deadline = self.run_deadline()
            if deadline is not None and time.monotonic() + delay >= deadline:
                self._sleep(max(0.0, deadline - time.monotonic()))  # no retry would start
                self._check_run_deadline(what, last_error)
            logger.warning(
                "%s: %s; retry %d of %d in %.1fs",
                what,
                _describe(last_error),
                attempt,
                self.config.max_attempts - 1,
                delay,
            )
            self._sleep(delay)
        raise RetriesExhaustedError(
            f"{what} failed {self.config.max_attempts} times in a row; last error: "
            f"{_describe(last_error)}. The API or the network is failing; run again later, or "
            "raise max_attempts or request_timeout under [sources.volcengine_live]."
        ) from last_error

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return float(retry_after)  # capped at max_backoff_seconds already
        base: float = self.config.backoff_seconds * 2.0 ** (attempt - 1)
        return min(self.config.max_backoff_seconds, base) * random.uniform(0.5, 1.0)

    def _attempt(self, body: bytes, parse: Parse[T], what: str) -> T:
        self.stats.count_request()
        session, send_settings = self._session()
        request = requests.Request(
            "POST", self.url, data=body, headers=_JSON, auth=self._signer
        )  # what Session.post does, less the environment lookup (see the module docstring)
        prepared = session.prepare_request(request)
        timeout = self.config.request_timeout
        started = time.monotonic()
        run_deadline = self.run_deadline()
        watched = _Attempt(min(started + timeout, run_deadline or float("inf")))
        _current.attempt = watched
        self._watchdog.watch(watched)
        try:
            # Each read is bounded too, a second past the deadline: a net under the
            # watchdog (should a platform not end a read on shutdown) that never beats it,
            # so an attempt at its deadline always ends as a RequestDeadlineError.
            left = max(0.001, watched.deadline - started)
            response = session.send(
                prepared, timeout=(min(10.0, left), left + 1.0), **send_settings
            )
            content = _read_body(response, self.config.max_response_bytes, what, watched)
        except (*_NETWORK_ERRORS, TransientError) as error:
            if watched.expired or time.monotonic() >= watched.deadline:
                raise RequestDeadlineError(
                    f"{what} was not answered in whole within its deadline of "
                    f"{watched.deadline - started:.3g} s (request_timeout {timeout:g} s, for "
                    "connect, headers and the whole body: the server is stalled or sends "
                    "its answer a trickle at a time)"
                ) from error
            raise
        finally:
            watched.finish()
            _current.attempt = None
        self.stats.count_answer()
        return parse(response.status_code, response.headers, content)


def _read_body(response: requests.Response, limit: int, what: str, watched: _Attempt) -> bytes:
    """The whole body of a response sent with ``stream=True``, inflated, at most ``limit``
    bytes (:class:`ResponseTooLargeError` past it, before more is inflated); its errors
    raised as ``Response.content`` raises them, so retries and fault counts name them
    alike. A body of known length is read in one call. The connection goes back to the pool
    once the body is read, and is closed when it is not read whole."""
    raw = response.raw
    try:
        inflater = _Inflater(response.headers.get("Content-Encoding"))
        if inflater.identity and (raw.length_remaining or 0) > limit:
            raise _too_large(what, limit)  # said before a byte is read
        parts: list[bytes] = []
        size = 0
        while True:
            # All that is announced in one call, never more than the room left (an
            # announced length is the server's word, and may be a lie).
            want = min(raw.length_remaining or _READ_SIZE, limit - size + 1)
            chunk = raw.read(want, decode_content=False)
            if not chunk:
                break
            for part in inflater.inflate(chunk, limit - size):
                size += len(part)
                if size > limit:
                    raise _too_large(what, limit)
                parts.append(part)
        # The body is in: the connection may serve another request from here on (urllib3
        # gave it back at the end of the body), so the watchdog must leave it alone.
        watched.finish()
        return b"".join(parts)
    except ProtocolError as error:
        raise requests.exceptions.ChunkedEncodingError(error) from error
    except (DecodeError, zlib.error) as error:
        raise requests.exceptions.ContentDecodingError(error) from error
    except ReadTimeoutError as error:
        raise requests.ConnectionError(error) from error
    except SSLError as error:
        raise requests.exceptions.SSLError(error) from error
    finally:
        response.close()


def _too_large(what: str, limit: int) -> ResponseTooLargeError:
    return ResponseTooLargeError(
        f"{what}: the response is larger than max_response_bytes ({limit:,} bytes) "
        "once decompressed, where a page of 500 tasks is about 100 KB: the endpoint is not "
        "the API, or a proxy or server misbehaves. Check [sources.volcengine_live] endpoint "
        "and any proxy (HTTPS_PROXY); raise max_response_bytes only if real pages are this "
        "large."
    )


class _Inflater:
    """A body's ``Content-Encoding`` undone (gzip, with several members as RFC 1952 allows;
    deflate, zlib-wrapped or raw; none), never producing more than asked for."""

    def __init__(self, encoding: str | None) -> None:
        name = (encoding or "identity").strip().lower()
        if name not in ("identity", "gzip", "x-gzip", "deflate"):
            raise requests.exceptions.ContentDecodingError(
                f"the server sent Content-Encoding {name[:40]!r}, where {_ACCEPT_ENCODING} "
                "was asked for"
            )
        self._wbits: int | None = None if name == "identity" else 15 if name == "deflate" else 31
        self._raw_fallback = name == "deflate"  # some servers send raw deflate, no zlib header
        self._decompressor = zlib.decompressobj(self._wbits) if self._wbits else None
        self.identity = self._decompressor is None

    def inflate(self, data: bytes, room: int) -> Iterator[bytes]:
        """``data`` decoded, in pieces of at most ``_READ_SIZE``: all of it, or once more
        than ``room`` bytes came out, no more (the caller stops there)."""
        decompressor = self._decompressor
        if decompressor is None:
            yield data
            return
        budget = max(room, 0) + 1
        pending = data
        while budget > 0:
            step = min(budget, _READ_SIZE)
            try:
                piece = decompressor.decompress(pending, step)
            except zlib.error:
                if not self._raw_fallback:
                    raise
                self._raw_fallback = False
                decompressor = self._decompressor = zlib.decompressobj(-15)
                continue
            self._raw_fallback = False
            budget -= len(piece)
            yield piece
            if decompressor.eof:  # a gzip member ended; another may follow
                pending = decompressor.unused_data
                if not pending or self._wbits != 31:
                    return
                decompressor = self._decompressor = zlib.decompressobj(31)
            else:
                pending = decompressor.unconsumed_tail
                # A full piece may leave output in zlib's state with no input left:
                # ask again; a short one means all of it is out.
                if not pending and len(piece) < step:
                    return


class _Attempt:
    """One request in flight, as the watchdog sees it: its deadline, and the connection
    it uses once urllib3 has picked one."""

    __slots__ = ("_lock", "connection", "deadline", "expired", "finished")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.connection: BaseHTTPConnection | None = None
        self.expired = False
        self.finished = False
        self._lock = threading.Lock()

    def expire(self) -> bool:
        """The deadline has passed: cut the attempt short by shutting its socket down,
        which ends a blocked read at once (closing it would not); whether to look again."""
        with self._lock:
            if self.finished:
                return False
            self.expired = True
            sock = getattr(self.connection, "sock", None)
            if isinstance(sock, socket.socket):
                # socket.socket's own shutdown: an SSLSocket's would also drop its TLS state
                # under the reading thread.
                with contextlib.suppress(OSError):
                    socket.socket.shutdown(sock, socket.SHUT_RDWR)
            return True  # not connected yet, or reconnecting: look again shortly

    def finish(self) -> None:
        with self._lock:
            self.finished = True


class _Watchdog:
    """One thread per client, started on first use, that sleeps until the earliest
    deadline of the attempts in flight and cuts short those still running at it. Finished
    attempts are dropped when their deadline comes up, not searched for when they finish."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, _Attempt]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False

    def watch(self, attempt: _Attempt) -> None:
        with self._changed:
            heapq.heappush(self._due, (attempt.deadline, next(self._order), attempt))
            if self._thread is None:
                self._closing = False
                self._thread = threading.Thread(
                    target=self._run, name="volc-live-watchdog", daemon=True
                )
                self._thread.start()
            elif self._due[0][2] is attempt:  # earlier than what the thread sleeps until
                self._changed.notify()

    def close(self) -> None:
        with self._changed:
            thread, self._thread = self._thread, None
            self._closing = True
            self._changed.notify()
        if thread is not None:
            thread.join(timeout=5)

    def _run(self) -> None:
        with self._changed:
            while not self._closing:
                if not self._due:
                    self._changed.wait()
                    continue
                deadline, _, attempt = self._due[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._changed.wait(wait)
                    continue
                heapq.heappop(self._due)
                if attempt.expire():
                    again = time.monotonic() + _REARM_SECONDS
                    heapq.heappush(self._due, (again, next(self._order), attempt))
            self._due.clear()


_current = threading.local()
"""The attempt this thread is making, for the connection pool to record its connection."""


class _WatchedHTTPPool(HTTPConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> BaseHTTPConnection:
        connection = super()._get_conn(timeout)
        attempt: _Attempt | None = getattr(_current, "attempt", None)
        if attempt is not None:
            attempt.connection = connection
        return connection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    _get_conn = _WatchedHTTPPool._get_conn


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class _WatchedAdapter(HTTPAdapter):
    """An adapter whose pools (a proxy's included) tell the watchdog which connection an
    attempt uses."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


def _describe(error: BaseException | None) -> str:
    if isinstance(error, ApiError):
        return f"{error.code} (HTTP {error.http_status})"
    if error is None:
        return "unknown error"
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text[:200]}"
