"""What one HTTP answer of ``ListPullRecordTask`` means: a :class:`Page`, or the error it
carries.

Why not ``response.raise_for_status()`` and ``response.json()``: the API reports some
errors, ``CommonErr`` among them, inside an HTTP 200 body, and some gateways answer with
an HTML page; every body is classified here instead, whatever its status.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from dlt.common.json import json

from .errors import ApiError, MalformedResponseError, TransientError


@dataclass(frozen=True)
class Page:
    """One page of tasks as the API returned it."""

    page_num: int
    page_size: int
    tasks: list[Any]
    total_count: int
    fetched_at: float


def parse_page(
    status: int,
    headers: Any,
    content: bytes,
    page_num: int,
    page_size: int,
    rows_key: str = "List",
) -> Page:
    """Classify one HTTP answer: a :class:`Page`, or raise the error it carries
    (:class:`ApiError`, or :class:`TransientError` for what is worth another try).
    ``rows_key`` names the rows under ``Result``: ``List`` for tasks, ``Data`` for the
    files of ``DescribeRecordTaskFileHistory``."""
    document = _json_or_none(content)
    metadata = document.get("ResponseMetadata") if isinstance(document, dict) else None
    error = metadata.get("Error") if isinstance(metadata, dict) else None
    if isinstance(error, dict) and error.get("Code"):
        raise ApiError(
            code=str(error.get("Code")),
            message=str(error.get("Message", ""))[:500],
            http_status=status,
            code_n=error.get("CodeN") if isinstance(error.get("CodeN"), int) else None,
            # An absent id is None, not "None": messages then leave the parenthesis out.
            request_id=str(metadata.get("RequestId") or "") or None
            if isinstance(metadata, dict)
            else None,
            retry_after=retry_after_seconds(headers.get("Retry-After")),
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
    tasks = result.get(rows_key)
    if tasks is None:
        tasks = []
    if not isinstance(tasks, list):
        raise MalformedResponseError(f"Result.{rows_key} is a {type(tasks).__name__}, not a list")
    pagination = result.get("Pagination")
    total = pagination.get("TotalCount") if isinstance(pagination, dict) else None
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise MalformedResponseError("Result.Pagination.TotalCount is missing or not a count")
    return Page(page_num, page_size, tasks, total, time.time())


def _json_or_none(content: bytes) -> Any:
    """The parsed body, or ``None`` when it is empty or not JSON (a proxy's HTML page)."""
    if not content:
        return None
    try:
        return json.loadb(content)
    except ValueError:  # the JSON backends' decode errors and UnicodeDecodeError
        return None


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` in seconds from now, given as seconds or as an HTTP date."""
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
