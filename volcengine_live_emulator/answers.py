"""What the API sends back: the :class:`Response` one request gets, and what a queued fault
makes of an answer (error envelopes, a dropped connection, a page a byte at a time, a gzip
bomb, bodies that are not the documented JSON).

Nothing here touches sockets; :mod:`volcengine_live_emulator.server` writes a Response,
including the network faults no well-behaved server would send.
"""

from __future__ import annotations

import functools
import json
import math
import threading
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from .errors import ApiFailure, error_envelope
from .faults import ENVELOPE_KINDS, Fault
from .stats import Stats

JSON_TYPE = "application/json; charset=utf-8"

PROXY_502_PAGE = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)


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


PageBody = Callable[[dict[str, Any], int, int, bool], bytes]
"""Renders ``(metadata, page_num, page_size, with_pagination)`` as a page's whole body."""

_Answer = Callable[[Fault, dict[str, Any], int, int], "Response | None"]


class FaultAnswers:
    """Turns a fault taken from a queue into the answer it stands for (None: answer
    normally, as after a stall)."""

    def __init__(
        self,
        stats: Stats,
        stop: threading.Event,
        page_body: PageBody,
        total: Callable[[int, int], int],
    ) -> None:
        self.stats = stats
        self.stop = stop
        self._page_body = page_body
        self._total = total
        self._kinds: dict[str, _Answer] = {
            "stall": self._stall,
            "reset": self._reset,
            "truncated": self._truncated,
            "drip": self._drip,
            "bomb": self._bomb,
            "html_502": self._html_502,
            "non_json": self._non_json,
            "empty_body": self._empty_body,
            "missing_result": self._missing_result,
            "list_not_list": self._list_not_list,
            "missing_pagination": self._missing_pagination,
        }

    def answer(
        self,
        fault: Fault,
        metadata: dict[str, Any],
        page_num: int,
        page_size: int,
        retry_after: float | None,
    ) -> Response | None:
        """The answer ``fault`` makes of page ``page_num``; ``retry_after`` is the
        emulator's own Retry-After for a 429 the fault does not set one for."""
        if fault.kind in ENVELOPE_KINDS or fault.kind == "error":
            return self._envelope(fault, metadata, retry_after)
        kind = self._kinds.get(fault.kind)
        if kind is None:
            raise AssertionError(f"fault kind {fault.kind!r} has no handler")
        return kind(fault, metadata, page_num, page_size)

    def _envelope(
        self, fault: Fault, metadata: dict[str, Any], retry_after: float | None
    ) -> Response:
        code, status, code_n, message = fault.envelope()
        failure = ApiFailure(code, message, status=status, code_n=code_n)
        headers: dict[str, str] = {}
        if status == 429:
            headers = retry_after_header(
                fault.retry_after if fault.retry_after is not None else retry_after
            )
        self.stats.record_response(status, code)
        return Response(
            status, error_envelope(metadata, code, failure.message, code_n), headers=headers
        )

    def _stall(self, fault: Fault, metadata: dict[str, Any], num: int, size: int) -> None:
        self.stop.wait(fault.seconds)
        return None  # then answer normally, long after the client gave up

    def _reset(self, fault: Fault, metadata: dict[str, Any], num: int, size: int) -> Response:
        self.stats.record_dropped()
        return Response(0, drop="reset")

    def _truncated(self, fault: Fault, metadata: dict[str, Any], num: int, size: int) -> Response:
        body = self._page_body(metadata, num, size, True)
        self.stats.record_dropped()
        return Response(200, body, drop="truncate")

    def _drip(self, fault: Fault, metadata: dict[str, Any], num: int, size: int) -> Response:
        body = self._page_body(metadata, num, size, True)
        self.stats.record_response(200)
        return Response(200, body, paced=self._bytes_slowly(body, fault.interval))

    def _bomb(self, fault: Fault, metadata: dict[str, Any], num: int, size: int) -> Response:
        body = self._page_body(metadata, num, size, True)
        self.stats.record_response(200)
        return Response(200, gzip_bomb(body, fault.size), headers={"Content-Encoding": "gzip"})

    def _html_502(self, fault: Fault, metadata: dict[str, Any], num: int, size: int) -> Response:
        self.stats.record_response(502)
        return Response(502, PROXY_502_PAGE, content_type="text/html")

    def _non_json(self, fault: Fault, metadata: dict[str, Any], num: int, size: int) -> Response:
        status = fault.status or 200
        self.stats.record_response(status)
        text = fault.body if fault.body is not None else "upstream connect error or reset"
        return Response(status, text.encode())

    def _empty_body(self, fault: Fault, metadata: dict[str, Any], num: int, size: int) -> Response:
        self.stats.record_response(200)
        return Response(200, b"")

    def _missing_result(
        self, fault: Fault, metadata: dict[str, Any], num: int, size: int
    ) -> Response:
        self.stats.record_response(200)
        return Response(200, json.dumps({"ResponseMetadata": metadata}).encode())

    def _list_not_list(
        self, fault: Fault, metadata: dict[str, Any], num: int, size: int
    ) -> Response:
        value = fault.value if fault.value is not None else {}
        result = {"List": value, "Pagination": pagination(num, size, self._total(num, size))}
        self.stats.record_response(200)
        document = {"ResponseMetadata": metadata, "Result": result}
        return Response(200, json.dumps(document, ensure_ascii=False).encode())

    def _missing_pagination(
        self, fault: Fault, metadata: dict[str, Any], num: int, size: int
    ) -> Response:
        body = self._page_body(metadata, num, size, False)
        self.stats.record_response(200)
        return Response(200, body)

    def _bytes_slowly(self, body: bytes, interval: float) -> Iterator[bytes]:
        """``body`` one byte per ``interval``: every socket read gets a byte in time, so
        only a deadline on the whole response ends it. Stops when the emulator does."""
        for index in range(len(body)):
            if index and self.stop.wait(interval):
                return
            yield body[index : index + 1]


def pagination(page_num: int, page_size: int, total: int) -> dict[str, int]:
    """The documented ``Pagination`` object of a page of a list of ``total`` rows."""
    return {
        "PageCur": page_num,
        "PageSize": page_size,
        "PageTotal": -(-total // page_size),
        "TotalCount": total,
    }


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


def retry_after_header(seconds: float | None) -> dict[str, str]:
    """A Retry-After header of ``seconds`` (none for None)."""
    # HTTP's Retry-After is whole seconds; round up so a client never retries early.
    if seconds is None:
        return {}
    return {"Retry-After": str(max(0, math.ceil(seconds)))}
