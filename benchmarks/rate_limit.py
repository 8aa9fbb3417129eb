"""Benchmark of the client-side rate limiter: the new one against the previous one, run in
the same command against the same emulator.

``python benchmarks/rate_limit.py [--quick]`` starts one emulator process (100 ms latency,
the account's 50 requests/s per key) and, for each scenario and each limiter, reads every
page of the account in a fresh child process (``--child``) and prints what the API saw:

1. told 50 on an account limited to 50/s: requests/s as a fraction of the ceiling, 429s;
2. told 40 (the default) on the same account: fraction of 40/s, 429s;
3. room for 20: the emulator limits the key to 20/s (another client of the account takes
   the rest), the source told 40: settled rate, time to settle, 429s;
4. a competing client: a second process sends 30 requests/s with the same key on the
   50/s account (production traffic that does not back off), the source told 40: the same,
   plus the 429s the competitor received (the harm done to the account's other traffic).

Rates are counted from the child's own log of every attempt (start, end, outcome): *span*
is admitted requests from the first sent to the last answered (as ``RESULTS.md`` counts);
*sustained* counts admitted starts from the first to the last (leaving out the last answer's
latency). With 201 requests a run is five windows and one request: at 40 in any second the
201st cannot start before the sixth, which costs *span* 2-3 % whatever the limiter.
*Settled* is the first moment after which the requests started in every one-second window
stay within 80-110 % of the room; ``never`` when they do not. Every run must read every
task exactly once or the benchmark fails. The previous limiter is kept below
(:class:`OldRateLimiter`) as the baseline.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ACCESS_KEY_ID = "AKBENCHMARK"
SECRET_ACCESS_KEY = "benchmark-secret"
PAGE_SIZE = 500
ACCOUNT_RPS = 50.0
LATENCY = 0.1

logger = logging.getLogger(__name__)


class OldRateLimiter:
    """The previous limiter, verbatim but for the ``retry_after`` it ignores: spaces
    requests evenly at ``rate`` per second across threads; halves the pace when the API
    answers 429 and climbs back to ``rate`` after a run of successes."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.target = rate
        self.rate = rate
        self._clock = clock
        self._next_slot = 0.0
        self._lock = threading.Lock()
        self._successes = 0
        self._last_throttle = float("-inf")

    def acquire(self) -> None:
        if not self.rate:
            return
        with self._lock:
            now = self._clock()
            slot = max(now, self._next_slot)
            self._next_slot = slot + 1.0 / self.rate
        delay = slot - now
        if delay > 0:
            time.sleep(delay)

    def throttled(self, retry_after: float | None = None) -> None:
        if not self.rate:
            return
        with self._lock:
            self._successes = 0
            now = self._clock()
            if now - self._last_throttle < 1.0:
                return
            self._last_throttle = now
            self.rate = max(1.0, self.rate / 2)

    def succeeded(self) -> None:
        if not self.rate or not self.target or self.rate >= self.target:
            return
        with self._lock:
            self._successes += 1
            if self._successes >= 10:
                self._successes = 0
                self.rate = min(self.target, self.rate * 1.25)


# --------------------------------------------------------------------------- child: one scan


def run_child(endpoint: str, limiter_name: str, rps: float) -> dict[str, Any]:
    """Read every page once with the chosen limiter; return the attempt log's summary."""
    from volcengine_live.client import ClientConfig, LiveApiClient
    from volcengine_live.errors import ApiError
    from volcengine_live.rate_limit import RateLimiter
    from volcengine_live.scan import Scan

    config = ClientConfig(
        endpoint=endpoint,
        requests_per_second=rps,
        max_concurrency=8,
        max_attempts=20,
        backoff_seconds=0.5,
    )
    client = LiveApiClient(ACCESS_KEY_ID, SECRET_ACCESS_KEY, config=config)
    if limiter_name == "old":
        client.limiter = OldRateLimiter(rps)  # type: ignore[assignment]
    else:
        client.limiter = RateLimiter(rps)
    log: list[tuple[float, float, str]] = []
    log_lock = threading.Lock()
    attempt = client._attempt

    def logged(body: bytes, parse: Any, what: str) -> Any:
        started = time.monotonic()
        outcome = "ok"
        try:
            return attempt(body, parse, what)
        except ApiError as error:
            outcome = "429" if error.http_status == 429 else "error"
            raise
        except Exception:
            outcome = "error"
            raise
        finally:
            with log_lock:
                log.append((started, time.monotonic(), outcome))

    client._attempt = logged  # type: ignore[method-assign]
    task_ids: set[str] = set()
    rows = 0
    try:
        for page in Scan.of(client, PAGE_SIZE):
            rows += len(page.tasks)
            task_ids.update(task["TaskId"] for task in page.tasks)
    finally:
        client.close()
    log.sort()
    return {"rows": rows, "distinct": len(task_ids), "log": log}


# --------------------------------------------------------------------------- competitor


def run_competitor(endpoint: str, rps: float) -> None:
    """Send ``rps`` one-row requests per second, evenly, with the benchmark's key, until
    SIGTERM; never back off (production traffic); print the outcomes as JSON."""
    from volcengine_live.client import ClientConfig, LiveApiClient
    from volcengine_live.errors import ApiError
    from volcengine_live.responses import parse_page

    config = ClientConfig(endpoint=endpoint, requests_per_second=None, max_attempts=1)
    client = LiveApiClient(ACCESS_KEY_ID, SECRET_ACCESS_KEY, config=config)
    outcomes: list[tuple[float, str]] = []
    lock = threading.Lock()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())

    body = b'{"PageNum": 1, "PageSize": 1}'

    def parse(status: int, headers: Any, content: bytes) -> Any:
        return parse_page(status, headers, content, 1, 1)

    def one() -> None:
        try:
            client._attempt(body, parse, "Page 1")  # one attempt, no retry: a 429 is the answer
            outcome = "ok"
        except ApiError as error:
            outcome = "429" if error.http_status == 429 else "error"
        except Exception:
            outcome = "error"
        with lock:
            outcomes.append((time.monotonic(), outcome))

    pool = ThreadPoolExecutor(max_workers=16)
    print("ready", flush=True)
    started = time.monotonic()
    sent = 0
    while not stop.is_set():
        slot = started + sent / rps
        delay = slot - time.monotonic()
        if delay > 0:
            stop.wait(delay)
            continue
        pool.submit(one)
        sent += 1
    pool.shutdown(wait=True)
    client.close()
    print(json.dumps(outcomes), flush=True)


# --------------------------------------------------------------------------- parent


class EmulatorProcess:
    def __init__(self, tasks: int) -> None:
        command = [
            sys.executable, "-m", "volcengine_live_emulator", "--port", "0",
            "--tasks", str(tasks), "--seed", "2024",
            "--access-key-id", ACCESS_KEY_ID, "--secret-access-key", SECRET_ACCESS_KEY,
            "--latency", str(LATENCY), "--rate-limit", str(ACCOUNT_RPS),
            "--cache-rows", str(tasks + 1000),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.endpoint = self.process.stdout.readline().strip()
        if not self.endpoint.startswith("http"):
            raise RuntimeError(f"emulator did not start: {self.endpoint!r}")
        self.tasks = tasks

    def control(self, path: str, method: str = "GET", payload: Any = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(
            f"{self.endpoint}/_emulator/{path}", data=data, method=method
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            body = answer.read()
        return json.loads(body) if body else None

    def configure(self, rate_limit: float | None, latency: float) -> None:
        self.control("config", "POST", {"rate_limit": rate_limit, "latency": latency})

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@dataclass
class Result:
    scenario: str
    limiter: str
    room: float
    told: float
    requests: int
    admitted: int
    throttled: int
    span_rate: float
    sustained_rate: float
    settled_at: float | None
    settled_rate: float | None
    competitor: dict[str, int] | None

    @property
    def throttled_share(self) -> float:
        return self.throttled / self.requests if self.requests else 0.0


def settle(log: list[tuple[float, float, str]], room: float) -> tuple[float | None, float | None]:
    """When the requests started per one-second window enter 80-110 % of ``room`` for
    good (seconds from the first request), and the admitted rate from then on."""
    if not log:
        return None, None
    starts = [start for start, _, _ in log]
    first, last = starts[0], starts[-1]
    # the last second is the scan's tail (retries of its last pages), not the limiter's pace
    steps = int((last - first - 2.0) / 0.1)
    if steps < 1:
        return None, None
    settled: float | None = None
    for step in range(steps + 1):
        begin = first + step * 0.1
        count = sum(1 for start in starts if begin <= start < begin + 1.0)
        inside = 0.8 * room <= count <= 1.1 * room
        if not inside:
            settled = None
        elif settled is None:
            settled = begin
    if settled is None:
        return None, None
    admitted = sum(1 for start, _, outcome in log if start >= settled and outcome == "ok")
    duration = last - settled
    return settled - first, (admitted / duration if duration > 0 else None)


def measure(
    emulator: EmulatorProcess,
    scenario: str,
    limiter: str,
    told: float,
    room: float,
    competitor_rps: float | None = None,
) -> Result:
    time.sleep(1.2)  # an empty server window for every run
    emulator.control("stats", "DELETE")
    competitor = None
    if competitor_rps:
        competitor = subprocess.Popen(
            [sys.executable, __file__, "--competitor", "--endpoint", emulator.endpoint,
             "--rps", str(competitor_rps)],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert competitor.stdout is not None
        competitor.stdout.readline()
        time.sleep(1.5)  # the competitor's traffic is steady before the scan starts
    command = [sys.executable, __file__, "--child", "--endpoint", emulator.endpoint]
    command += ["--limiter", limiter, "--rps", str(told)]
    printed = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    competitor_log: list[tuple[float, str]] = []
    competitor_counts = None
    if competitor is not None:
        competitor.terminate()
        out, _ = competitor.communicate(timeout=30)
        competitor_log = json.loads(out.strip().splitlines()[-1])
    output = json.loads(printed.strip().splitlines()[-1])
    if output["distinct"] != emulator.tasks or output["rows"] < emulator.tasks:
        raise RuntimeError(f"{scenario} / {limiter}: read {output['distinct']} tasks")
    log = [tuple(entry) for entry in output["log"]]
    admitted = [entry for entry in log if entry[2] == "ok"]
    first = log[0][0]
    span = max(end for _, end, _ in log) - first
    starts_span = admitted[-1][0] - first
    settled_at, settled_rate = settle(log, room)
    if competitor is not None:  # its answers while the scan ran (one clock: monotonic)
        end = max(end for _, end, _ in log)
        competitor_counts = {"ok": 0, "429": 0, "error": 0}
        for moment, outcome in competitor_log:
            if first <= moment <= end:
                competitor_counts[outcome] += 1
    return Result(
        scenario=scenario,
        limiter=limiter,
        room=room,
        told=told,
        requests=len(log),
        admitted=len(admitted),
        throttled=sum(1 for entry in log if entry[2] == "429"),
        span_rate=len(admitted) / span,
        sustained_rate=(len(admitted) - 1) / starts_span if starts_span > 0 else 0.0,
        settled_at=settled_at,
        settled_rate=settled_rate,
        competitor=competitor_counts,
    )


def describe(result: Result) -> str:
    reference = min(result.told, result.room)
    text = (
        f"  {result.scenario:<22} {result.limiter:<3}  {result.requests:4d} requests  "
        f"span {result.span_rate:5.1f}/s ({result.span_rate / reference:5.1%} of "
        f"{reference:g})  sustained {result.sustained_rate:5.1f}/s "
        f"({result.sustained_rate / reference:5.1%})  429s {result.throttled:3d} "
        f"({result.throttled_share:5.1%})"
    )
    if result.scenario.startswith(("3", "4")):
        settled = (
            f"settled after {result.settled_at:.1f} s at {result.settled_rate:.1f}/s"
            if result.settled_at is not None and result.settled_rate is not None
            else "never settled"
        )
        text += f"  {settled}"
    if result.competitor is not None:
        text += f"  competitor: {result.competitor['ok']} ok, {result.competitor['429']} 429s"
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20,000 tasks: a smoke run")
    parser.add_argument("--tasks", type=int, help="tasks in the emulator (default 100,000)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per scenario and limiter")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--competitor", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--limiter", choices=["old", "new"], help=argparse.SUPPRESS)
    parser.add_argument("--rps", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(run_child(args.endpoint, args.limiter, args.rps)), flush=True)
        return 0
    if args.competitor:
        run_competitor(args.endpoint, args.rps)
        return 0
    tasks = args.tasks or (20_000 if args.quick else 100_000)
    pages = math.ceil(tasks / PAGE_SIZE)
    print(
        f"rate limiter benchmark: {tasks:,} tasks ({pages} pages of {PAGE_SIZE}), "
        f"{LATENCY * 1000:.0f} ms latency, 8 requests in flight at most",
        flush=True,
    )
    emulator = EmulatorProcess(tasks)
    results: list[Result] = []
    try:
        emulator.configure(None, 0.0)
        run_child(emulator.endpoint, "new", 0.0)  # warm the emulator's row cache, unmeasured
        scenarios: list[tuple[str, float, float, float, float | None]] = [
            ("1 told 50, account 50", 50.0, 50.0, ACCOUNT_RPS, None),
            ("2 told 40, account 50", 40.0, 50.0, ACCOUNT_RPS, None),
            ("3 room 20, told 40", 40.0, 20.0, 20.0, None),
            ("4 competitor 30/s", 40.0, 20.0, ACCOUNT_RPS, 30.0),
        ]
        for scenario, told, room, key_limit, competitor in scenarios:
            emulator.configure(key_limit, LATENCY)
            for _ in range(args.repeat):
                for limiter in ("old", "new"):
                    result = measure(emulator, scenario, limiter, told, room, competitor)
                    results.append(result)
                    print(describe(result), flush=True)
    finally:
        emulator.stop()
    print("\nnew / old (sustained rate, 429s):")
    for scenario, *_ in scenarios:
        old = [r for r in results if r.scenario == scenario and r.limiter == "old"]
        new = [r for r in results if r.scenario == scenario and r.limiter == "new"]
        old_rate = sum(r.sustained_rate for r in old) / len(old)
        new_rate = sum(r.sustained_rate for r in new) / len(new)
        old_429 = sum(r.throttled for r in old)
        new_429 = sum(r.throttled for r in new)
        print(
            f"  {scenario:<22} rate x{new_rate / old_rate:.2f}  429s {old_429} -> {new_429}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
