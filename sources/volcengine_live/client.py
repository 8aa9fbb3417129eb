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

Why not ``request_timeout`` as the ``requests`` timeout alone, or urllib3's decompression: see
``transport.py``, which bounds each attempt's time and body.
"""

from __future__ import annotations

import ipaddress
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from dlt.common.json import json

from . import settings, transport
from .errors import (
    ApiError,
    ConfigurationError,
    RequestDeadlineError,
    RetriesExhaustedError,
    RunTimeoutError,
    TransientError,
)
from .rate_limit import RateLimiter
from .responses import Page, parse_page
from .settings import ClientConfig
from .signing import VolcengineSigner

__all__ = ["ClientConfig", "ClientStats", "LiveApiClient", "validate_endpoint"]

logger = logging.getLogger(__name__)

_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)
_JSON = {"Content-Type": "application/json"}
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
        self._watchdog = transport.Watchdog()
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
            adapter = transport.WatchedAdapter(pool_connections=1, pool_maxsize=2, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = "volcengine-live-dlt/0.1"
            session.headers["Accept-Encoding"] = transport.ACCEPT_ENCODING
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
        watched = transport.Attempt(min(started + timeout, run_deadline or float("inf")))
        transport.current.attempt = watched
        self._watchdog.watch(watched)
        try:
            # Each read is bounded too, a second past the deadline: a net under the
            # watchdog (should a platform not end a read on shutdown) that never beats it,
            # so an attempt at its deadline always ends as a RequestDeadlineError.
            left = max(0.001, watched.deadline - started)
            response = session.send(
                prepared, timeout=(min(10.0, left), left + 1.0), **send_settings
            )
            content = transport.read_body(response, self.config.max_response_bytes, what, watched)
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
            transport.current.attempt = None
        self.stats.count_answer()
        return parse(response.status_code, response.headers, content)


def _describe(error: BaseException | None) -> str:
    if isinstance(error, ApiError):
        return f"{error.code} (HTTP {error.http_status})"
    if error is None:
        return "unknown error"
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text[:200]}"
