"""Throughput of one emulator process: ``python -m volcengine_live_emulator.selfbench``.

Starts the emulator as a separate process (so it has a core of its own), then requests pages
of ``--page-size`` rows over keep-alive connections for ``--seconds`` and prints pages/s, rows/s
and the server process's CPU use. The client (standard library only: ``http.client`` and
the emulator's own signer) signs each request but does not parse bodies: the figure is the
server's, not a JSON parser's.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import threading
import time
from urllib.parse import urlsplit

from .emulator import DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY
from .signing import sign

PATH = "/?Action=ListPullRecordTask&Version=2023-01-01"


def _cpu_seconds(pid: int) -> float | None:
    # utime + stime from /proc (Linux); None elsewhere.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _worker(
    endpoint: str,
    pages: int,
    page_size: int,
    first: int,
    step: int,
    until: float,
    out: list[int],
    limit: int | None = None,
) -> None:
    parts = urlsplit(endpoint)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port)
    page, served = first, 0
    while time.monotonic() < until and (limit is None or served < limit):
        body = json.dumps({"PageNum": page, "PageSize": page_size}).encode()
        headers = {"Content-Type": "application/json"}
        headers.update(
            sign(
                method="POST",
                url=endpoint + PATH,
                headers=headers,
                body=body,
                access_key_id=DEFAULT_ACCESS_KEY_ID,
                secret_access_key=DEFAULT_SECRET_ACCESS_KEY,
            )
        )
        conn.request("POST", PATH, body=body, headers=headers)
        response = conn.getresponse()
        data = response.read()
        if response.status != 200 or not data.endswith(b"}}"):
            raise RuntimeError(f"unexpected answer {response.status}: {data[:200]!r}")
        served += 1
        page = page + step if page + step <= pages else first
    conn.close()
    out.append(served)


def main() -> int:
    args = _parser().parse_args()
    server_flags = []
    if args.prerender:
        server_flags += ["--prerender", str(args.page_size)]
    if args.no_verify_signatures:
        server_flags.append("--no-verify-signatures")
    started = time.monotonic()
    process = _start_server(args.tasks, server_flags)
    try:
        assert process.stdout is not None
        endpoint = process.stdout.readline().strip()
        print(
            f"emulator with {args.tasks:,} tasks up in {time.monotonic() - started:.2f} s "
            f"at {endpoint} {' '.join(server_flags)}".rstrip()
        )
        _measure(endpoint, process.pid, args)
    finally:
        process.terminate()
        process.wait(timeout=10)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tasks", type=int, default=1_000_000)
    parser.add_argument("--page-size", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=2)
    parser.add_argument("--warm", action="store_true", help="read every page once first")
    parser.add_argument(
        "--prerender",
        action="store_true",
        help="start the server with --prerender PAGE_SIZE (pages rendered once, at start)",
    )
    parser.add_argument(
        "--no-verify-signatures",
        action="store_true",
        help="start the server with --no-verify-signatures",
    )
    return parser


def _start_server(tasks: int, flags: list[str]) -> subprocess.Popen[str]:
    # A process of its own, so the server has a core and the client's threads do not
    # share its interpreter lock.
    command = [sys.executable, "-m", "volcengine_live_emulator", "--tasks", str(tasks)]
    command += ["--rate-limit", "none", "--port", "0", *flags]
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def _measure(endpoint: str, pid: int, args: argparse.Namespace) -> None:
    """Read pages for ``args.seconds`` over ``args.connections`` and print the figures."""
    pages = max(1, -(-args.tasks // args.page_size))
    if args.warm:
        # One pass to fill the server's row cache (it holds ~262k rows by default).
        warm: list[int] = []
        _worker(endpoint, pages, args.page_size, 1, 1, time.monotonic() + 3600, warm, pages)
    cpu_before = _cpu_seconds(pid)
    until = time.monotonic() + args.seconds
    counts: list[int] = []
    threads = [
        threading.Thread(
            target=_worker,
            args=(endpoint, pages, args.page_size, 1 + n, args.connections, until, counts),
        )
        for n in range(args.connections)
    ]
    begin = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - begin
    cpu_after = _cpu_seconds(pid)
    total = sum(counts)
    print(
        f"{total / elapsed:,.0f} pages/s of {args.page_size} rows "
        f"({total * args.page_size / elapsed:,.0f} rows/s) over {args.connections} "
        f"connection(s) for {elapsed:.1f} s"
    )
    if cpu_before is not None and cpu_after is not None:
        busy = (cpu_after - cpu_before) / elapsed
        print(
            f"server CPU {busy:.0%} of one core; "
            f"{total / max(cpu_after - cpu_before, 1e-9):,.0f} pages per CPU-second"
        )
    rss = _rss_mb(pid)
    if rss is not None:
        print(f"server RSS {rss:,.0f} MB")


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


if __name__ == "__main__":
    sys.exit(main())
