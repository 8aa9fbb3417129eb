"""``record_files``: the files finished recordings left (``DescribeRecordTaskFileHistory``),
loaded incrementally and exactly over several runs; and the emulator that serves them,
with every documented rule enforced. Real pipelines against the emulator on loopback, into
real DuckDB files; the emulator's clock is set in the past (the source walks its windows to
the wall clock), and moved forward between runs so that recordings finish between them."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dlt
import pytest

from volcengine_live.client import ClientConfig, LiveApiClient
from volcengine_live.errors import ApiError, RetriesExhaustedError
from volcengine_live.record_files import WINDOW, file_row, parse_duration, rfc3339, windows
from volcengine_live.records import parse_time
from volcengine_live.responses import Page, parse_page
from volcengine_live.settings import FILES_ACTION, FILES_TABLE_NAME
from volcengine_live_emulator import Emulator

from helpers import ACCESS_KEY_ID, SECRET_ACCESS_KEY, Loader, make_emulator, now

WALL = now()
"""The wall clock when the module was loaded; every emulator clock stays before it."""

Identity = tuple[str, str, str, datetime, datetime]


def file_metrics(pipeline: dlt.Pipeline) -> dict[str, Any]:
    """The ``record_files`` resource's metrics of the pipeline's last run."""
    trace = pipeline.last_trace
    assert trace is not None and trace.last_extract_info is not None
    for per_load in trace.last_extract_info.metrics.values():
        for step in per_load:
            found = step["resource_metrics"].get(FILES_TABLE_NAME)
            if found is not None:
                return dict(found.custom_metrics)
    raise AssertionError("record_files did not run")


def expected_files(emulator: Emulator, since: datetime) -> list[Identity]:
    """What the emulator lists now, from ``since`` on, as (vhost, app, stream, start, end)."""
    return sorted(
        (r.vhost, r.app, r.stream, _at(r.start), _at(r.end))
        for r in emulator.record_files.listed()
        if r.start >= since.timestamp()
    )


def loaded_files(loader: Loader) -> list[Identity]:
    rows = loader.query(
        "SELECT vhost, app, stream, start_time, end_time FROM record_files ORDER BY ALL"
    )
    return sorted(
        (v, a, s, b.astimezone(timezone.utc), e.astimezone(timezone.utc)) for v, a, s, b, e in rows
    )


def assert_exact(loader: Loader, since: datetime) -> int:
    """The destination holds every file the emulator lists from ``since`` on, once each."""
    ((count, distinct),) = loader.query(
        "SELECT count(*), count(DISTINCT file_id) FROM record_files"
    )
    assert count == distinct, "a file stored twice"
    expected = expected_files(loader.emulator, since)
    assert loaded_files(loader) == expected
    return len(expected)


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, timezone.utc)


def run_files(loader: Loader, **settings: Any) -> dict[str, Any]:
    pipeline = loader.pipeline()
    pipeline.run(loader.source(record_files=True, **settings))
    return file_metrics(pipeline)


@pytest.fixture
def recent(tmp_path: Path) -> Iterator[Loader]:
    """300 tasks, the emulator's clock a day before the wall clock."""
    with make_emulator(tasks=300, now=WALL - timedelta(days=1)) as emu:
        yield Loader(emu, tmp_path)


@pytest.fixture
def anchored(tmp_path: Path) -> Iterator[Loader]:
    """600 tasks, the emulator's clock 20 days before the wall clock."""
    with make_emulator(tasks=600, now=WALL - timedelta(days=20)) as emu:
        yield Loader(emu, tmp_path)


# ------------------------------------------------------------------ the source, end to end


def test_several_runs_load_every_file_once_as_new_recordings_arrive(anchored: Loader) -> None:
    loader, emu = anchored, anchored.emulator
    clock = _at(int(emu.store.clock))
    since = clock - timedelta(days=30)  # 50 days before the wall clock: 8 windows
    kinds = {o.kind for o in emu.record_files.outcomes()}
    assert kinds == {"complete", "short", "cut", "missing"}

    first = run_files(loader, initial_start_time=since)
    assert first["windows"] == 8 and first["rows_written"] == assert_exact(loader, since)
    tasks = [parse_time(t["StartTime"]) for t in emu.store.all_tasks()]
    in_range = sum(1 for start in tasks if start is not None and start >= since)
    assert loader.query("SELECT count(*) FROM pull_record_tasks")[0][0] == in_range

    # A week on: tasks finished (their files appear), a new task recorded, and a recording
    # that no task describes.
    emu.store.create_task(
        StartTime=clock + timedelta(days=2), EndTime=clock + timedelta(days=2, hours=1)
    )
    emu.record_files.add_orphan(
        "v.example",
        "live",
        "preset-x",
        clock + timedelta(days=3),
        clock + timedelta(days=3, hours=2),
    )
    emu.store.advance(clock + timedelta(days=6))
    second = run_files(loader, initial_start_time=since)
    assert second["rows_written"] > 0
    assert_exact(loader, since)

    emu.store.advance(clock + timedelta(days=15))  # more than the 7 days of one window
    third = run_files(loader, initial_start_time=since)
    assert third["windows"] >= 3  # from the latest start less the 7-day lag, to now
    assert_exact(loader, since)
    statuses = emu.stats.by_status
    assert set(statuses) == {200}, f"the emulator refused requests: {statuses}"


def test_a_recording_that_finishes_after_a_run_lands_on_the_next_thanks_to_the_lag(
    tmp_path: Path,
) -> None:
    with make_emulator(tasks=100, now=WALL - timedelta(days=10)) as emu:
        clock = _at(int(emu.store.clock))
        start, end = clock - timedelta(hours=2), clock + timedelta(hours=1)
        task_id = next(
            f"late-{n}"
            for n in range(100)
            if emu.record_files.fate(f"late-{n}", 5 * 3600) == "complete"
        )
        emu.store.create_task(TaskId=task_id, StartTime=start, EndTime=end)
        # a later recording, listed at the first run: the cursor passes the late one's start
        emu.record_files.add_orphan(
            "v.example",
            "live",
            "preset-y",
            clock - timedelta(hours=1),
            clock - timedelta(minutes=30),
        )
        since = clock - timedelta(days=3)
        with_lag = Loader(emu, tmp_path / "lag", name="files_with_lag")
        no_lag = Loader(emu, tmp_path / "none", name="files_without_lag")
        for loader in (with_lag, no_lag):
            run_files(
                loader,
                initial_start_time=since,
                record_files_lag_hours=0 if loader is no_lag else 168,
            )
            assert ("live", start) not in {(a, s) for _, a, _, s, _ in loaded_files(loader)}
        emu.store.advance(clock + timedelta(days=1))
        late = [(r.start, r.end) for r in emu.record_files.listed() if r.task_id == task_id]
        assert late == [(int(start.timestamp()), int(end.timestamp()))]

        run_files(with_lag, initial_start_time=since)
        assert_exact(with_lag, since)
        run_files(no_lag, initial_start_time=since, record_files_lag_hours=0)
        starts = {row[3] for row in loaded_files(no_lag)}
        assert start not in starts, "without the lag, the late file is skipped: the lag matters"


def test_files_that_two_windows_both_list_are_written_once(tmp_path: Path) -> None:
    with make_emulator(tasks=400, now=WALL - timedelta(days=3), file_selection="overlap") as emu:
        loader = Loader(emu, tmp_path)
        since = _at(int(emu.store.clock)) - timedelta(days=20)
        metrics = run_files(loader, initial_start_time=since)
        assert metrics["rows_written"] == assert_exact(loader, since)
        assert metrics["files_listed"] > metrics["rows_written"]  # files across a boundary


def test_transient_faults_of_the_file_history_are_retried_and_lose_nothing(
    anchored: Loader,
) -> None:
    anchored.emulator.file_faults.add("common_err", times=2)
    anchored.emulator.file_faults.add("html_502", times=1)
    since = _at(int(anchored.emulator.store.clock)) - timedelta(days=9)
    metrics = run_files(anchored, initial_start_time=since, max_attempts=5)
    assert metrics["retries"] == 3 and metrics["faults"] == {"CommonErr": 2, "TransientError": 1}
    assert_exact(anchored, since)


def test_the_first_run_without_a_start_reads_the_first_window_only(recent: Loader) -> None:
    metrics = run_files(recent)
    assert metrics["windows"] in (1, 2)  # 168 h, in windows a second short of 7 days
    first = loaded_files(recent)
    start = min(row[3] for row in first)
    assert WALL - timedelta(hours=168, seconds=1) <= start < WALL - timedelta(hours=167)
    assert first == expected_files(recent.emulator, start)
    state = recent.pipeline().state["sources"]["volcengine_live"]["resources"]
    assert state[FILES_TABLE_NAME]["first_window_start"]


def test_the_task_list_alone_is_the_default_and_record_files_is_selected_by_name(
    recent: Loader,
) -> None:
    source = recent.source()
    assert list(source.selected_resources) == ["pull_record_tasks"]
    assert set(recent.source(record_files=True).selected_resources) == {
        "pull_record_tasks",
        "record_files",
    }
    pipeline = recent.pipeline()
    pipeline.run(source.with_resources("pull_record_tasks", "record_files"))
    assert file_metrics(pipeline)["windows"] >= 1
    assert recent.query("SELECT count(*) FROM record_files")[0][0] > 0


def test_file_filters_load_only_the_files_of_that_stream(anchored: Loader) -> None:
    emu = anchored.emulator
    since = _at(int(emu.store.clock)) - timedelta(days=30)
    recordings = [r for r in emu.record_files.listed() if r.start >= since.timestamp()]
    busiest = max(
        {(r.vhost, r.app, r.stream) for r in recordings},
        key=lambda k: sum((r.vhost, r.app, r.stream) == k for r in recordings),
    )
    vhost, app, stream = busiest
    run_files(anchored, initial_start_time=since, vhost=vhost, app=app, stream=stream)
    expected = [f for f in expected_files(emu, since) if f[:3] == busiest]
    assert expected and loaded_files(anchored) == expected


def test_every_field_is_kept_with_the_times_and_duration_read(anchored: Loader) -> None:
    since = _at(int(anchored.emulator.store.clock)) - timedelta(days=7)
    run_files(anchored, initial_start_time=since, record_files_type="vod")
    rows = anchored.query(
        "SELECT storage_type, vid, bucket, duration, duration_seconds, start_time_utc_text, "
        "start_time_text, data_issues, epoch(end_time) - epoch(start_time) FROM record_files"
    )
    assert rows and {row[0] for row in rows} == {"vod"}
    assert all(row[1] and row[2] == "" for row in rows)  # VOD files: a Vid, no bucket
    assert all(row[4] == float(row[3]) == row[8] for row in rows)
    assert all(row[7] is None for row in rows)
    assert any(row[5] is None for row in rows)  # the older rows without *UTC: read from +08:00
    assert all(row[6].endswith("+08:00") for row in rows)


# ------------------------------------------------------------------ rows and windows


def test_windows_cover_the_range_in_spans_of_at_most_seven_days_each_touching_the_next() -> None:
    start = datetime(2024, 1, 1, 0, 0, 0, 500_000, tzinfo=timezone.utc)
    end = start + timedelta(days=22, seconds=3)
    found = windows(start, end)
    assert found[0][0] == start.replace(microsecond=0) and found[-1][1] >= end
    assert all(b - a <= WINDOW < timedelta(days=7) for a, b in found)
    assert all(found[i][1] == found[i + 1][0] for i in range(len(found) - 1))
    assert len(found) == 4 and windows(end, start) == []


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("3600", 3600.0), ("3600.5", 3600.5), (" 90s ", 90.0), ("1500ms", 1.5), ("2 min", 120.0),
     ("1h", 3600.0), ("01:02:03", 3723.0), ("02:03", 123.0), ("", None), ("about an hour", None),
     (None, None), (12, 12.0)],
)  # fmt: skip
def test_a_duration_is_read_leniently(text: Any, seconds: float | None) -> None:
    assert parse_duration(text) == seconds


def test_a_file_row_prefers_the_utc_fields_and_flags_what_it_cannot_read() -> None:
    seen = datetime(2024, 1, 2, tzinfo=timezone.utc)
    record = {
        "Vhost": "v", "App": "a", "Stream": "s", "Bucket": "b", "Path": "p/f.flv", "Vid": "",
        "FileName": "f.flv", "Format": "flv", "Duration": "an hour",
        "StartTime": "2024-01-01 10:00:00", "EndTime": "2024-01-01 11:00:00",
        "StartTimeUTC": "2024-01-01T02:00:00Z", "NewField": {"x": 1},
    }  # fmt: skip
    row = file_row(record, "tos", seen)
    assert row["start_time"] == datetime(2024, 1, 1, 2, tzinfo=timezone.utc)
    assert row["end_time"] is None and row["duration"] == "an hour"
    assert row["data_issues"] == (
        "EndTime unparseable (no time with an offset): '2024-01-01 11:00:00'; "
        "Duration unparseable: 'an hour'"
    )
    assert row["new_field"] == '{"x": 1}' and row["start_time_text"] == "2024-01-01 10:00:00"
    same = file_row(
        {**record, "StartTime": "2024-01-01T10:00:00+08:00", "Duration": "1"}, "tos", seen
    )
    assert same["file_id"] == row["file_id"]  # the same file, whatever else changed
    assert file_row(record, "vod", seen)["file_id"] != row["file_id"]
    odd = file_row(["not", "a", "file"], "tos", seen)
    assert odd["data_issues"] == "record is a list, not an object" and odd["file_id"]


def test_a_duration_that_disagrees_with_the_times_is_flagged() -> None:
    record = {
        "Vhost": "v", "App": "a", "Stream": "s", "FileName": "f", "Duration": "3600000",
        "StartTimeUTC": "2024-01-01T02:00:00Z", "EndTimeUTC": "2024-01-01T03:00:00Z",
    }  # fmt: skip
    row = file_row(record, "tos", datetime(2024, 1, 2, tzinfo=timezone.utc))
    assert row["duration_seconds"] == 3_600_000.0
    assert row["data_issues"] == "Duration 3.6e+06 s is not EndTime - StartTime (3600 s)"


# ------------------------------------------------------------------ the emulator's rules


def files_client(emulator: Emulator, attempts: int = 1) -> LiveApiClient:
    config = ClientConfig(
        endpoint=emulator.endpoint, requests_per_second=None, max_attempts=attempts
    )
    return LiveApiClient(
        ACCESS_KEY_ID, SECRET_ACCESS_KEY, config=config, action=FILES_ACTION, account_limit=10
    )


def ask(client: LiveApiClient, **body: Any) -> Page:
    fields = {"PageNum": 1, "PageSize": 100, **body}
    fields = {key: value for key, value in fields.items() if value is not None}

    def parse(status: int, headers: Any, content: bytes) -> Page:
        return parse_page(status, headers, content, 1, 100, rows_key="Data")

    return client.call(json.dumps(fields).encode(), parse, "files")


@pytest.fixture
def emulator_now() -> Iterator[Emulator]:
    with make_emulator(tasks=300, now=WALL - timedelta(days=1)) as emu:
        yield emu


SPAN = {"DateFrom": "2024-01-01T00:00:00Z", "DateTo": "2024-01-08T00:00:00Z"}


@pytest.mark.parametrize(
    ("body", "code", "says"),
    [
        ({"DateTo": "2024-01-08T00:00:01Z"}, "InvalidParam", "7 days"),
        ({"DateFrom": None}, "InvalidParam", "DateFrom is required"),
        ({"DateTo": None}, "InvalidParam", "DateTo is required"),
        ({"PageNum": None}, "InvalidParam", "PageNum is required"),
        ({"PageSize": None}, "InvalidParam", "PageSize is required"),
        ({"PageSize": 0}, "InvalidParam", "PageSize"),
        ({"PageNum": "1"}, "InvalidParam.BindError", "PageNum"),
        ({"DateTo": "2024-01-01T00:00:00+00:00"}, "InvalidParam", "later than DateFrom"),
        ({"DateFrom": "2024-01-01 00:00:00"}, "InvalidParam", "offset"),
        ({"Stream": "room1"}, "InvalidParam", "Stream requires App"),
        ({"Type": "cos"}, "InvalidParam", "tos or vod"),
        ({"App": "x" * 31}, "InvalidParam", "App"),
    ],
)
def test_the_emulator_refuses_what_the_api_documents_as_invalid(
    emulator_now: Emulator, body: dict[str, Any], code: str, says: str
) -> None:
    with pytest.raises(ApiError) as refused:
        ask(files_client(emulator_now), **{**SPAN, **body})
    assert refused.value.code == code and refused.value.http_status == 400
    assert says in refused.value.message


def test_the_emulator_takes_any_offset_and_compares_instants(emulator_now: Emulator) -> None:
    client = files_client(emulator_now)
    end = _at(int(emulator_now.store.clock))
    begin = end - timedelta(days=7)
    in_utc = ask(client, DateFrom=rfc3339(begin), DateTo=rfc3339(end))
    beijing = timezone(timedelta(hours=8))
    local = ask(
        client,
        DateFrom=begin.astimezone(beijing).isoformat(),
        DateTo=end.astimezone(beijing).isoformat(),
    )
    assert in_utc.total_count == local.total_count > 0 and in_utc.tasks == local.tasks
    assert (
        ask(client, DateFrom=rfc3339(begin), DateTo=rfc3339(begin + timedelta(days=7))).total_count
        >= 0
    )


def test_the_file_history_has_a_rate_limit_of_its_own(emulator_now: Emulator) -> None:
    assert emulator_now.file_rate_limit == 10
    limiter = emulator_now.file_limiter
    limiter.window = 3600.0  # an hour-long window: the test does not race the clock
    for _ in range(10):
        assert limiter.allow(ACCESS_KEY_ID)
    end = _at(int(emulator_now.store.clock))
    with pytest.raises(RetriesExhaustedError) as refused:
        ask(
            files_client(emulator_now),
            DateFrom=rfc3339(end - timedelta(days=1)),
            DateTo=rfc3339(end),
        )
    assert "FlowLimitExceeded" in str(refused.value)
    page = LiveApiClient(
        ACCESS_KEY_ID, SECRET_ACCESS_KEY, config=ClientConfig(endpoint=emulator_now.endpoint)
    ).fetch_page(1, 10)  # the task list is not held back by it
    assert len(page.tasks) == 10


def test_only_files_of_finished_tasks_and_orphans_are_listed(emulator_now: Emulator) -> None:
    files = emulator_now.record_files
    tasks = {t["TaskId"]: t for t in emulator_now.store.all_tasks()}
    listed = files.listed()
    assert all(tasks[r.task_id]["Status"] == "已结束" for r in listed if r.task_id is not None)
    orphans = [r for r in listed if r.task_id is None]
    assert orphans and all(r.stream.startswith("preset-") for r in orphans)
    for outcome in files.outcomes():
        recorded, scheduled = outcome.recorded_seconds, outcome.scheduled_seconds
        assert (outcome.kind == "complete") == (recorded == scheduled)
        assert (outcome.kind == "missing") == (recorded == 0)
        gaps = [b.start - a.end for a, b in itertools.pairwise(outcome.recordings)]
        assert all(g == 0 or g > 180 for g in gaps)  # segments end to end, or a cut over 180 s
        assert (outcome.kind == "cut") == any(g > 180 for g in gaps)
