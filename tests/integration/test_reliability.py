"""Faults and abuse, end to end: real pipelines read the emulator over loopback HTTP while it
injects transient faults, permanent errors and malformed answers, and serves bad records;
each test then reads the DuckDB file back and compares it with the emulator's own list.

* transient faults (5xx, HTTP-200 CommonErr, 429, stalls, resets, truncated, HTML, non-JSON
  and empty bodies) are retried: the run completes with exact data and the run's metrics
  show the retries;
* permanent errors fail at once (one request for the page, no backoff), name the API code
  and the fix, and leave the incremental state as it was;
* malformed answers are retried a bounded number of times, then fail without advancing the
  state; when they pass, the run completes;
* bad records are kept and flagged, or set aside as rejects with the reason; never dropped.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from volcengine_live import (
    ApiError,
    ConfigurationError,
    RetriesExhaustedError,
    pull_record_tasks,
    volcengine_live_source,
)
from volcengine_live.client import ClientConfig, LiveApiClient
from volcengine_live.reader import BATCH_ROWS
from volcengine_live.signing import utc_now
from volcengine_live_emulator import Emulator

from helpers import (
    ACCESS_KEY_ID,
    SECRET_ACCESS_KEY,
    Loader,
    assert_matches_emulator,
    credentials,
    list_a_task_twice,
    make_emulator,
    now,
)
from reliability_support import PageLog, find_in_chain, page_log

TASKS = 650
PAGE_SIZE = 100  # 7 pages: page 1 alone, then 2..7 concurrently
PAGES = 7

# The client's defaults: a permanent error that were retried would sleep at least
# 0.5 * (1 + 2 + 4 + 8 + 16) * 0.5 (the lowest jitter) = 7.75 s before giving up.
DEFAULT_ATTEMPTS = {"max_attempts": 6, "backoff_seconds": 0.5}
MIN_BACKOFF_BUDGET = 7.75
FAIL_FAST_SECONDS = 3.0


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    """Smaller than conftest's: 650 tasks, 7 pages of 100, no rate limit."""
    with make_emulator(TASKS, seed=23) as emu:
        yield emu


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def create_recent(loader: Loader) -> str:
    start = now() - timedelta(hours=2)
    task = loader.emulator.store.create_task(
        StartTime=start, EndTime=start + timedelta(hours=1), Status="已结束"
    )
    return str(task["TaskId"])


# --------------------------------------------------------------------- 1. transient faults

TRANSIENT = [
    # (fault kind, fault parameters, what the client's metrics call it)
    pytest.param("internal_error", {}, "InternalError", id="500-InternalError"),
    pytest.param("internal_service_error", {}, "InternalServiceError", id="502-envelope"),
    pytest.param("bad_response", {}, "InternalServiceError.BadResponse", id="502-BadResponse"),
    pytest.param("unavailable", {}, "ServiceUnavailableTemp", id="503"),
    pytest.param("service_timeout", {}, "InternalServiceTimeout", id="504"),
    pytest.param("common_err", {}, "CommonErr", id="200-CommonErr"),
    pytest.param("reset", {}, "ConnectionError", id="connection-reset"),
    pytest.param("truncated", {}, "ChunkedEncodingError", id="truncated-body"),
    pytest.param("html_502", {}, "TransientError", id="proxy-html-502"),
    pytest.param("non_json", {}, "MalformedResponseError", id="200-non-json"),
    pytest.param(
        "non_json",
        {"status": 503, "body": "<html><body>upstream unavailable</body></html>"},
        "TransientError",
        id="503-html",
    ),
    pytest.param("empty_body", {}, "MalformedResponseError", id="200-empty-body"),
]


# Page 3 is read concurrently with the others; page 1 alone, before any other (it tells
# TotalCount). Every kind on page 3, a few on page 1.
ON_PAGES = [pytest.param(*case.values, 3, id=f"{case.id}-page3") for case in TRANSIENT] + [
    pytest.param(*case.values, 1, id=f"{case.id}-page1")
    for case in TRANSIENT
    if case.id in ("500-InternalError", "200-CommonErr", "connection-reset", "truncated-body")
]


@pytest.mark.parametrize(("kind", "params", "reason", "page"), ON_PAGES)
def test_a_burst_of_transient_faults_on_one_page_is_retried_and_the_data_is_exact(
    loader: Loader, kind: str, params: dict[str, Any], reason: str, page: int
) -> None:
    loader.emulator.faults.add(kind, times=3, page=page, **params)
    with page_log(loader.emulator) as log:
        metrics = loader.run(page_size=PAGE_SIZE, max_attempts=5)
    assert_matches_emulator(loader)
    assert loader.emulator.faults.fired[kind] == 3 and not loader.emulator.faults.pending()
    assert log.count(page) == 4  # three faults in a row, then the page
    assert metrics["retries"] == 3
    assert metrics["faults"] == {reason: 3}
    assert metrics["throttled"] == 0
    assert metrics["rows_read"] == TASKS


def test_reads_that_stall_past_the_timeout_are_abandoned_and_retried(loader: Loader) -> None:
    loader.emulator.faults.add("stall", times=2, page=2, seconds=3)
    with page_log(loader.emulator) as log:
        started = time.monotonic()
        metrics = loader.run(page_size=PAGE_SIZE, request_timeout=1, max_attempts=4)
        elapsed = time.monotonic() - started
    assert_matches_emulator(loader)
    # Cut by the per-request deadline (connect, headers and body), which names itself.
    assert metrics["faults"] == {"RequestDeadlineError": 2} and metrics["retries"] == 2
    assert log.count(2) == 3
    # Two 1 s timeouts, not two 3 s stalls (nor dlt's or requests' defaults).
    assert 2.0 <= elapsed < 5.5, elapsed


def test_a_429_storm_without_retry_after_is_retried_and_counted_as_throttling(
    loader: Loader,
) -> None:
    for page in range(2, PAGES + 1):
        loader.emulator.faults.add("flow_limit", times=2, page=page)
    # No client-side pacing here: test_one_burst_of_concurrent_429s_... is about pacing.
    metrics = loader.run(page_size=PAGE_SIZE, max_attempts=4, requests_per_second=None)
    assert_matches_emulator(loader)
    storm = 2 * (PAGES - 1)
    assert metrics["throttled"] == storm and metrics["retries"] == storm
    assert metrics["faults"] == {"FlowLimitExceeded": storm}


def test_a_429_with_retry_after_is_honoured_and_each_retry_is_signed_afresh(
    tmp_path: Path,
) -> None:
    # The emulator refuses an X-Date more than 2 s old: a retry that re-sent the request
    # signed before the 3 s Retry-After wait would end in InvalidTimestamp.
    with Emulator(
        tasks=TASKS,
        seed=23,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        rate_limit=None,
        max_clock_skew=2.0,
    ) as emu:
        emu.faults.add("flow_limit", times=1, page=3, retry_after=3)
        emu.faults.add("flow_limit", times=1, page=5, retry_after=3)
        loader = Loader(emu, tmp_path)
        with page_log(emu) as log:
            metrics = loader.run(page_size=PAGE_SIZE, max_attempts=4)
        assert_matches_emulator(loader)
        assert metrics["throttled"] == 2 and metrics["faults"] == {"FlowLimitExceeded": 2}
        for page in (3, 5):
            first, second = log.times(page)
            assert second - first >= 2.9, f"page {page} retried before Retry-After"
        assert "InvalidTimestamp" not in emu.stats.by_code


def test_the_accounts_own_rate_limit_storm_is_ridden_out(tmp_path: Path) -> None:
    """The emulator's real limiter (10 requests/s per key) against 8 pages in flight and no
    client-side cap: a storm of genuine 429s, no injected fault."""
    with Emulator(
        tasks=800,
        seed=29,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        rate_limit=10,
    ) as emu:
        loader = Loader(emu, tmp_path)
        metrics = loader.run(page_size=50, max_attempts=10, requests_per_second=None)
        assert_matches_emulator(loader)
        assert emu.stats.throttled > 0
        assert metrics["throttled"] == emu.stats.throttled == metrics["retries"]


def test_one_burst_of_concurrent_429s_slows_the_client_once_not_to_a_crawl(
    loader: Loader, caplog: pytest.LogCaptureFixture
) -> None:
    for page in (2, 3, 4):
        loader.emulator.faults.add("flow_limit", times=1, page=page)
    config = ClientConfig(
        endpoint=loader.emulator.endpoint,
        max_attempts=4,
        backoff_seconds=0.05,
        requests_per_second=40,
    )
    client = LiveApiClient(ACCESS_KEY_ID, SECRET_ACCESS_KEY, config=config)
    caplog.set_level(logging.INFO, logger="volcengine_live")
    loader.pipeline().run(pull_record_tasks(client, page_size=PAGE_SIZE))
    assert_matches_emulator(loader)
    assert any("slowing to" in record.getMessage() for record in caplog.records)
    # Three 429s that arrived together are one congestion signal: halve once (40 -> 20).
    assert client.limiter.rate is not None and client.limiter.rate >= 20, client.limiter.rate


def test_mixed_faults_on_every_page_at_once_still_give_exact_data(loader: Loader) -> None:
    kinds = ["internal_error", "common_err", "reset", "truncated", "html_502", "flow_limit"]
    for page in range(1, PAGES + 1):
        loader.emulator.faults.add(kinds[page % len(kinds)], times=1, page=page)
        loader.emulator.faults.add(kinds[(page + 1) % len(kinds)], times=1, page=page)
    metrics = loader.run(page_size=PAGE_SIZE, max_attempts=3)
    assert_matches_emulator(loader)
    assert metrics["retries"] == 2 * PAGES
    assert sum(metrics["faults"].values()) == 2 * PAGES
    assert metrics["throttled"] == sum(
        1 for p in range(1, PAGES + 1) for k in (p, p + 1) if kinds[k % len(kinds)] == "flow_limit"
    )


# --------------------------------------------------------------------- 2. permanent faults


def run_expecting_failure(loader: Loader, source: Any) -> tuple[PipelineStepFailed, float, PageLog]:
    with page_log(loader.emulator) as log:
        started = time.monotonic()
        with pytest.raises(PipelineStepFailed) as failed:
            loader.pipeline().run(source)
        elapsed = time.monotonic() - started
    return failed.value, elapsed, log


def assert_named(error: BaseException, code: str, fix: str) -> ApiError:
    api_error = find_in_chain(error, ApiError)
    assert api_error.code == code
    assert not api_error.transient
    text = str(error)
    assert code in text, text
    assert fix in text, f"the error does not say how to fix it ({fix!r}): {text}"
    return api_error


@pytest.mark.parametrize(
    ("who", "code", "fix"),
    [
        pytest.param(
            {"secret_access_key": "not-the-secret"},
            "SignatureDoesNotMatch",
            "Check secret_access_key",
            id="wrong-secret",
        ),
        pytest.param(
            {"access_key_id": "AKLTnobodyknowsme"},
            "InvalidAccessKey",
            "Check access_key_id",
            id="unknown-key",
        ),
    ],
)
def test_wrong_credentials_fail_at_once_and_leave_the_state_alone(
    loader: Loader, who: dict[str, str], code: str, fix: str
) -> None:
    loader.run(page_size=PAGE_SIZE)
    before = copy.deepcopy(loader.state())
    created = create_recent(loader)
    loader.emulator.stats.reset()

    source = volcengine_live_source(
        credentials=credentials(**who),
        endpoint=loader.emulator.endpoint,
        page_size=PAGE_SIZE,
        **DEFAULT_ATTEMPTS,
    )
    error, elapsed, _ = run_expecting_failure(loader, source)

    assert_named(error, code, fix)
    assert elapsed < FAIL_FAST_SECONDS < MIN_BACKOFF_BUDGET, elapsed
    # The gateway refuses before the page is read: exactly one request, for page 1.
    assert loader.emulator.stats.requests == 1
    assert loader.emulator.stats.by_code == {code: 1}
    assert loader.state() == before
    assert created not in loader.rows()


@pytest.mark.parametrize(
    ("kind", "params", "code", "fix"),
    [
        pytest.param("access_denied", {}, "AccessDenied", "live:ListPullRecordTask", id="iam"),
        pytest.param(
            "error", {"code": "LackPolicy"}, "LackPolicy", "live:ListPullRecordTask", id="policy"
        ),
        pytest.param(
            "billing", {}, "RequestForbidden.BillingStatus", "settle the bill", id="billing"
        ),
        pytest.param(
            "error",
            {"code": "RequestForbidden.AccountIDNotAllow"},
            "RequestForbidden.AccountIDNotAllow",
            "Check the account and region",
            id="account-not-allowed",
        ),
        pytest.param(
            "error",
            {"code": "MissingAuthenticationToken"},
            "MissingAuthenticationToken",
            "VOLC_ACCESSKEY",
            id="no-token",
        ),
    ],
)
@pytest.mark.parametrize("page", [1, 3])
def test_permission_and_billing_errors_fail_at_once_and_leave_the_state_alone(
    loader: Loader, kind: str, params: dict[str, Any], code: str, fix: str, page: int
) -> None:
    loader.run(page_size=PAGE_SIZE)
    before = copy.deepcopy(loader.state())
    rows_before = loader.rows()
    created = create_recent(loader)
    loader.emulator.faults.add(kind, times=None, page=page, **params)

    error, elapsed, log = run_expecting_failure(
        loader, loader.source(page_size=PAGE_SIZE, **DEFAULT_ATTEMPTS)
    )

    assert_named(error, code, fix)
    assert elapsed < FAIL_FAST_SECONDS < MIN_BACKOFF_BUDGET, elapsed
    assert log.count(page) == 1, log.counts()
    assert loader.state() == before
    assert loader.rows() == rows_before
    assert created not in loader.rows()


NOT_AN_API = [
    pytest.param(404, "<html><body><h1>404 Not Found</h1></body></html>", id="404-html"),
    pytest.param(403, "<html><body>Request blocked by WAF</body></html>", id="403-waf-html"),
]


@pytest.mark.parametrize(("status", "body"), NOT_AN_API)
def test_a_4xx_page_that_is_not_the_api_fails_at_once_naming_the_status(
    loader: Loader, status: int, body: str
) -> None:
    """A wrong endpoint or a proxy in the way answers 4xx without the API's envelope."""
    loader.run(page_size=PAGE_SIZE)
    before = copy.deepcopy(loader.state())
    loader.emulator.faults.add("non_json", times=None, page=1, status=status, body=body)
    error, elapsed, log = run_expecting_failure(
        loader, loader.source(page_size=PAGE_SIZE, **DEFAULT_ATTEMPTS)
    )
    api_error = find_in_chain(error, ApiError)
    assert api_error.http_status == status and not api_error.transient
    assert f"HTTP {status}" in str(error)
    assert elapsed < FAIL_FAST_SECONDS and log.count(1) == 1
    assert loader.state() == before


@pytest.mark.parametrize(("status", "body"), NOT_AN_API)
def test_a_4xx_page_that_is_not_the_api_says_what_to_check(
    loader: Loader, status: int, body: str
) -> None:
    loader.emulator.faults.add("non_json", times=None, page=1, status=status, body=body)
    error, _, _ = run_expecting_failure(
        loader, loader.source(page_size=PAGE_SIZE, **DEFAULT_ATTEMPTS)
    )
    assert find_in_chain(error, ApiError).hint
    assert "endpoint" in str(find_in_chain(error, ApiError))


def test_missing_credentials_are_refused_before_any_request(
    loader: Loader, monkeypatch: pytest.MonkeyPatch
) -> None:
    loader.run(page_size=PAGE_SIZE)
    before = copy.deepcopy(loader.state())
    loader.emulator.stats.reset()
    # Nothing anywhere, then only half of the official SDKs' pair.
    for environment in ({}, {"VOLC_ACCESSKEY": ACCESS_KEY_ID}):
        for name, value in environment.items():
            monkeypatch.setenv(name, value)
        with pytest.raises(ConfigurationError) as refused:
            loader.pipeline().run(volcengine_live_source(endpoint=loader.emulator.endpoint))
        message = str(refused.value)
        for place in ("secrets.toml", "SOURCES__VOLCENGINE_LIVE__CREDENTIALS__", "VOLC_SECRETKEY"):
            assert place in message
    assert loader.emulator.stats.requests == 0
    assert loader.state() == before


@pytest.mark.parametrize("page_size", [0, -1, 501])
def test_an_out_of_range_page_size_is_refused_by_the_source(loader: Loader, page_size: int) -> None:
    with pytest.raises(ConfigurationError, match="page_size"):
        loader.source(page_size=page_size)
    assert loader.emulator.stats.requests == 0


def test_the_apis_invalid_param_reaches_the_user_as_a_named_error(loader: Loader) -> None:
    """Bypass the source's own check (the resource takes a client directly): the emulator
    answers InvalidParam, which fails at once and says which setting to fix."""

    def client() -> LiveApiClient:
        config = ClientConfig(endpoint=loader.emulator.endpoint, **DEFAULT_ATTEMPTS)
        return LiveApiClient(ACCESS_KEY_ID, SECRET_ACCESS_KEY, config=config)

    pipeline = loader.pipeline()
    pipeline.run(pull_record_tasks(client(), page_size=PAGE_SIZE))
    before = copy.deepcopy(pipeline.state["sources"])
    loader.emulator.stats.reset()

    started = time.monotonic()
    with pytest.raises(PipelineStepFailed) as failed:
        loader.pipeline().run(pull_record_tasks(client(), page_size=501))
    elapsed = time.monotonic() - started

    api_error = assert_named(failed.value, "InvalidParam", "Check page_size (1 to 500)")
    assert api_error.http_status == 400 and "PageSize" in api_error.message
    assert elapsed < FAIL_FAST_SECONDS
    assert loader.emulator.stats.requests == 1
    assert loader.pipeline().state["sources"] == before


@pytest.mark.parametrize("skew", [timedelta(minutes=20), timedelta(minutes=-20)])
def test_a_clock_20_minutes_off_fails_at_once_with_invalid_timestamp(
    loader: Loader, skew: timedelta
) -> None:
    """Client level (the signer's clock is the only way to skew it), then through a pipeline
    to show that the state is left alone."""

    def skewed_client() -> LiveApiClient:
        config = ClientConfig(endpoint=loader.emulator.endpoint, **DEFAULT_ATTEMPTS)
        client = LiveApiClient(ACCESS_KEY_ID, SECRET_ACCESS_KEY, config=config)
        client._signer.clock = lambda: utc_now() + skew
        return client

    client = skewed_client()
    started = time.monotonic()
    with pytest.raises(ApiError) as refused:
        client.fetch_page(1, PAGE_SIZE)
    assert time.monotonic() - started < FAIL_FAST_SECONDS
    assert refused.value.code == "InvalidTimestamp" and not refused.value.transient
    assert "Sync this machine's clock" in str(refused.value)
    assert loader.emulator.stats.requests == 1
    assert client.stats.retries == 0

    pipeline = loader.pipeline()
    good = LiveApiClient(
        ACCESS_KEY_ID, SECRET_ACCESS_KEY, config=ClientConfig(endpoint=loader.emulator.endpoint)
    )
    pipeline.run(pull_record_tasks(good, page_size=PAGE_SIZE))
    before = copy.deepcopy(pipeline.state["sources"])
    loader.emulator.stats.reset()
    with pytest.raises(PipelineStepFailed) as failed:
        loader.pipeline().run(pull_record_tasks(skewed_client(), page_size=PAGE_SIZE))
    assert_named(failed.value, "InvalidTimestamp", "clock")
    assert loader.emulator.stats.requests == 1
    assert loader.pipeline().state["sources"] == before


# -------------------------------------------------------------------- 3. malformed answers

MALFORMED = [
    pytest.param("missing_result", "no Result object", id="missing_result"),
    pytest.param("list_not_list", "Result.List is a dict", id="list_not_list"),
    pytest.param("missing_pagination", "TotalCount is missing", id="missing_pagination"),
]


@pytest.mark.parametrize(("kind", "described"), MALFORMED)
def test_a_page_that_stays_malformed_fails_after_bounded_retries_without_advancing(
    loader: Loader, kind: str, described: str
) -> None:
    loader.run(page_size=PAGE_SIZE)
    before = copy.deepcopy(loader.state())
    rows_before = loader.rows()
    created = create_recent(loader)
    loader.emulator.faults.add(kind, times=None, page=2)

    error, elapsed, log = run_expecting_failure(
        loader, loader.source(page_size=PAGE_SIZE, max_attempts=3)
    )

    exhausted = find_in_chain(error, RetriesExhaustedError)
    assert "Page 2 failed 3 times" in str(exhausted)
    assert described in str(error)
    assert "raise max_attempts" in str(error)
    assert log.count(2) == 3
    assert elapsed < FAIL_FAST_SECONDS
    assert loader.state() == before
    assert loader.rows() == rows_before and created not in rows_before


@pytest.mark.parametrize(("kind", "described"), MALFORMED)
def test_a_page_malformed_twice_then_good_completes_with_exact_data(
    loader: Loader, kind: str, described: str
) -> None:
    loader.emulator.faults.add(kind, times=2, page=2)
    metrics = loader.run(page_size=PAGE_SIZE, max_attempts=3)
    assert_matches_emulator(loader)
    assert metrics["faults"] == {"MalformedResponseError": 2} and metrics["retries"] == 2


# ------------------------------------------------------------------------- 4. bad records

GOOD = {"Vhost": "v.example", "Domain": "d.example", "App": "live", "Stream": "bad-data"}


def bad_records() -> list[tuple[dict[str, Any], str | None, str | None]]:
    """(raw record, expected data_issues or None, expected reject reason or None)."""
    start = now() - timedelta(hours=5)
    times = {"StartTime": iso(start), "EndTime": iso(start + timedelta(hours=1))}
    finished = {**GOOD, **times, "Status": "已结束"}
    return [
        ({**finished}, None, "TaskId missing"),
        ({**finished, "TaskId": None}, None, "TaskId missing"),
        ({**finished, "TaskId": ""}, None, "TaskId missing"),
        ({**finished, "TaskId": 12345}, None, "TaskId is a int, not a string"),
        (
            {**finished, "TaskId": "bad-start", "StartTime": "yesterday"},
            "StartTime unparseable: 'yesterday'",
            None,
        ),
        (
            {**finished, "TaskId": "naive-start", "StartTime": "2024-01-01T10:00:00"},
            "StartTime unparseable: '2024-01-01T10:00:00'",
            None,
        ),
        (
            {**{k: v for k, v in finished.items() if k != "StartTime"}, "TaskId": "no-start"},
            "StartTime missing",
            None,
        ),
        (
            {**finished, "TaskId": "end-first", "EndTime": iso(start - timedelta(hours=1))},
            "EndTime before StartTime",
            None,
        ),
        (
            {**finished, "TaskId": "new-status", "Status": "已归档"},
            "Status unknown: '已归档'",
            None,
        ),
        (
            {**finished, "TaskId": "nulls", "Vhost": None, "Domain": None, "Status": None},
            "Vhost missing; Domain missing; Status missing",
            None,
        ),
        (
            {**finished, "TaskId": "extra-fields", "RecordFormat": "hls", "Tags": {"k": 1}},
            None,
            None,
        ),
    ]


def create_bad_records(
    loader: Loader, records: list[tuple[dict[str, Any], str | None, str | None]]
) -> None:
    for record, _, _ in records:
        loader.emulator.store.create_task(record, raw=True)


def test_records_with_bad_fields_are_kept_and_flagged(loader: Loader) -> None:
    records = [r for r in bad_records() if r[2] is None]
    create_bad_records(loader, records)
    expected_flagged = {r["TaskId"]: issue for r, issue, _ in records if issue}

    metrics = loader.run(page_size=PAGE_SIZE)

    assert_matches_emulator(loader)
    rows = loader.rows()
    for record, issue, _ in records:
        assert rows[record["TaskId"]]["data_issues"] == issue, record
    assert rows["new-status"]["status_code"] == "unknown"
    assert rows["bad-start"]["start_time"] is None
    assert rows["extra-fields"]["record_format"] == "hls"
    assert json.loads(rows["extra-fields"]["tags"]) == {"k": 1}
    # The generated tasks are clean: the flagged rows are exactly the bad ones.
    flagged = dict(
        loader.query(
            "SELECT task_id, data_issues FROM pull_record_tasks WHERE data_issues IS NOT NULL"
        )
    )
    assert flagged == expected_flagged
    assert len(rows) == loader.emulator.store.count  # nothing dropped
    assert metrics["flagged"] == len(expected_flagged) and metrics["rejected"] == 0

    again = loader.run(page_size=PAGE_SIZE)
    assert again["flagged"] == len(expected_flagged)
    assert_matches_emulator(loader)


def assert_rejects_kept_once(
    loader: Loader, records: list[tuple[dict[str, Any], str | None, str | None]]
) -> None:
    """Run twice: every record is a row or a reject (with its reason), each reject once."""
    expected_rejects = sorted(reason for _, _, reason in records if reason)
    expected_flagged = {r["TaskId"]: issue for r, issue, _ in records if issue}

    metrics = loader.run(page_size=PAGE_SIZE)

    assert_matches_emulator(loader)
    rows = loader.rows()
    rejects = loader.query(
        "SELECT reason, raw_record, page_num FROM pull_record_task_rejects ORDER BY reason"
    )
    assert sorted(reason for reason, _, _ in rejects) == expected_rejects
    assert all(page == 1 for _, _, page in rejects)
    raw_ids = [json.loads(raw).get("TaskId", "<absent>") for _, raw, _ in rejects]
    expected_ids = [r.get("TaskId", "<absent>") for r, _, reason in records if reason]
    assert sorted(raw_ids, key=repr) == sorted(expected_ids, key=repr)
    # Nothing silently dropped: every record the API listed is a row or a reject.
    assert len(rows) + len(rejects) == loader.emulator.store.count
    assert metrics["flagged"] == len(expected_flagged)
    assert metrics["rejected"] == len(expected_rejects)

    again = loader.run(page_size=PAGE_SIZE)
    assert loader.query("SELECT count(*) FROM pull_record_task_rejects")[0][0] == len(rejects)
    assert again["rejected"] == len(expected_rejects)
    assert_matches_emulator(loader)


def test_a_record_without_a_task_id_goes_to_rejects_with_the_reason_once(
    loader: Loader,
) -> None:
    records = [r for r in bad_records() if r[2] is None]
    records.append(bad_records()[0])  # TaskId absent
    create_bad_records(loader, records)
    assert_rejects_kept_once(loader, records)


def test_several_records_without_a_task_id_do_not_look_like_a_moving_list(
    loader: Loader,
) -> None:
    records = bad_records()  # TaskId absent, null, "" and 12345
    create_bad_records(loader, records)
    assert_rejects_kept_once(loader, records)


def test_a_task_the_api_lists_twice_does_not_block_every_run(loader: Loader) -> None:
    list_a_task_twice(loader.emulator, now() - timedelta(hours=3))
    loader.run(page_size=PAGE_SIZE)
    assert_matches_emulator(loader)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        pytest.param(2500, "high", id="int-then-string"),
        pytest.param(None, 2500, id="null-then-int"),
    ],
)
def test_an_unknown_field_whose_type_differs_between_batches_does_not_break_the_run(
    tmp_path: Path, first: Any, second: Any
) -> None:
    """An account larger than one batch: the newest task has the new field as ``first``,
    the oldest (read in the next batch) as ``second``."""
    batch = int(BATCH_ROWS)
    with Emulator(
        tasks=batch + 500,
        seed=31,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        rate_limit=None,
    ) as emu:
        start = now() - timedelta(hours=3)
        times = {"StartTime": iso(start), "EndTime": iso(start + timedelta(hours=1))}
        emu.store.create_task(
            {**GOOD, **times, "Status": "已结束", "TaskId": "x-1", "Bitrate": first}, raw=True
        )
        oldest = emu.store.generator.task_id(0)
        emu.store.update_task(oldest, Bitrate=second)
        loader = Loader(emu, tmp_path)
        # One page in flight: pages arrive in order, so the oldest task is in the 2nd batch.
        loader.run(page_size=500, max_concurrency=1, requests_per_second=None)
        assert_matches_emulator(loader)
        assert loader.rows()[oldest]["bitrate"] is not None


def test_an_unknown_field_whose_type_changes_between_runs_does_not_wedge_the_pipeline(
    loader: Loader,
) -> None:
    start = now() - timedelta(hours=3)
    times = {"StartTime": iso(start), "EndTime": iso(start + timedelta(hours=1))}
    record = {**GOOD, **times, "Status": "已结束"}
    loader.emulator.store.create_task({**record, "TaskId": "x-1", "Bitrate": 2500}, raw=True)
    loader.run(page_size=PAGE_SIZE)
    loader.emulator.store.create_task({**record, "TaskId": "x-2", "Bitrate": "high"}, raw=True)
    try:
        loader.run(page_size=PAGE_SIZE)
    finally:
        # Whatever happened, the next run must not be stuck on a poisoned package.
        pipeline = loader.pipeline()
        stuck = pipeline.list_normalized_load_packages()
    assert not stuck
    assert_matches_emulator(loader)


def test_the_reject_table_is_not_created_when_every_record_is_good(loader: Loader) -> None:
    metrics = loader.run(page_size=PAGE_SIZE)
    assert metrics["rejected"] == 0 and metrics["flagged"] == 0
    tables = {row[0] for row in loader.query("SELECT table_name FROM information_schema.tables")}
    assert "pull_record_tasks" in tables
    assert "pull_record_task_rejects" not in tables


# ------------------------------------------------------------- 5. the list moves mid-pass


def create_when_page_2_is_read(loader: Loader) -> Any:
    """A task created while a pass is reading: TotalCount moves under the scan."""
    created: list[str] = []

    def hook(page_num: int) -> None:
        if page_num == 2 and not created:
            created.append(create_recent(loader))

    return created, loader.emulator.on_request(hook)


def test_a_task_created_during_a_pass_is_loaded_by_the_same_pass(loader: Loader) -> None:
    """The new task pushes every page down by one: the pass reads again only the pages
    that shift hid (the head, where the new task is, at least), not the whole list."""
    loader.run(page_size=PAGE_SIZE)
    created, remove = create_when_page_2_is_read(loader)
    try:
        metrics = loader.run(page_size=PAGE_SIZE)
    finally:
        remove()
    assert metrics["scans"] == 1
    assert 1 <= metrics["pages_reread"] <= 2
    assert created and created[0] in loader.rows()
    assert_matches_emulator(loader)


def test_a_re_read_pass_does_not_make_runs_rewrite_every_day(loader: Loader) -> None:
    loader.run(page_size=PAGE_SIZE)
    loader.run(page_size=PAGE_SIZE)  # steady state: no late days
    _created, remove = create_when_page_2_is_read(loader)
    try:
        moved = loader.run(page_size=PAGE_SIZE)
    finally:
        remove()
    unchanged = loader.run(page_size=PAGE_SIZE)
    assert_matches_emulator(loader)
    # Nothing changed below the window in either run: no day to re-read, no second pass.
    assert (moved["scans"], moved["late_days"]) == (1, 0)
    assert (unchanged["scans"], unchanged["late_days"]) == (1, 0)


def test_a_status_that_changes_between_two_passes_of_a_run_is_not_left_stale(
    loader: Loader,
) -> None:
    """An old task still recording is read by the first page; while the pass goes on, the
    task finishes and a new task moves the list, so the run reads the head again, the old
    task with it. The destination must end with the status the last read saw, now and
    after later runs (the task is below the window and settled: nothing else would ever
    rewrite it)."""
    start = now() - timedelta(days=30)
    old = str(
        loader.emulator.store.create_task(
            StartTime=start, EndTime=start + timedelta(days=60), Status="生效中"
        )["TaskId"]
    )
    loader.run(page_size=PAGE_SIZE)
    assert loader.rows()[old]["status"] == "生效中"

    done: list[int] = []

    def finish_and_move(page_num: int) -> None:
        if page_num == 2 and not done:  # page 1 (with the old task) is read already
            done.append(page_num)
            loader.emulator.store.set_status(old, "已结束")
            create_recent(loader)

    remove = loader.emulator.on_request(finish_and_move)
    try:
        metrics = loader.run(page_size=PAGE_SIZE)
    finally:
        remove()
    assert metrics["scans"] == 1 and metrics["pages_reread"] >= 1
    assert_matches_emulator(loader)
    loader.run(page_size=PAGE_SIZE)
    assert loader.rows()[old]["status"] == "已结束"
    assert_matches_emulator(loader)
