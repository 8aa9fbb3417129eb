"""The emulated ``ListPullRecordTask`` endpoint (and ``DescribeRecordTaskFileHistory``, see
:mod:`volcengine_live_emulator.files`): one request in, one :class:`Response` out.

Nothing here touches sockets; :mod:`volcengine_live_emulator.server` does the HTTP. The order
of checks is the gateway's: route (Action/Version), signature, rate limit (each action its
own), body validation; then the request hook, the fault queue (each action its own), and
finally the page itself.
"""

from __future__ import annotations

import json
import os
import random
import sys
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .answers import FaultAnswers, Response, pagination, retry_after_header
from .binding import bind_error, field_value, json_object
from .errors import ApiFailure, error_envelope
from .faults import FaultQueue
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

RequestHook = Callable[[int], object]
"""Called with the PageNum of every accepted page request, before the page is read."""


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
    data = json_object(body)
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
    value = field_value(data, name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or abs(value) > _INT64_MAX:
        raise bind_error(name, "an integer", value)
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
        self._fault_answers = FaultAnswers(stats, stop, self._page_body, self._total)

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
        parts = urlsplit(target)
        query = parse_qsl(parts.query, keep_blank_values=True)
        params = dict(query)
        settings = self.settings
        metadata = {
            "RequestId": _request_id(),
            "Action": params.get("Action", ""),
            "Version": params.get("Version", ""),
            "Service": settings.service,
            "Region": settings.region,
        }
        self._delay()
        try:
            action = _route(method, parts.path, params)
            access_key_id = self._access_key(method, parts.path or "/", query, headers, body)
            limiter = self.file_limiter if action == FILE_ACTION else self.limiter
            if not limiter.allow(access_key_id):
                raise ApiFailure(
                    "FlowLimitExceeded", headers=retry_after_header(settings.retry_after)
                )
            if action == FILE_ACTION:
                return self._files(metadata, body)
            return self._tasks(metadata, body)
        except ApiFailure as failure:
            self.stats.record_response(failure.status, failure.code)
            return Response(
                failure.status,
                error_envelope(metadata, failure.code, failure.message, failure.code_n),
                headers=failure.headers,
            )

    def _delay(self) -> None:
        # The configured latency, before anything is checked (as a distant gateway's).
        settings = self.settings
        delay = settings.latency
        if settings.latency_jitter > 0:
            delay += self._jitter.uniform(0.0, settings.latency_jitter)
        if delay > 0:
            self.stop.wait(delay)

    def _access_key(
        self,
        method: str,
        path: str,
        query: list[tuple[str, str]],
        headers: Mapping[str, str],
        body: bytes,
    ) -> str:
        # The access key the request is counted under: checked, unless signatures are off.
        settings = self.settings
        if not settings.verify_signatures:
            return claimed_access_key(headers)
        return verify_request(
            method=method,
            path=path,
            query=query,
            headers=headers,
            body=body,
            keyring=self.keyring,
            region=settings.region,
            service=settings.service,
            now=time.time(),
            max_skew=settings.max_skew,
        )

    def _tasks(self, metadata: dict[str, Any], body: bytes) -> Response:
        """One page of ``ListPullRecordTask``: checked, the hooks and flows run, then its
        fault queue, then the page."""
        page_num, page_size = parse_page_request(body)
        filters = parse_task_filters(body) if self.settings.filter_tasks else ()
        self._run_hooks(page_num)
        self.store.on_api_request()
        fault = self.faults.take(page_num)
        if fault is not None:
            self.stats.record_fault(fault.kind)
            answer = self._fault_answers.answer(
                fault, metadata, page_num, page_size, self.settings.retry_after
            )
            if answer is not None:
                return answer
        body_bytes, rows = self._page(metadata, page_num, page_size, filters=filters)
        self.stats.record_response(200, rows=rows)
        return Response(200, body_bytes)

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

    def _page_body(
        self, metadata: dict[str, Any], page_num: int, page_size: int, paginated: bool
    ) -> bytes:
        # A fault's page: unfiltered, as it always was.
        return self._page(metadata, page_num, page_size, pagination=paginated)[0]

    def _total(self, page_num: int, page_size: int) -> int:
        return self.store.page(page_num, page_size)[1]

    def _files(self, metadata: dict[str, Any], body: bytes) -> Response:
        """One page of ``DescribeRecordTaskFileHistory``: checked, then its own fault queue
        (page-shaped kinds bend the file page), then the files of the window."""
        query = parse_file_request(body)
        fault = self.file_faults.take(query.page_num)

        def page(paginated: bool = True, rows: Any = None) -> tuple[bytes, int]:
            found, total = self.record_files.page(query)
            result: dict[str, Any] = {"Data": found if rows is None else rows}
            if paginated:
                result["Pagination"] = pagination(query.page_num, query.page_size, total)
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
                return Response(200, page(paginated=False)[0])
            answer = self._fault_answers.answer(
                fault, metadata, query.page_num, query.page_size, self.settings.retry_after
            )
            if answer is not None:
                return answer
        body_bytes, count = page()
        self.stats.record_response(200, rows=count)
        return Response(200, body_bytes)


def _route(method: str, path: str, params: Mapping[str, str]) -> str:
    """The action a request names, if it is served here (POST / and the one Version)."""
    action = params.get("Action")
    if action not in (ACTION, FILE_ACTION) or params.get("Version") != VERSION:
        raise ApiFailure(
            "InvalidActionOrVersion",
            action=params.get("Action", ""),
            version=params.get("Version", ""),
        )
    if method != "POST" or path not in ("", "/"):
        raise ApiFailure(
            "InvalidActionOrVersion",
            f"Could not find operation {action} for version {VERSION} at "
            f"{method} {path or '/'}; it is served by POST /.",
        )
    return action
