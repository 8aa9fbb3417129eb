"""The emulated ``ListPullRecordTask`` endpoint (and ``DescribeRecordTaskFileHistory``, see
:mod:`volcengine_live_emulator.files`): one request in, one :class:`Response` out.

Nothing here touches sockets; :mod:`volcengine_live_emulator.server` does the HTTP. The order
of checks is the gateway's: route (Action/Version), signature, rate limit (each action its
own), body validation; then the request hook, the fault queue (each action its own), and
finally the page itself.
"""

from __future__ import annotations

import functools
import json
import math
import os
import random
import sys
import threading
import time
import traceback
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from .errors import ApiFailure, error_envelope
from .faults import ENVELOPE_KINDS, Fault, FaultQueue
from .files import FILE_ACTION, RecordFiles, parse_file_request
from .ratelimit import SlidingWindowLimiter
from .signature import DEFAULT_MAX_SKEW_SECONDS, Keyring, claimed_access_key, verify_request
from .stats import Stats
from .store import TaskStore
from .task_filters import FilteredTasks, Filters, parse_task_filters

ACTION = "ListPullRecordTask"
VERSION = "2023-01-01"
DEFAULT_REGION = "cn-north-1"
SERVICE = "live"
MAX_PAGE_SIZE = 500
DEFAULT_PAGE_SIZE = 20
_INT64_MAX = (1 << 63) - 1

JSON_TYPE = "application/json; charset=utf-8"

PROXY_502_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)

RequestHook = Callable[[int], object]
"""Called with the PageNum of every accepted page request, before the page is read."""


@dataclass
class Response:
    """What to send back. ``drop`` replaces a normal answer by a network fault; ``chunks``
    streams a body of unknown length (chunked transfer encoding); ``paced`` sends ``body``'s
    Content-Length, then the pieces it yields as they come (they add up to ``body`` unless
    the emulator stops)."""

    status: int
    body: bytes = b""
    content_type: str = JSON_TYPE
    headers: dict[str, str] = field(default_factory=dict)
    drop: Literal["reset", "truncate"] | None = None
    chunks: Iterator[bytes] | None = None
    paced: Iterator[bytes] | None = None


@dataclass
class Settings:
    """Knobs that may change while serving (each read once per request)."""

    latency: float = 0.0
    latency_jitter: float = 0.0
    retry_after: float | None = None
    region: str = DEFAULT_REGION
    service: str = SERVICE
    max_skew: float = DEFAULT_MAX_SKEW_SECONDS
    verify_signatures: bool = True
    filter_tasks: bool = True
    """Whether ``ListPullRecordTask`` applies its optional filters (a server that predates
    them ignores them)."""


def parse_page_request(body: bytes) -> tuple[int, int]:
    """``(PageNum, PageSize)`` from a request body, with the API's defaults and limits.

    Binding is Go-like, as the real service's: keys match case-insensitively, a wrong type
    (string, float, bool) is ``InvalidParam.BindError``, null or absent means the default;
    a value out of range is ``InvalidParam`` naming the parameter. An empty body is ``{}``.
    """
    if body.strip():
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiFailure(
                "InvalidParam.BindError",
                f"Request parameter error, please check input data: body is not JSON ({exc})",
            ) from None
    else:
        data = {}
    if not isinstance(data, dict):
        raise ApiFailure(
            "InvalidParam.BindError",
            "Request parameter error, please check input data: body must be a JSON object",
        )
    page_num = _int_field(data, "PageNum", 1)
    page_size = _int_field(data, "PageSize", DEFAULT_PAGE_SIZE)
    if page_num < 1:
        raise ApiFailure("InvalidParam", f"PageNum must be a positive integer, got {page_num}")
    if not 1 <= page_size <= MAX_PAGE_SIZE:
        raise ApiFailure(
            "InvalidParam", f"PageSize must be between 1 and {MAX_PAGE_SIZE}, got {page_size}"
        )
    return page_num, page_size


def _int_field(data: Mapping[str, Any], name: str, default: int) -> int:
    if name in data:
        value = data[name]
    else:
        lowered = name.lower()
        matches = [value for key, value in data.items() if key.lower() == lowered]
        value = matches[-1] if matches else None
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > _INT64_MAX:
        raise ApiFailure(
            "InvalidParam.BindError",
            f"Request parameter error, please check input data: {name} must be an integer, "
            f"got {json.dumps(value, ensure_ascii=False)}",
        )
    return value


def _request_id() -> str:
    # Real ids: Beijing time to the second, then 20 upper-case hex characters.
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(time.time() + 8 * 3600))
    return stamp + os.urandom(10).hex().upper()


class ApiService:
    """Answers ListPullRecordTask requests from a store, checking signature, rate limit and
    parameters, and applying latency and queued faults."""

    def __init__(
        self,
        *,
        store: TaskStore,
        keyring: Keyring,
        limiter: SlidingWindowLimiter,
        faults: FaultQueue,
        stats: Stats,
        settings: Settings,
        stop: threading.Event,
        seed: int = 0,
        record_files: RecordFiles | None = None,
        file_limiter: SlidingWindowLimiter | None = None,
        file_faults: FaultQueue | None = None,
    ) -> None:
        self.store = store
        # `is None`, not `or`: an empty fault queue is falsy
        self.record_files = RecordFiles(store, seed) if record_files is None else record_files
        self.file_limiter = SlidingWindowLimiter(None) if file_limiter is None else file_limiter
        self.file_faults = FaultQueue(seed) if file_faults is None else file_faults
        self.filtered = FilteredTasks(store)
        self.keyring = keyring
        self.limiter = limiter
        self.faults = faults
        self.stats = stats
        self.settings = settings
        self.stop = stop
        self.hooks: list[RequestHook] = []
        self.hook_errors: list[BaseException] = []
        self._hooks_lock = threading.Lock()
        self._jitter = random.Random(f"latency-{seed}")

    def add_hook(self, hook: RequestHook) -> Callable[[], None]:
        with self._hooks_lock:
            self.hooks.append(hook)

        def remove() -> None:
            with self._hooks_lock:
                if hook in self.hooks:
                    self.hooks.remove(hook)

        return remove

    def clear_hooks(self) -> None:
        with self._hooks_lock:
            self.hooks.clear()

    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes) -> Response:
        """Answer one API request. ``headers`` are keyed by lower-case name."""
        settings = self.settings
        parts = urlsplit(target)
        query = parse_qsl(parts.query, keep_blank_values=True)
        params = dict(query)
        metadata = {
            "RequestId": _request_id(),
            "Action": params.get("Action", ""),
            "Version": params.get("Version", ""),
            "Service": settings.service,
            "Region": settings.region,
        }
        delay = settings.latency
        if settings.latency_jitter > 0:
            delay += self._jitter.uniform(0.0, settings.latency_jitter)
        if delay > 0:
            self.stop.wait(delay)
        try:
            action = params.get("Action")
            if action not in (ACTION, FILE_ACTION) or params.get("Version") != VERSION:
                raise ApiFailure(
                    "InvalidActionOrVersion",
                    action=params.get("Action", ""),
                    version=params.get("Version", ""),
                )
            if method != "POST" or parts.path not in ("", "/"):
                raise ApiFailure(
                    "InvalidActionOrVersion",
                    f"Could not find operation {action} for version {VERSION} at "
                    f"{method} {parts.path or '/'}; it is served by POST /.",
                )
            if settings.verify_signatures:
                access_key_id = verify_request(
                    method=method,
                    path=parts.path or "/",
                    query=query,
                    headers=headers,
                    body=body,
                    keyring=self.keyring,
                    region=settings.region,
                    service=settings.service,
                    now=time.time(),
                    max_skew=settings.max_skew,
                )
            else:
                access_key_id = claimed_access_key(headers)
            limiter = self.file_limiter if action == FILE_ACTION else self.limiter
            if not limiter.allow(access_key_id):
                raise ApiFailure("FlowLimitExceeded", headers=_retry_after(settings.retry_after))
            if action == FILE_ACTION:
                return self._files(metadata, body)
            page_num, page_size = parse_page_request(body)
            filters = parse_task_filters(body) if settings.filter_tasks else ()
            self._run_hooks(page_num)
            self.store.on_api_request()
            fault = self.faults.take(page_num)
            if fault is not None:
                self.stats.record_fault(fault.kind)
                answer = self._fault(fault, metadata, page_num, page_size)
                if answer is not None:
                    return answer
            body_bytes, rows = self._page(metadata, page_num, page_size, filters=filters)
            self.stats.record_response(200, rows=rows)
            return Response(200, body_bytes)
        except ApiFailure as failure:
            self.stats.record_response(failure.status, failure.code)
            return Response(
                failure.status,
                error_envelope(metadata, failure.code, failure.message, failure.code_n),
                headers=failure.headers,
            )

    def _run_hooks(self, page_num: int) -> None:
        with self._hooks_lock:
            hooks = list(self.hooks)
        for hook in hooks:
            try:
                hook(page_num)
            except Exception as exc:  # a broken test hook must not take the server down
                self.hook_errors.append(exc)
                traceback.print_exc(file=sys.stderr)

    def _page(
        self,
        metadata: dict[str, Any],
        page_num: int,
        page_size: int,
        *,
        pagination: bool = True,
        filters: Filters = (),
    ) -> tuple[bytes, int]:
        if filters:
            rows, count, total = self.filtered.page_blob(filters, page_num, page_size)
        else:
            rows, count, total = self.store.page_blob(page_num, page_size)
        parts = [
            b'{"ResponseMetadata":',
            json.dumps(metadata, separators=(",", ":")).encode(),
            b',"Result":{"List":[',
            rows,
            b"]",
        ]
        if pagination:
            page_total = -(-total // page_size)
            parts.append(
                b',"Pagination":{"PageCur":%d,"PageSize":%d,"PageTotal":%d,"TotalCount":%d}'
                % (page_num, page_size, page_total, total)
            )
        parts.append(b"}}")
        return b"".join(parts), count

    def _files(self, metadata: dict[str, Any], body: bytes) -> Response:
        """One page of ``DescribeRecordTaskFileHistory``: checked, then its own fault queue
        (page-shaped kinds bend the file page), then the files of the window."""
        query = parse_file_request(body)
        fault = self.file_faults.take(query.page_num)

        def page(pagination: bool = True, rows: Any = None) -> tuple[bytes, int]:
            found, total = self.record_files.page(query)
            result: dict[str, Any] = {"Data": found if rows is None else rows}
            if pagination:
                result["Pagination"] = {
                    "PageCur": query.page_num,
                    "PageSize": query.page_size,
                    "PageTotal": -(-total // query.page_size),
                    "TotalCount": total,
                }
            document = {"ResponseMetadata": metadata, "Result": result}
            return json.dumps(document, ensure_ascii=False).encode(), len(found)

        if fault is not None:
            self.stats.record_fault(fault.kind)
            if fault.kind in ("truncated", "list_not_list", "missing_pagination"):
                self.stats.record_response(200)
                if fault.kind == "truncated":
                    self.stats.record_dropped()
                    return Response(200, page()[0], drop="truncate")
                if fault.kind == "list_not_list":
                    value = fault.value if fault.value is not None else {}
                    return Response(200, page(rows=value)[0])
                return Response(200, page(pagination=False)[0])
            answer = self._fault(fault, metadata, query.page_num, query.page_size)
            if answer is not None:
                return answer
        body_bytes, count = page()
        self.stats.record_response(200, rows=count)
        return Response(200, body_bytes)

    def _fault(
        self, fault: Fault, metadata: dict[str, Any], page_num: int, page_size: int
    ) -> Response | None:
        kind = fault.kind
        stats = self.stats
        if kind in ENVELOPE_KINDS or kind == "error":
            code, status, code_n, message = fault.envelope()
            failure = ApiFailure(code, message, status=status, code_n=code_n)
            headers: dict[str, str] = {}
            if status == 429:
                retry_after = fault.retry_after
                headers = _retry_after(
                    retry_after if retry_after is not None else self.settings.retry_after
                )
            stats.record_response(status, code)
            return Response(
                status,
                error_envelope(metadata, code, failure.message, code_n),
                headers=headers,
            )
        if kind == "stall":
            self.stop.wait(fault.seconds)
            return None  # then answer normally, long after the client gave up
        if kind == "reset":
            stats.record_dropped()
            return Response(0, drop="reset")
        if kind == "truncated":
            body, _ = self._page(metadata, page_num, page_size)
            stats.record_dropped()
            return Response(200, body, drop="truncate")
        if kind == "drip":
            body, _ = self._page(metadata, page_num, page_size)
            stats.record_response(200)
            return Response(200, body, paced=self._drip(body, fault.interval))
        if kind == "bomb":
            body, _ = self._page(metadata, page_num, page_size)
            stats.record_response(200)
            return Response(200, gzip_bomb(body, fault.size), headers={"Content-Encoding": "gzip"})
        if kind == "html_502":
            stats.record_response(502)
            return Response(502, PROXY_502_PAGE, content_type="text/html")
        if kind == "non_json":
            status = fault.status or 200
            stats.record_response(status)
            text = fault.body if fault.body is not None else "upstream connect error or reset"
            return Response(status, text.encode())
        if kind == "empty_body":
            stats.record_response(200)
            return Response(200, b"")
        if kind == "missing_result":
            stats.record_response(200)
            return Response(200, json.dumps({"ResponseMetadata": metadata}).encode())
        if kind == "list_not_list":
            _, total = self.store.page(page_num, page_size)
            value = fault.value if fault.value is not None else {}
            result = {
                "List": value,
                "Pagination": {
                    "PageCur": page_num,
                    "PageSize": page_size,
                    "PageTotal": -(-total // page_size),
                    "TotalCount": total,
                },
            }
            stats.record_response(200)
            document = {"ResponseMetadata": metadata, "Result": result}
            return Response(200, json.dumps(document, ensure_ascii=False).encode())
        if kind == "missing_pagination":
            body_bytes, _ = self._page(metadata, page_num, page_size, pagination=False)
            stats.record_response(200)
            return Response(200, body_bytes)
        raise AssertionError(f"fault kind {kind!r} has no handler")

    def _drip(self, body: bytes, interval: float) -> Iterator[bytes]:
        """``body`` one byte per ``interval``: every socket read gets a byte in time, so
        only a deadline on the whole response ends it. Stops when the emulator does."""
        for index in range(len(body)):
            if index and self.stop.wait(interval):
                return
            yield body[index : index + 1]


def gzip_bomb(body: bytes, size: int) -> bytes:
    """``body`` (a JSON object) gzip-compressed with ``size`` spaces after its opening
    brace: still the same JSON once inflated, but ``size`` bytes bigger, and about a
    thousandth of that on the wire. Three gzip members (a client must read them all, as
    RFC 1952 says); the spaces' member is made once per size."""
    head, rest = body[:1], body[1:]
    return gzip_member(head) + _spaces_member(size) + gzip_member(rest)


def gzip_member(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)  # wbits 31: a gzip header
    return compressor.compress(data) + compressor.flush()


@functools.lru_cache(maxsize=4)
def _spaces_member(size: int) -> bytes:
    # 1 GiB takes about 4 s to compress at level 9, which yields 1 MB (level 1: 1.6 s, but
    # 1.2 MB): made once per size and kept.
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b" " * min(size, 1 << 20)
    parts = [compressor.compress(block) for _ in range(size // len(block))]
    parts.append(compressor.compress(block[: size % len(block)]))
    parts.append(compressor.flush())
    return b"".join(parts)


def _retry_after(seconds: float | None) -> dict[str, str]:
    # HTTP's Retry-After is whole seconds; round up so a client never retries early.
    if seconds is None:
        return {}
    return {"Retry-After": str(max(0, math.ceil(seconds)))}
