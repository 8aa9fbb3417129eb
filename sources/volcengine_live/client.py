"""A client for ``ListPullRecordTask``: one signed, retried page at a time, or every page
of the account concurrently under the account's rate limit.

Why not dlt's retrying ``Client``: it retries by re-sending the same prepared request, so
the ``X-Date`` signed into it grows stale and a long backoff ends in ``InvalidTimestamp``;
it cannot see errors that arrive with HTTP 200 (``CommonErr``) without parsing the body; and
it has no hook to slow a rate limiter shared by all page fetches when the API answers 429.
Here each attempt is prepared and signed afresh, every body is classified, and 429s feed
the shared limiter.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import math
import random
import threading
import time
from array import array
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import pyarrow as pa
import pyarrow.compute as pc
import requests
from requests.adapters import HTTPAdapter

from . import settings
from .errors import (
    ApiError,
    ConfigurationError,
    MalformedResponseError,
    RetriesExhaustedError,
    TransientError,
)
from .rate_limit import RateLimiter
from .signing import VolcengineSigner

try:  # orjson parses a 500-row page several times faster; dlt installs it on most platforms
    import orjson

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

    _JSON_ERRORS: tuple[type[Exception], ...] = (orjson.JSONDecodeError, UnicodeDecodeError)
except ImportError:  # pragma: no cover - depends on the platform

    def _loads(data: bytes) -> Any:
        return json.loads(data)

    _JSON_ERRORS = (ValueError, UnicodeDecodeError)

logger = logging.getLogger(__name__)

_NETWORK_ERRORS = (
    requests.ConnectionError,
    requests.Timeout,
    requests.exceptions.ChunkedEncodingError,
    requests.exceptions.ContentDecodingError,
)


@dataclass(frozen=True)
class Page:
    """One page of tasks as the API returned it."""

    page_num: int
    page_size: int
    tasks: list[Any]
    total_count: int
    fetched_at: float


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


@dataclass
class ClientConfig:
    endpoint: str = settings.DEFAULT_ENDPOINT
    region: str = settings.DEFAULT_REGION
    service: str = settings.SERVICE
    request_timeout: float = settings.DEFAULT_REQUEST_TIMEOUT
    max_attempts: int = settings.DEFAULT_MAX_ATTEMPTS
    backoff_seconds: float = settings.DEFAULT_BACKOFF_SECONDS
    max_backoff_seconds: float = settings.DEFAULT_MAX_BACKOFF_SECONDS
    requests_per_second: float | None = settings.DEFAULT_REQUESTS_PER_SECOND
    max_concurrency: int = settings.DEFAULT_MAX_CONCURRENCY


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
    """Reads ``ListPullRecordTask`` pages with signing, retries and a shared rate limit."""

    def __init__(
        self,
        access_key_id: str,
        secret_access_key: str,
        session_token: str | None = None,
        config: ClientConfig | None = None,
    ) -> None:
        self.config = config or ClientConfig()
        self.endpoint = validate_endpoint(self.config.endpoint)
        self.url = f"{self.endpoint}/?Action={settings.ACTION}&Version={settings.API_VERSION}"
        self._signer = VolcengineSigner(
            access_key_id,
            secret_access_key,
            session_token,
            region=self.config.region,
            service=self.config.service,
        )
        self.limiter = RateLimiter(self.config.requests_per_second)
        self.stats = ClientStats()
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    def __repr__(self) -> str:
        endpoint = getattr(self, "endpoint", None)
        return f"LiveApiClient(endpoint={endpoint!r}, signer={getattr(self, '_signer', None)!r})"

    def _session(self) -> requests.Session:
        # requests.Session is not documented as thread-safe: one per worker thread.
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            adapter = HTTPAdapter(pool_connections=1, pool_maxsize=2, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            session.headers["User-Agent"] = "volcengine-live-dlt/0.1"
            self._local.session = session
            with self._sessions_lock:
                self._sessions.append(session)
        return session

    def close(self) -> None:
        with self._sessions_lock:
            for session in self._sessions:
                session.close()
            self._sessions.clear()

    def fetch_page(self, page_num: int, page_size: int) -> Page:
        """One page, retrying transient faults with exponential backoff; each attempt is
        signed afresh. Permanent errors raise :class:`ApiError` at once."""
        body = f'{{"PageNum": {int(page_num)}, "PageSize": {int(page_size)}}}'.encode()
        last_error: Exception | None = None
        for attempt in range(1, self.config.max_attempts + 1):
            self.limiter.acquire()
            retry_after: float | None = None
            try:
                page = self._attempt(page_num, page_size, body)
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
                "Page %d: %s; retry %d of %d in %.1fs",
                page_num,
                _describe(last_error),
                attempt,
                self.config.max_attempts - 1,
                delay,
            )
            time.sleep(delay)
        raise RetriesExhaustedError(
            f"Page {page_num} failed {self.config.max_attempts} times in a row; last error: "
            f"{_describe(last_error)}. The API or the network is failing; run again later, or "
            "raise max_attempts or request_timeout under [sources.volcengine_live]."
        ) from last_error

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return float(min(retry_after, self.config.max_backoff_seconds))
        base: float = self.config.backoff_seconds * 2.0 ** (attempt - 1)
        return min(self.config.max_backoff_seconds, base) * random.uniform(0.5, 1.0)

    def _attempt(self, page_num: int, page_size: int, body: bytes) -> Page:
        self.stats.count_request()
        response = self._session().post(
            self.url,
            data=body,
            headers={"Content-Type": "application/json"},
            auth=self._signer,
            timeout=(min(10.0, self.config.request_timeout), self.config.request_timeout),
        )
        content = response.content  # a truncated body raises ChunkedEncodingError here
        self.stats.count_answer()
        return parse_page(response.status_code, response.headers, content, page_num, page_size)

    def scan(self, page_size: int) -> Scan:
        """Every page of the account; see :class:`Scan`."""
        return Scan(self, page_size)


def _describe(error: BaseException | None) -> str:
    if isinstance(error, ApiError):
        return f"{error.code} (HTTP {error.http_status})"
    if error is None:
        return "unknown error"
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text[:200]}"


def _retry_after_seconds(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def parse_page(status: int, headers: Any, content: bytes, page_num: int, page_size: int) -> Page:
    """Classify one HTTP answer: a :class:`Page`, or the error it carries."""
    try:
        document = _loads(content) if content else None
    except _JSON_ERRORS:
        document = None
    metadata = document.get("ResponseMetadata") if isinstance(document, dict) else None
    error = metadata.get("Error") if isinstance(metadata, dict) else None
    if isinstance(error, dict) and error.get("Code"):
        raise ApiError(
            code=str(error.get("Code")),
            message=str(error.get("Message", ""))[:500],
            http_status=status,
            code_n=error.get("CodeN") if isinstance(error.get("CodeN"), int) else None,
            request_id=str(metadata.get("RequestId")) if isinstance(metadata, dict) else None,
            retry_after=_retry_after_seconds(headers.get("Retry-After")),
        )
    if status != 200:
        snippet = content[:120].decode("utf-8", "replace").replace("\n", " ")
        if status == 429 or status >= 500 or status == 408:
            raise TransientError(f"HTTP {status} without an API error body: {snippet!r}")
        raise ApiError(
            code=f"HTTP{status}",
            message=f"HTTP {status} without an API error body: {snippet!r}",
            http_status=status,
        )
    if document is None:
        raise MalformedResponseError(
            f"HTTP 200 with a body that is not JSON ({len(content)} bytes)"
        )
    result = document.get("Result") if isinstance(document, dict) else None
    if not isinstance(result, dict):
        raise MalformedResponseError("response has no Result object and no Error")
    tasks = result.get("List")
    if tasks is None:
        tasks = []
    if not isinstance(tasks, list):
        raise MalformedResponseError(f"Result.List is a {type(tasks).__name__}, not a list")
    pagination = result.get("Pagination")
    total = pagination.get("TotalCount") if isinstance(pagination, dict) else None
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise MalformedResponseError("Result.Pagination.TotalCount is missing or not a count")
    return Page(page_num, page_size, tasks, total, time.time())


@dataclass
class ScanReport:
    """What one pass over the list saw: enough to tell whether it is complete."""

    pages: int = 0
    rows: int = 0
    total_counts: set[int] = field(default_factory=set)
    first_total: int | None = None
    task_id_hashes: array[int] = field(default_factory=lambda: array("q"))
    """In-process hashes of every TaskId seen: 8 bytes a task, to count distinct tasks."""

    def account(self, page: Page) -> None:
        self.pages += 1
        self.rows += len(page.tasks)
        self.total_counts.add(page.total_count)
        tasks = page.tasks
        try:
            ids = [task["TaskId"] for task in tasks]
        except (KeyError, TypeError):  # a record without a TaskId, or not an object
            ids = []
        if len(ids) == len(tasks) and (not ids or set(map(type, ids)) == {str}) and "" not in ids:
            # The usual page, hashed without a Python call per task: this runs on the main
            # thread for every task of every pass.
            self.task_id_hashes.extend(map(hash, ids))
        else:
            self.task_id_hashes.extend(_identity(task) for task in tasks)

    @property
    def distinct_tasks(self) -> int:
        return distinct_count(self.task_id_hashes)

    @property
    def stable(self) -> bool:
        """The list did not change under the scan, and every promised task arrived."""
        return (
            len(self.total_counts) == 1
            and self.first_total is not None
            and self.distinct_tasks >= self.first_total
        )


def _identity(task: Any) -> int:
    """What makes a record one task when counting distinct tasks: its TaskId, or for a
    record without a usable one (set aside as a reject) the record itself, so that several
    such records still count as several."""
    task_id = task.get("TaskId") if isinstance(task, dict) else None
    if isinstance(task_id, str) and task_id:
        return hash(task_id)
    return hash(json.dumps(task, sort_keys=True, default=str))


def distinct_count(hashes: array[int]) -> int:
    """Distinct values in ``hashes``, by sorting in Arrow: about 3 bytes of scratch per
    byte of input, where a Python set or Arrow's hash-based count takes ten times that."""
    if len(hashes) < 2:
        return len(hashes)
    values = pa.Array.from_buffers(pa.int64(), len(hashes), [None, pa.py_buffer(hashes)])
    ordered = pc.take(values, pc.array_sort_indices(values))
    changes = pc.not_equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))
    return 1 + int(pc.sum(changes).as_py() or 0)


class Scan:
    """One pass over every page, fetched concurrently; iterate it for :class:`Page` objects.

    Page 1 comes first (it tells ``TotalCount``); the rest arrive as they complete, in no
    particular order. The end of the list is where ``TotalCount`` and the page size put it,
    and pages past it are read while they keep coming back full, in case the list grew.
    After iterating, :attr:`report` says whether the pass was complete.

    Why a pool of our own rather than ``dlt.defer``: the scan must see every page's
    ``TotalCount`` and row count to decide whether the list shifted and must be re-read,
    and deferred items go straight into dlt's pipe, out of the generator's sight.
    """

    def __init__(self, client: LiveApiClient, page_size: int) -> None:
        self.client = client
        self.page_size = page_size
        self.report = ScanReport()

    def __iter__(self) -> Iterator[Page]:
        first = self.client.fetch_page(1, self.page_size)
        self.report.first_total = first.total_count
        self.report.account(first)
        yield first
        if len(first.tasks) < self.page_size:
            if first.total_count > len(first.tasks):
                # A short first page while more rows are promised: the list moved or the
                # server cut the page. Read on sequentially and let the report judge.
                yield from self._read_on(2)
            return
        last_page = max(1, math.ceil(first.total_count / self.page_size))
        if first.total_count % self.page_size == 0:
            # The last page will be full: the page after it (empty unless the list grew)
            # must be read too, and is read with the others rather than after them.
            last_page += 1
        workers = max(1, self.client.config.max_concurrency)
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="volc-live-page")
        pending: set[Future[Page]] = set()
        next_page = 2
        highest_full_page = 1
        try:
            while next_page <= last_page or pending:
                while next_page <= last_page and len(pending) < workers * 2:
                    pending.add(pool.submit(self.client.fetch_page, next_page, self.page_size))
                    next_page += 1
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    page = future.result()
                    self.report.account(page)
                    if len(page.tasks) >= self.page_size:
                        highest_full_page = max(highest_full_page, page.page_num)
                    yield page
        finally:
            for future in pending:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
        if highest_full_page == last_page:  # still full at the end: the list grew
            yield from self._read_on(last_page + 1)

    def _read_on(self, page_num: int) -> Iterator[Page]:
        while True:
            page = self.client.fetch_page(page_num, self.page_size)
            self.report.account(page)
            yield page
            if len(page.tasks) < self.page_size:
                return
            page_num += 1
