"""A scheduled run against a hostile server never hangs, never wedges and never drowns in
memory: a page that drips in a byte at a time is cut at its deadline and retried, a run
past ``run_timeout`` fails with nothing committed, a compressed bomb is refused before it
inflates, and a long ``Retry-After`` waits as long as the log says.

Real parts throughout: the emulator on loopback with its ``drip`` and ``bomb`` faults,
real sockets, real pipelines. Whatever could hang runs in a thread joined with a generous
bound, so a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import logging
import threading
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed
from test_rate_limit import Clock

from volcengine_live import RetriesExhaustedError, pull_record_tasks
from volcengine_live.client import ClientConfig, LiveApiClient
from volcengine_live.errors import RequestDeadlineError, ResponseTooLargeError, RunTimeoutError
from volcengine_live.rate_limit import RateLimiter
from volcengine_live.responses import parse_page
from volcengine_live.transport import Inflater
from volcengine_live_emulator import Emulator

from helpers import ACCESS_KEY_ID, SECRET_ACCESS_KEY, Loader, make_emulator
from reliability_support import find_in_chain

T = TypeVar("T")
BOUND = 20.0
"""Seconds a test waits for something that, broken, would never end: far above the few
seconds it takes, so only a hang trips it."""


def client(emulator: Emulator, **config: Any) -> LiveApiClient:
    config.setdefault("requests_per_second", None)
    config.setdefault("backoff_seconds", 0.05)
    options = ClientConfig(endpoint=emulator.endpoint, **config)
    return LiveApiClient(ACCESS_KEY_ID, SECRET_ACCESS_KEY, config=options)


def ends(call: Callable[[], T]) -> T | BaseException:
    """What ``call`` returns or raises, from a thread given :data:`BOUND` seconds."""
    outcome: list[T | BaseException] = []

    def run() -> None:
        try:
            outcome.append(call())
        except BaseException as error:  # handed to the test to look at
            outcome.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(BOUND)
    assert not thread.is_alive(), f"still running after {BOUND:g} s: it hangs"
    return outcome[0]


# ----------------------------------------------------------------- a deadline per request


def test_a_page_that_drips_in_a_byte_at_a_time_fails_at_its_deadline_and_is_retried(
    emulator: Emulator,
) -> None:
    # A byte every 50 ms: every socket read gets one in time, so a per-read timeout never
    # fires; the page (~600 bytes) would take 30 s whole.
    emulator.faults.add("drip", interval=0.05, times=None)
    live = client(emulator, request_timeout=1, max_attempts=2)
    started = time.monotonic()
    error = ends(lambda: live.fetch_page(1, 1))
    elapsed = time.monotonic() - started
    assert isinstance(error, RetriesExhaustedError), error
    cause = error.__cause__
    assert isinstance(cause, RequestDeadlineError)
    assert "Page 1" in str(cause) and "request_timeout 1 s" in str(cause)
    assert "RequestDeadlineError" in str(error)
    assert emulator.stats.faults == {"drip": 2}  # both attempts were made, each cut short
    assert live.stats.faults == {"RequestDeadlineError": 1}
    assert elapsed < 2 * 1 + 0.05 + 5  # max_attempts x deadline + backoff, and slack
    live.close()


def test_a_drip_on_one_attempt_is_only_a_retry_the_page_is_read(emulator: Emulator) -> None:
    emulator.faults.add("drip", interval=0.05, times=1)
    live = client(emulator, request_timeout=0.5, max_attempts=3)
    page = ends(lambda: live.fetch_page(1, 5))
    assert not isinstance(page, BaseException), page
    assert len(page.tasks) == 5 and live.stats.retries == 1
    live.close()


def test_the_connection_cut_at_a_deadline_is_not_reused_for_the_next_page(
    emulator: Emulator,
) -> None:
    emulator.faults.add("drip", interval=0.05, times=1)
    live = client(emulator, request_timeout=0.5, max_attempts=1)
    assert isinstance(ends(lambda: live.fetch_page(1, 5)), RetriesExhaustedError)
    for page_num in (1, 2, 3):  # on the connection pool the cut left behind
        page = ends(lambda number=page_num: live.fetch_page(number, 5))  # type: ignore[misc]
        assert not isinstance(page, BaseException), page
    live.close()


# --------------------------------------------------------------------- a deadline per run


def run_resource(loader: Loader, live: LiveApiClient) -> None:
    pipeline = loader.pipeline()
    pipeline.run(pull_record_tasks(live, page_size=100))


def test_a_run_past_run_timeout_fails_and_commits_nothing(loader: Loader) -> None:
    emulator = loader.emulator
    run_resource(loader, client(emulator))
    state_before = loader.pipeline().state
    rows_before = loader.rows()
    task_id = next(iter(rows_before))
    emulator.store.update_task(task_id, Status="停用")  # what a second run would write

    # Page 3 drips for ever; the pages before it are read, and their rows extracted.
    emulator.faults.add("drip", interval=0.05, times=None, page=3)
    live = client(emulator, request_timeout=30, max_attempts=3, run_timeout=1.5)
    started = time.monotonic()
    failed = ends(lambda: run_resource(loader, live))
    elapsed = time.monotonic() - started
    assert isinstance(failed, PipelineStepFailed), failed
    timeout = find_in_chain(failed, RunTimeoutError)
    assert "run_timeout (1.5 s)" in str(timeout) and "page 3" in str(timeout)
    assert elapsed < 1.5 + BOUND / 2  # cut at the run's deadline, not request_timeout's 30 s

    # Nothing of the failed run was committed: rows, state and packages as before.
    pipeline = loader.pipeline()
    assert loader.rows() == rows_before
    assert pipeline.state["sources"] == state_before["sources"]
    assert not pipeline.has_pending_data
    emulator.faults.clear()
    run_resource(loader, client(emulator))  # and the next run picks the change up
    assert loader.rows()[task_id]["status"] == "停用"


def test_without_run_timeout_the_run_has_no_deadline(emulator: Emulator) -> None:
    live = client(emulator)
    assert live.run_deadline() is None
    assert not isinstance(ends(lambda: live.fetch_page(1, 5)), BaseException)


# ------------------------------------------------------------------ a cap on a body's size


def test_a_compressed_bomb_is_refused_by_name_before_it_inflates(emulator: Emulator) -> None:
    emulator.faults.add("bomb", size=64 << 20, times=None)  # ~64 KB on the wire
    live = client(emulator, max_response_bytes=1 << 20, max_attempts=3)
    tracemalloc.start()
    try:
        error = ends(lambda: live.fetch_page(2, 5))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(error, ResponseTooLargeError), error
    assert "Page 2" in str(error) and "max_response_bytes (1,048,576 bytes)" in str(error)
    assert emulator.stats.faults == {"bomb": 1}  # not retried: it would inflate again
    assert peak < 8 << 20, f"{peak:,} bytes allocated: the body was inflated"
    live.close()


def test_a_body_announced_larger_than_the_cap_is_refused_before_it_is_read(
    emulator: Emulator,
) -> None:
    live = client(emulator, max_response_bytes=1000)
    error = ends(lambda: live.fetch_page(1, 100))  # ~50 KB, uncompressed
    assert isinstance(error, ResponseTooLargeError), error
    assert "Page 1" in str(error)


def test_a_gzip_body_in_several_members_is_read_whole(emulator: Emulator) -> None:
    emulator.faults.add("bomb", size=4096)  # three gzip members, 4 KB of spaces inside
    live = client(emulator)
    page = ends(lambda: live.fetch_page(1, 7))
    assert not isinstance(page, BaseException), page
    assert len(page.tasks) == 7 and live.stats.retries == 0
    live.close()


# ------------------------------------------------------------------------ smaller things


def test_a_retry_after_over_the_backoff_cap_waits_what_the_log_says(
    emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    emulator.faults.add("flow_limit", times=1, retry_after=5)
    fake = Clock()  # moves only when something sleeps on it: waits measured exactly
    config = ClientConfig(
        endpoint=emulator.endpoint, requests_per_second=None, max_backoff_seconds=2.0
    )
    live = LiveApiClient(ACCESS_KEY_ID, SECRET_ACCESS_KEY, config=config, sleep=fake.sleep)
    live.limiter = RateLimiter(None, clock=fake, sleep=fake.sleep)
    with caplog.at_level(logging.WARNING, logger="volcengine_live.client"):
        assert len(live.fetch_page(1, 5).tasks) == 5
    assert "retry 1 of 5 in 2.0s" in caplog.text
    assert sum(fake.slept) == pytest.approx(2.0)  # not 5: the limiter's pause is capped too
    live.close()


def test_an_error_without_a_request_id_says_none_of_it() -> None:
    body = b'{"ResponseMetadata": {"Error": {"Code": "InternalError", "Message": "boom"}}}'
    with pytest.raises(Exception) as raised:
        parse_page(500, {}, body, 1, 10)
    assert "request id" not in str(raised.value) and "None" not in str(raised.value)
    body = body.replace(b'{"Error"', b'{"RequestId": "r-42", "Error"')
    with pytest.raises(Exception) as raised:
        parse_page(500, {}, body, 1, 10)
    assert "(request id r-42)" in str(raised.value)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with make_emulator(tasks=600) as emu:
        yield emu


@pytest.fixture
def loader(emulator: Emulator, tmp_path: Path) -> Loader:
    return Loader(emulator, tmp_path)


def _deflated(data: bytes, wbits: int) -> bytes:
    compressor = zlib.compressobj(6, zlib.DEFLATED, wbits)
    return compressor.compress(data) + compressor.flush()


@pytest.mark.parametrize(
    ("encoding", "wbits", "members"),
    [("gzip", 31, 2), ("deflate", 15, 1), ("deflate", -15, 1), ("identity", 0, 1)],
)
def test_every_accepted_encoding_inflates_to_the_body_in_bounded_pieces(
    encoding: str, wbits: int, members: int
) -> None:
    body = b"".join(b'{"TaskId": "%d"}, ' % n for n in range(200_000))  # ~3.6 MB
    half = len(body) // 2
    parts = [body[:half], body[half:]] if members == 2 else [body]
    wire = b"".join(_deflated(part, wbits) if wbits else part for part in parts)
    inflater = Inflater(encoding)
    pieces = [
        p
        for at in range(0, len(wire), 65536)
        for p in inflater.inflate(wire[at : at + 65536], 1 << 30)
    ]
    assert b"".join(pieces) == body
    assert max(map(len, pieces)) <= (1 << 20 if wbits else 65536)
