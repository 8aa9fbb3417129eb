"""HTTP/1.1 plumbing: a threaded stdlib server with keep-alive that hands each request to the
API service (``/``) or the control API (``/_emulator/...``) and writes what they answer,
including the network faults (reset, truncated body) no well-behaved server would send."""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
import time
import traceback
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol

from .answers import Response

CONTROL_PREFIX = "/_emulator"
_MAX_BODY = 8 * 1024 * 1024
_BUG_BODY = (
    b'{"ResponseMetadata":{"RequestId":"","Action":"","Version":"","Service":"live",'
    b'"Region":"","Error":{"Code":"InternalError","CodeN":100014,'
    b'"Message":"the emulator failed on this request (see its stderr)"}}}'
)


class Handler(Protocol):
    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Response:
        """Answer one request; ``headers`` keyed by lower-case name."""


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    # formatdate is slow-ish and the value changes once a second: cache it.
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "volcengine-live-emulator"
    disable_nagle_algorithm = True
    server: EmulatorHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would swamp test output and cost time

    def do_POST(self) -> None:
        self._dispatch()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    def _dispatch(self) -> None:
        body = self._read_body()
        if body is None:
            self.close_connection = True
            self._write(Response(400, b"bad request body framing", content_type="text/plain"))
            return
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            headers.setdefault(name.lower(), value)
        if self.path.startswith(CONTROL_PREFIX):
            handler: Handler = self.server.control
        else:
            handler = self.server.api
        try:
            response = handler.handle(self.command, self.path, headers, body)
        except Exception:  # an emulator bug: say so loudly, but answer like a server would
            traceback.print_exc(file=sys.stderr)
            response = Response(500, _BUG_BODY)
        self._write(response)

    def _read_body(self) -> bytes | None:
        """The whole request body (Content-Length or chunked), or None if it is unreadable.
        Read even for requests that will be refused, so keep-alive stays in step."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    chunk = int(line.split(b";", 1)[0].strip(), 16)
                except ValueError:
                    return None
                if chunk == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(parts)
                size += chunk
                if size > _MAX_BODY:
                    return None
                parts.append(self.rfile.read(chunk))
                self.rfile.readline(1024)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if not 0 <= length <= _MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _write(self, response: Response) -> None:
        if response.drop == "reset":
            self._reset()
            return
        lines = [
            f"HTTP/1.1 {response.status} {_reason(response.status)}",
            f"Date: {_http_date()}",
            f"Content-Type: {response.content_type}",
        ]
        lines.extend(f"{name}: {value}" for name, value in response.headers.items())
        if response.chunks is not None:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append(f"Content-Length: {len(response.body)}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        try:
            if response.chunks is not None:
                self.wfile.write(head)
                for chunk in response.chunks:
                    if chunk:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            elif response.paced is not None:
                self.wfile.write(head)
                sent = 0
                for piece in response.paced:
                    self.wfile.write(piece)
                    sent += len(piece)
                if sent != len(response.body):  # stopped early: the framing is broken
                    self.close_connection = True
            elif response.drop == "truncate":
                # Promise the whole body, deliver half, hang up: a truncated read.
                self.wfile.write(head + response.body[: len(response.body) // 2])
                self.close_connection = True
            else:
                # One write for head and body: no Nagle / delayed-ACK stall between them.
                self.wfile.write(head + response.body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (e.g. after a stall)

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        self.close_connection = True
        conn = self.connection
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.rfile.close()  # makefile() holds a reference that would delay the close
        conn.close()


class EmulatorHTTPServer(ThreadingHTTPServer):
    """Thread per connection, daemon threads, and a record of open connections so that
    :meth:`close_connections` can end idle keep-alive connections at shutdown."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], api: Handler, control: Handler) -> None:
        self.api = api
        self.control = control
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _RequestHandler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
            self._connections.clear()
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        kind = sys.exc_info()[0]
        if kind is not None and issubclass(kind, (ConnectionError, TimeoutError, OSError)):
            return  # clients hanging up mid-request are routine here
        super().handle_error(request, client_address)
