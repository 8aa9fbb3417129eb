"""Converting API records to Arrow: every record kept, problems named."""

from __future__ import annotations

from datetime import datetime, timezone

import pyarrow as pa
import pytest

from volcengine_live.records import parse_time, snake_case, status_code, tasks_to_arrow

SEEN = datetime(2024, 3, 27, 8, 0, tzinfo=timezone.utc)
GOOD = {
    "TaskId": "f831f3b0dc0000aa4dcf7621",
    "StartTime": "2023-07-07T16:16:07+08:00",
    "EndTime": "2023-07-07T16:19:24+08:00",
    "Vhost": "live.example.push.com",
    "Domain": "live.example.push.com",
    "App": "Live",
    "Stream": "livestream001",
    "Status": "已结束",
}


def test_both_timestamp_styles_land_as_the_same_instant() -> None:
    page = tasks_to_arrow(
        [dict(GOOD, TaskId="a"), dict(GOOD, TaskId="b", StartTime="2023-07-07T08:16:07Z")],
        SEEN,
        1,
    )
    starts = page.tasks.column("start_time").to_pylist()
    assert starts[0] == starts[1] == datetime(2023, 7, 7, 8, 16, 7, tzinfo=timezone.utc)
    assert page.tasks.schema.field("start_time").type == pa.timestamp("us", tz="UTC")
    assert page.flagged == 0 and page.rejects == []
    assert page.tasks.column("data_issues").null_count == 2


@pytest.mark.parametrize(
    ("status", "code"),
    [
        ("停用", "stopped"),
        ("未开始", "not_started"),
        ("生效中", "recording"),
        ("已结束", "finished"),
    ],
)
def test_status_codes(status: str, code: str) -> None:
    assert status_code(status) == code


def test_unknown_status_is_data_not_a_crash(caplog: pytest.LogCaptureFixture) -> None:
    page = tasks_to_arrow([dict(GOOD, Status="已暂停")], SEEN, 1)
    row = page.tasks.to_pylist()[0]
    assert row["status"] == "已暂停" and row["status_code"] == "unknown"
    assert "Status unknown" in row["data_issues"]
    assert page.flagged == 1


def test_bad_records_are_kept_or_set_aside_with_a_reason() -> None:
    records = [
        dict(GOOD, TaskId="bad-start", StartTime="yesterday"),
        dict(GOOD, TaskId="no-start", StartTime=None),
        dict(GOOD, TaskId="reversed", EndTime="2023-07-07T00:00:00Z"),
        dict(GOOD, TaskId="no-domain", Domain=None),
        dict(GOOD, TaskId="naive", StartTime="2023-07-07 16:16:07"),
        {k: v for k, v in GOOD.items() if k != "TaskId"},
        dict(GOOD, TaskId=""),
        dict(GOOD, TaskId=12),
        "not an object",
        dict(GOOD, TaskId="fine"),
    ]
    page = tasks_to_arrow(records, SEEN, 4)
    rows = {row["task_id"]: row for row in page.tasks.to_pylist()}
    assert set(rows) == {"bad-start", "no-start", "reversed", "no-domain", "naive", "fine"}
    assert rows["bad-start"]["start_time"] is None
    assert "StartTime unparseable: 'yesterday'" in rows["bad-start"]["data_issues"]
    assert "StartTime missing" in rows["no-start"]["data_issues"]
    assert rows["reversed"]["data_issues"] == "EndTime before StartTime"
    assert rows["no-domain"]["data_issues"] == "Domain missing"
    assert "unparseable" in rows["naive"]["data_issues"]  # no offset: refused, not guessed
    assert rows["fine"]["data_issues"] is None
    assert page.flagged == 5
    reasons = sorted(reject["reason"] for reject in page.rejects)
    assert reasons == [
        "TaskId is a int, not a string",
        "TaskId missing",
        "TaskId missing",
        "record is a str, not an object",
    ]
    assert all(reject["page_num"] == 4 for reject in page.rejects)
    assert len(records) == page.tasks.num_rows + len(page.rejects)


def test_new_api_fields_become_new_columns() -> None:
    page = tasks_to_arrow(
        [dict(GOOD, RecordDuration=180, PresetName="p1", Extra={"a": 1})], SEEN, 1
    )
    row = page.tasks.to_pylist()[0]
    # Always text, so that a field typed differently by another batch or run cannot clash.
    assert row["record_duration"] == "180"
    assert row["preset_name"] == "p1"
    assert row["extra"] == '{"a": 1}'


def test_empty_page() -> None:
    page = tasks_to_arrow([], SEEN, 9)
    assert page.tasks.num_rows == 0 and "task_id" in page.tasks.column_names


@pytest.mark.parametrize(
    ("name", "expected"),
    [("StartTime", "start_time"), ("TaskId", "task_id"), ("HTTPStatus", "http_status")],
)
def test_snake_case(name: str, expected: str) -> None:
    assert snake_case(name) == expected


def test_parse_time_accepts_fractions_and_refuses_naive() -> None:
    assert parse_time("2023-06-30T15:04:05.5+08:00") == datetime(
        2023, 6, 30, 7, 4, 5, 500000, tzinfo=timezone.utc
    )
    assert parse_time("2023-06-30T15:04:05") is None
    assert parse_time(None) is None


@pytest.mark.parametrize(
    ("field", "column"),
    [
        ("DeletedAt", "api_deleted_at"),
        ("Account", "api_account"),
        ("SeenAt", "api_seen_at"),
        ("DataIssues", "api_data_issues"),
        ("StatusCode", "api_status_code"),
        ("task_id", "api_task_id"),
        ("ApiDeletedAt", "api_api_deleted_at"),
        ("RecordFormat", "record_format"),
    ],
)
def test_a_field_the_api_adds_never_takes_a_column_of_the_projects_own(
    field: str, column: str
) -> None:
    page = tasks_to_arrow([dict(GOOD, **{field: "2024-01-01T00:00:00Z"})], SEEN, 1)
    row = page.tasks.to_pylist()[0]
    assert row[column] == "2024-01-01T00:00:00Z"
    assert row["seen_at"] == SEEN and row["task_id"] == GOOD["TaskId"]
    assert "deleted_at" not in row and "account" not in row  # the writer's, added later


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("StartTime", "0001-01-01T00:00:00Z"),
        ("EndTime", "9999-12-31T23:59:59+08:00"),
        ("EndTime", "9999-12-31T23:59:59-08:00"),  # past year 9999 in UTC
        ("StartTime", "1999-12-31T23:59:59Z"),
        ("EndTime", "2100-01-01T00:00:00Z"),
    ],
)
def test_a_time_outside_2000_to_2099_is_flagged_kept_as_text_and_stored_null(
    field: str, value: str
) -> None:
    unparseable = dict(GOOD, TaskId="other", StartTime="not a time", EndTime="nor this")
    for records in ([dict(GOOD, **{field: value})], [dict(GOOD, **{field: value}), unparseable]):
        # the fast Arrow cast, and the careful one by one (Arrow refuses a whole page)
        page = tasks_to_arrow(records, SEEN, 1)
        row = page.tasks.to_pylist()[0]
        column = "start_time" if field == "StartTime" else "end_time"
        assert row[column] is None
        assert f"{field} out of range 2000..2099: {value!r}" in row["data_issues"]
        assert "EndTime before StartTime" not in row["data_issues"]
        assert page.flagged == len(records)


def test_the_edges_of_the_time_range_are_data() -> None:
    page = tasks_to_arrow(
        [dict(GOOD, StartTime="2000-01-01T00:00:00Z", EndTime="2099-12-31T23:59:59Z")], SEEN, 1
    )
    assert page.flagged == 0 and page.tasks.column("end_time")[0].as_py().year == 2099


def test_a_nul_byte_sets_a_task_id_aside_and_is_replaced_in_a_name() -> None:
    page = tasks_to_arrow(
        [dict(GOOD, TaskId="a\x00b"), dict(GOOD, TaskId="c", Domain="d\x00e", Note="f\x00")],
        SEEN,
        1,
    )
    assert [r["reason"] for r in page.rejects] == ["TaskId holds a NUL byte"]
    assert "\\u0000" in page.rejects[0]["raw_record"]
    (row,) = page.tasks.to_pylist()
    assert row["domain"] == "d\ufffde" and row["note"] == "f\ufffd"
    assert row["data_issues"] == "Domain holds a NUL byte (stored as U+FFFD)"
