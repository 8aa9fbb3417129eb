"""One attempt's bytes on the wire: its deadline, kept by a watchdog, and its body, read
and inflated within a bound. Below ``client.py``, which signs, retries and classifies.

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
import itertools
import socket
import threading
import time
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, SSLError

from .errors import ResponseTooLargeError

if TYPE_CHECKING:
    from urllib3._base_connection import BaseHTTPConnection

ACCEPT_ENCODING = "gzip, deflate"
"""What the body reader can inflate (urllib3 would also offer br and zstd when installed)."""
_READ_SIZE = 1 << 20
"""Largest read of a body of unknown length; a body of known length is read in one call."""
_REARM_SECONDS = 0.05
"""How soon the watchdog looks again at an attempt past its deadline that is still running
(its socket was not connected yet, or is being replaced)."""


def read_body(response: requests.Response, limit: int, what: str, watched: Attempt) -> bytes:
    """The whole body of a response sent with ``stream=True``, inflated, at most ``limit``
    bytes (:class:`ResponseTooLargeError` past it, before more is inflated); its errors
    raised as ``Response.content`` raises them, so retries and fault counts name them
    alike. A body of known length is read in one call. The connection goes back to the pool
    once the body is read, and is closed when it is not read whole."""
    raw = response.raw
    try:
        inflater = Inflater(response.headers.get("Content-Encoding"))
        if inflater.identity and (raw.length_remaining or 0) > limit:
            raise too_large(what, limit)  # said before a byte is read
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
                    raise too_large(what, limit)
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


def too_large(what: str, limit: int) -> ResponseTooLargeError:
    return ResponseTooLargeError(
        f"{what}: the response is larger than max_response_bytes ({limit:,} bytes) "
        "once decompressed, where a page of 500 tasks is about 100 KB: the endpoint is not "
        "the API, or a proxy or server misbehaves. Check [sources.volcengine_live] endpoint "
        "and any proxy (HTTPS_PROXY); raise max_response_bytes only if real pages are this "
        "large."
    )


class Inflater:
    """A body's ``Content-Encoding`` undone (gzip, with several members as RFC 1952 allows;
    deflate, zlib-wrapped or raw; none), never producing more than asked for."""

    def __init__(self, encoding: str | None) -> None:
        name = (encoding or "identity").strip().lower()
        if name not in ("identity", "gzip", "x-gzip", "deflate"):
            raise requests.exceptions.ContentDecodingError(
                f"the server sent Content-Encoding {name[:40]!r}, where {ACCEPT_ENCODING} "
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


class Attempt:
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


class Watchdog:
    """One thread per client, started on first use, that sleeps until the earliest
    deadline of the attempts in flight and cuts short those still running at it. Finished
    attempts are dropped when their deadline comes up, not searched for when they finish."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, Attempt]] = []
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closing = False

    def watch(self, attempt: Attempt) -> None:
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


current = threading.local()
"""The attempt this thread is making, for the connection pool to record its connection."""


class _WatchedHTTPPool(HTTPConnectionPool):
    def _get_conn(self, timeout: float | None = None) -> BaseHTTPConnection:
        connection = super()._get_conn(timeout)
        attempt: Attempt | None = getattr(current, "attempt", None)
        if attempt is not None:
            attempt.connection = connection
        return connection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    _get_conn = _WatchedHTTPPool._get_conn


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class WatchedAdapter(HTTPAdapter):
    """An adapter whose pools (a proxy's included) tell the watchdog which connection an
    attempt uses."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager
