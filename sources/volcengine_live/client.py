"""A client for one action of the Live API (``ListPullRecordTask`` unless told otherwise): one
signed, retried request at a time, or every page of the task list concurrently under the
action's rate limit. ``DescribeRecordTaskFileHistory`` (``record_files.py``) uses a client of
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
session does the environment lookup once, and each body is read in one call.
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
from requests.adapters import HTTPAdapter
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

from . import settings
from .errors import ApiError, ConfigurationError, RetriesExhaustedError, TransientError
from .rate_limit import RateLimiter
from .responses import Page, parse_page
from .scan import Scan
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
        action: str = settings.ACTION,
        account_limit: float = settings.ACCOUNT_REQUESTS_PER_SECOND,
        body_fields: Mapping[str, str] | None = None,
    ) -> None:
        self.config = config or ClientConfig()
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
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=2, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = "volcengine-live-dlt/0.1"
            send_settings = session.merge_environment_settings(self.url, {}, True, None, None)
            self._local.session, self._local.send_settings = session, send_settings
            with self._sessions_lock:
                self._sessions.append(session)
        return session, self._local.send_settings

    def close(self) -> None:
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

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
            self.limiter.acquire()
            retry_after: float | None = None
            try:
                page = self._attempt(body, parse)
            except ApiError as error:
                if not error.transient:
                    raise
                last_error = error
                throttled = error.http_status == 429 or error.code == "FlowLimitExceeded"
                if throttled:
                    self.limiter.throttled(retry_after=error.retry_after)
                retry_after = error.retry_after
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
            logger.warning(
                "%s: %s; retry %d of %d in %.1fs",
                what,
                _describe(last_error),
                attempt,
                self.config.max_attempts - 1,
                delay,
            )
            time.sleep(delay)
        raise RetriesExhaustedError(
            f"{what} failed {self.config.max_attempts} times in a row; last error: "
            f"{_describe(last_error)}. The API or the network is failing; run again later, or "
            "raise max_attempts or request_timeout under [sources.volcengine_live]."
        ) from last_error

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return float(min(retry_after, self.config.max_backoff_seconds))
        base: float = self.config.backoff_seconds * 2.0 ** (attempt - 1)
        return min(self.config.max_backoff_seconds, base) * random.uniform(0.5, 1.0)

    def _attempt(self, body: bytes, parse: Parse[T]) -> T:
        self.stats.count_request()
        session, send_settings = self._session()
        request = requests.Request(
            "POST", self.url, data=body, headers=_JSON, auth=self._signer
        )  # what Session.post does, less the environment lookup (see the module docstring)
        response = session.send(
            session.prepare_request(request),
            timeout=(min(10.0, self.config.request_timeout), self.config.request_timeout),
            **send_settings,
        )
        content = _read_body(response)  # a truncated body raises ChunkedEncodingError here
        self.stats.count_answer()
        return parse(response.status_code, response.headers, content)

    def scan(self, page_size: int) -> Scan:
        """Every page of the account; see :class:`Scan`."""
        return Scan(self.fetch_page, page_size, self.config.max_concurrency)


def _read_body(response: requests.Response) -> bytes:
    """The whole body of a response sent with ``stream=True``, read in one call; its
    errors raised as ``Response.content`` raises them, so retries and fault counts name
    them alike. The connection goes back to the pool once the body is read."""
    try:
        return bytes(response.raw.read(decode_content=True))
    except ProtocolError as error:
        raise requests.exceptions.ChunkedEncodingError(error) from error
    except DecodeError as error:
        raise requests.exceptions.ContentDecodingError(error) from error
    except ReadTimeoutError as error:
        raise requests.ConnectionError(error) from error
    except SSLError as error:
        raise requests.exceptions.SSLError(error) from error
    finally:
        response.close()


def _describe(error: BaseException | None) -> str:
    if isinstance(error, ApiError):
        return f"{error.code} (HTTP {error.http_status})"
    if error is None:
        return "unknown error"
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text[:200]}"
