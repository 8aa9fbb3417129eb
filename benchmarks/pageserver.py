"""A server of pre-rendered ``ListPullRecordTask`` pages, so that the server is not what a
local-bound benchmark measures.

``python benchmarks/pageserver.py --tasks N [--open-mix default|few]`` renders every page of
the emulator's seeded data once (the same generator, seed and JSON as
``volcengine_live_emulator``), prints its endpoint as the first line of stdout, then serves
the stored bytes from a ``ThreadingHTTPServer`` until SIGTERM. It checks no signature and
has no rate limit, latency or faults: every request costs a dict lookup and a socket write.

``--open-mix default`` keeps the emulator's own clock (about 13 % of tasks open: scheduled
ahead or recording); ``few`` takes statuses 20 days later, when every task has ended.
``GET /_emulator/stats`` answers ``{"requests": N, "throttled": 0, "open": K}``, and
``DELETE`` resets the counter, like the emulator's.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from volcengine_live_emulator.data import FINISHED, STOPPED, TaskGenerator

PAGE_SIZE = 500
FEW_OPEN_DAYS = 20


class Pages:
    """Every page of the list, newest task first, rendered for one page size."""

    def __init__(self, tasks: int, seed: int, open_mix: str) -> None:
        anchor = time.time()
        clock = anchor + (FEW_OPEN_DAYS * 86400 if open_mix == "few" else 0)
        generator = TaskGenerator(seed, tasks, anchor)
        fragments = generator.fragments(0, tasks, clock)
        fragments.reverse()  # the API lists the newest-created task first
        settled = (f'"Status":"{FINISHED}"'.encode(), f'"Status":"{STOPPED}"'.encode())
        self.open = sum(1 for f in fragments if settled[0] not in f and settled[1] not in f)
        self.total = tasks
        self._fragments = fragments
        self._pages: dict[tuple[int, int], bytes] = {}
        self._lock = threading.Lock()
        for page in range(1, -(-tasks // PAGE_SIZE) + 2):
            self._pages[(page, PAGE_SIZE)] = self._render(page, PAGE_SIZE)
        self.requests = 0

    def _render(self, page_num: int, page_size: int) -> bytes:
        rows = self._fragments[(page_num - 1) * page_size : page_num * page_size]
        page_total = -(-self.total // page_size)
        return b"".join(
            [
                b'{"ResponseMetadata":{"RequestId":"bench","Action":"ListPullRecordTask",'
                b'"Version":"2023-01-01","Service":"live","Region":"cn-north-1"},'
                b'"Result":{"List":[',
                b",".join(rows),
                b'],"Pagination":{"PageCur":%d,"PageSize":%d,"PageTotal":%d,"TotalCount":%d}}}'
                % (page_num, page_size, page_total, self.total),
            ]
        )

    def get(self, page_num: int, page_size: int) -> bytes:
        key = (page_num, page_size)
        with self._lock:
            self.requests += 1
            body = self._pages.get(key)
            if body is None:
                body = self._pages[key] = self._render(page_num, page_size)
            return body


def make_handler(pages: Pages) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, body: bytes, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path.startswith("/_emulator/stats"):
                stats = {"requests": pages.requests, "throttled": 0, "open": pages.open}
                self._send(json.dumps(stats).encode())
            else:
                self._send(b"{}", 404)

        def do_DELETE(self) -> None:
            pages.requests = 0
            self._send(b'{"ok":true}')

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            try:
                query = json.loads(body) if body else {}
                page_num = int(query.get("PageNum", 1))
                page_size = int(query.get("PageSize", 10))
            except (ValueError, TypeError, AttributeError):
                self._send(b'{"ResponseMetadata":{"Error":{"Code":"InvalidParam"}}}', 400)
                return
            self._send(pages.get(page_num, page_size))

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, required=True)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--open-mix", choices=["default", "few"], default="default")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    pages = Pages(args.tasks, args.seed, args.open_mix)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(pages))
    server.daemon_threads = True
    server.request_queue_size = 64

    def stop(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"http://127.0.0.1:{server.server_address[1]}", flush=True)
    print(f"open tasks: {pages.open} of {pages.total}", file=sys.stderr, flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
