"""Exact answers of every file in sql/ on a small hand-built dataset loaded through dlt.

Fourteen tasks with chosen times (all in Asia/Shanghai, UTC+8), evaluated as of
2024-03-10 12:00 +08:00 (``SET VARIABLE as_of``), so every expected number below can be
checked by hand:

    id   status  domain/app          start        end          recorded hours
    t01  已结束  a.example.com/live  03-08 10:00  03-08 12:00  2     (08: 2)
    t02  已结束  a.example.com/live  03-08 11:00  03-08 13:30  2.5   (08: 2.5)
    t03  已结束  a.example.com/live  03-08 12:00  03-08 14:00  2     (08: 2)  right after t01
    t04  停用    b.example.com/show  03-08 23:00  03-09 01:00  2     (08: 1, 09: 1)
    t05  已结束  b.example.com/show  03-09 00:30  03-09 02:30  2     (09: 2)
    t06  已结束  b.example.com/live  03-09 20:00  03-09 23:00  3     (09: 3)
    t07  已结束  a.example.com/live  03-09 21:00  03-09 22:00  1     (09: 1)
    t08  已结束  c.example.com/rec   03-09 21:30  03-10 00:30  3     (09: 2.5, 10: 0.5)
    t09  生效中  a.example.com/live  03-10 11:00  03-10 13:00  1     (10: 1, to as_of)
    t10  未开始  a.example.com/live  03-10 20:00  03-11 06:00  -     scheduled
    t11  未开始  b.example.com/show  03-11 09:00  03-11 09:10  -     scheduled
    t12  已结束  c.example.com/rec   03-09 10:00  03-09 09:00  -     end before start
    t13  暂停    c.example.com/rec   03-09 22:30  03-09 23:30  1     (09: 1) unknown status
    t14  已结束  (no domain)/live    03-09 03:00  (none)       -     missing end

Two tasks left the API's list (``deleted_at``): t07 on 03-10 08:00, long after it finished (it
still counts everywhere: it happened), and t11 on 03-10 11:00 (no longer scheduled).

Concurrency: 2 on 03-08 11:00-13:30 (3 only if t01's end and t03's start were not applied
together), 3 first at 03-09 21:30 until 22:00, and again 22:30-23:00.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import dlt
import duckdb
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
SQL_DIR = REPO / "sql"
DATASET = "volcengine_live_dataset"
SH = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
UTC = dt.timezone.utc
AS_OF = dt.datetime(2024, 3, 10, 12, 0, tzinfo=SH)

STATUS_CODES = {
    "停用": "stopped",
    "未开始": "not_started",
    "生效中": "recording",
    "已结束": "finished",
}
"""The source's Chinese -> English mapping (volcengine_live.settings.STATUS_CODES)."""

SQL_FILES = [
    "freshness.sql",
    "tasks_started_per_day.sql",
    "recorded_hours_per_day.sql",
    "duration_distribution.sql",
    "recorded_hours_by_domain.sql",
    "recorded_hours_by_app.sql",
    "concurrency_timeline.sql",
    "concurrency_peak.sql",
    "concurrency_envelope.sql",
    "concurrency_by_weekday_hour.sql",
    "activity_per_period.sql",
    "recorded_hours_by_stream.sql",
    "upcoming_tasks.sql",
    "recording_now.sql",
    "data_quality.sql",
]
FILE_HISTORY_SQL = ["recording_coverage.sql"]
"""Files that also read ``record_files`` (tests/analysis/test_recording_coverage_sql.py):
this file's dataset holds the task list alone, as a load without the file history does."""


def sh(day: int, hour: int, minute: int = 0) -> dt.datetime:
    """A March 2024 instant in Asia/Shanghai."""
    return dt.datetime(2024, 3, day, hour, minute, tzinfo=SH)


# task_id, status, domain, app, start, end
TASKS: list[tuple[str, str, str | None, str, dt.datetime | None, dt.datetime | None]] = [
    ("t01", "已结束", "a.example.com", "live", sh(8, 10), sh(8, 12)),
    ("t02", "已结束", "a.example.com", "live", sh(8, 11), sh(8, 13, 30)),
    ("t03", "已结束", "a.example.com", "live", sh(8, 12), sh(8, 14)),
    ("t04", "停用", "b.example.com", "show", sh(8, 23), sh(9, 1)),
    ("t05", "已结束", "b.example.com", "show", sh(9, 0, 30), sh(9, 2, 30)),
    ("t06", "已结束", "b.example.com", "live", sh(9, 20), sh(9, 23)),
    ("t07", "已结束", "a.example.com", "live", sh(9, 21), sh(9, 22)),
    ("t08", "已结束", "c.example.com", "rec", sh(9, 21, 30), sh(10, 0, 30)),
    ("t09", "生效中", "a.example.com", "live", sh(10, 11), sh(10, 13)),
    ("t10", "未开始", "a.example.com", "live", sh(10, 20), sh(11, 6)),
    ("t11", "未开始", "b.example.com", "show", sh(11, 9), sh(11, 9, 10)),
    ("t12", "已结束", "c.example.com", "rec", sh(9, 10), sh(9, 9)),
    ("t13", "暂停", "c.example.com", "rec", sh(9, 22, 30), sh(9, 23, 30)),
    ("t14", "已结束", None, "live", sh(9, 3), None),
]
DELETED = {"t07": sh(10, 8), "t11": sh(10, 11)}
"""deleted_at of the tasks that left the API's list."""

COLUMNS: Any = {
    "task_id": {"data_type": "text", "nullable": False},
    "start_time": {"data_type": "timestamp", "nullable": True},
    "end_time": {"data_type": "timestamp", "nullable": True},
    "vhost": {"data_type": "text", "nullable": True},
    "domain": {"data_type": "text", "nullable": True},
    "app": {"data_type": "text", "nullable": True},
    "stream": {"data_type": "text", "nullable": True},
    "status": {"data_type": "text", "nullable": True},
    "status_code": {"data_type": "text", "nullable": True},
    "deleted_at": {"data_type": "timestamp", "nullable": True},
}


def row(task: tuple[Any, ...], status: str | None = None) -> dict[str, Any]:
    task_id, task_status, domain, app, start, end = task
    task_status = status or task_status
    return {
        "task_id": task_id,
        "start_time": start,
        "end_time": end,
        "vhost": "vhost.example.com",
        "domain": domain,
        "app": app,
        "stream": f"stream-{task_id}",
        "status": task_status,
        "status_code": STATUS_CODES.get(task_status, "unknown"),
        "deleted_at": DELETED.get(task_id),
    }


def load(pipeline: dlt.Pipeline, rows: list[dict[str, Any]]) -> str:
    info = pipeline.run(
        rows,
        table_name="pull_record_tasks",
        write_disposition="merge",
        primary_key="task_id",
        columns=COLUMNS,
        loader_file_format="parquet",
    )
    return str(info.loads_ids[-1])


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The dataset, loaded in two runs the way the source does: the second run re-reads the
    unsettled tasks, one of which (t09) has started since. A failed load recorded after both
    must not count as the last load."""
    tmp = tmp_path_factory.mktemp("sql")
    path = tmp / "volcengine_live.duckdb"
    pipeline = dlt.pipeline(
        pipeline_name="sql_answers",
        destination=dlt.destinations.duckdb(str(path)),
        dataset_name=DATASET,
        pipelines_dir=str(tmp / "pipelines"),
    )
    first = load(pipeline, [row(t, "未开始" if t[0] == "t09" else None) for t in TASKS])
    unsettled = [t for t in TASKS if t[0] in {"t09", "t10", "t11", "t13"}]
    second = load(pipeline, [row(t) for t in unsettled])
    with duckdb.connect(str(path)) as con:
        inserted = con.execute(
            f"SELECT max(inserted_at) FROM {DATASET}._dlt_loads WHERE load_id = ?", [second]
        ).fetchone()[0]
        con.execute(
            f"INSERT INTO {DATASET}._dlt_loads (load_id, schema_name, status, inserted_at) "
            "VALUES ('9999999999.0', 'sql_answers', 1, ?::TIMESTAMPTZ + INTERVAL 1 HOUR)",
            [inserted],
        )
    return {"path": path, "first": first, "second": second, "second_at": inserted}


def run_sql(
    path: Path,
    name: str,
    as_of: dt.datetime | None = AS_OF,
    replace: dict[str, str] | None = None,
) -> list[pd.DataFrame]:
    """Run one sql/ file read-only, statement by statement; one DataFrame per SELECT."""
    text = (SQL_DIR / name).read_text(encoding="utf-8")
    for old, new in (replace or {}).items():
        assert old in text
        text = text.replace(old, new)
    results = []
    with duckdb.connect(str(path), read_only=True) as con:
        if as_of is not None:
            con.execute(f"SET VARIABLE as_of = TIMESTAMPTZ '{as_of.isoformat()}'")
        for statement in duckdb.extract_statements(text):
            cursor = con.execute(statement.query)
            if statement.type == duckdb.StatementType.SELECT:
                results.append(cursor.df())
    return results


def one(path: Path, name: str, **kwargs: Any) -> pd.DataFrame:
    (result,) = run_sql(path, name, **kwargs)
    return result


def records(frame: pd.DataFrame, *columns: str) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in frame[list(columns)].itertuples(index=False)]


def ts(value: Any) -> dt.datetime:
    """A timestamp from DuckDB as an aware datetime, for comparing instants."""
    return pd.Timestamp(value).to_pydatetime()


def test_every_file_is_documented_and_runs_on_the_default_dataset() -> None:
    assert sorted(p.name for p in SQL_DIR.glob("*.sql")) == sorted(SQL_FILES + FILE_HISTORY_SQL)
    for name in SQL_FILES + FILE_HISTORY_SQL:
        text = (SQL_DIR / name).read_text(encoding="utf-8")
        assert text.startswith(f"-- {name}: "), name
        assert f"duckdb -readonly volcengine_live.duckdb < sql/{name}" in text, name
        # The notebook substitutes its dataset_name in exactly this line.
        assert len(re.findall(rf"^SET schema = '{DATASET}';$", text, re.M)) == 1, name
        assert "SET TimeZone = 'Asia/Shanghai';" in text, name


def test_freshness_picks_the_last_successful_load(db: dict[str, Any]) -> None:
    summary, by_status = run_sql(db["path"], "freshness.sql")
    assert len(summary) == 1
    got = summary.iloc[0]
    assert got["last_load_id"] == db["second"]
    assert ts(got["last_loaded_at"]) == ts(db["second_at"])
    assert got["successful_loads"] == 2
    assert got["tasks"] == 14
    assert records(by_status, "status", "status_code", "tasks") == [
        ("已结束", "finished", 9),
        ("未开始", "not_started", 2),
        ("生效中", "recording", 1),
        ("停用", "stopped", 1),
        ("暂停", "unknown", 1),
    ]
    assert by_status["pct"].tolist() == [64.3, 14.3, 7.1, 7.1, 7.1]


def test_tasks_started_per_day_by_status_in_shanghai_days(db: dict[str, Any]) -> None:
    got = one(db["path"], "tasks_started_per_day.sql")
    assert [(str(d.date()), c, s, n) for d, c, s, n in records(got, *got.columns)] == [
        ("2024-03-08", "finished", "已结束", 3),
        ("2024-03-08", "stopped", "停用", 1),
        ("2024-03-09", "finished", "已结束", 6),
        ("2024-03-09", "unknown", "暂停", 1),
        ("2024-03-10", "not_started", "未开始", 1),
        ("2024-03-10", "recording", "生效中", 1),
        ("2024-03-11", "not_started", "未开始", 1),
    ]


def test_recorded_hours_per_day_split_at_midnight_and_clipped_at_now(db: dict[str, Any]) -> None:
    got = one(db["path"], "recorded_hours_per_day.sql")
    assert [(str(d.date()), c, n, h) for d, c, n, h in records(got, *got.columns)] == [
        ("2024-03-08", "finished", 3, 6.5),
        ("2024-03-08", "stopped", 1, 1.0),
        ("2024-03-09", "finished", 4, 8.5),
        ("2024-03-09", "stopped", 1, 1.0),
        ("2024-03-09", "unknown", 1, 1.0),
        ("2024-03-10", "finished", 1, 0.5),
        ("2024-03-10", "recording", 1, 1.0),
    ]
    totals = got.groupby(got["day"].dt.date.astype(str))["recorded_hours"].sum()
    assert totals.to_dict() == {"2024-03-08": 7.5, "2024-03-09": 10.5, "2024-03-10": 1.5}


def test_recorded_hours_per_day_follow_the_time_zone_setting(db: dict[str, Any]) -> None:
    utc = {"SET TimeZone = 'Asia/Shanghai';": "SET TimeZone = 'UTC';"}
    got = one(db["path"], "recorded_hours_per_day.sql", replace=utc)
    totals = got.groupby(got["day"].dt.date.astype(str))["recorded_hours"].sum()
    assert totals.to_dict() == {"2024-03-08": 10.5, "2024-03-09": 8.0, "2024-03-10": 1.0}


def test_recording_still_open_grows_with_now(db: dict[str, Any]) -> None:
    later = one(db["path"], "recorded_hours_per_day.sql", as_of=sh(10, 12, 30))
    assert later[later["status_code"] == "recording"]["recorded_hours"].tolist() == [1.5]


def test_duration_distribution(db: dict[str, Any]) -> None:
    got = one(db["path"], "duration_distribution.sql")
    assert records(got, "bucket", "tasks", "pct", "total_hours") == [
        ("< 15 min", 1, 8.3, 0.17),
        ("15-60 min", 0, 0.0, 0.0),
        ("1-2 h", 2, 16.7, 2.0),
        ("2-4 h", 8, 66.7, 18.5),
        ("4-8 h", 0, 0.0, 0.0),
        ("8-24 h", 1, 8.3, 10.0),
        (">= 24 h", 0, 0.0, 0.0),
    ]


def test_recorded_hours_by_domain(db: dict[str, Any]) -> None:
    got = one(db["path"], "recorded_hours_by_domain.sql")
    assert records(got, "domain", "tasks", "recorded_hours", "pct") == [
        ("a.example.com", 5, 8.5, 43.6),
        ("b.example.com", 3, 7.0, 35.9),
        ("c.example.com", 2, 4.0, 20.5),
    ]


def test_recorded_hours_by_app(db: dict[str, Any]) -> None:
    got = one(db["path"], "recorded_hours_by_app.sql")
    assert records(got, "domain", "app", "tasks", "recorded_hours") == [
        ("a.example.com", "live", 5, 8.5),
        ("b.example.com", "show", 2, 4.0),
        ("c.example.com", "rec", 2, 4.0),
        ("b.example.com", "live", 1, 3.0),
    ]


def test_concurrency_timeline_is_a_sweep_with_ends_before_starts(db: dict[str, Any]) -> None:
    got = one(db["path"], "concurrency_timeline.sql")
    steps = [
        (ts(at).astimezone(SH).strftime("%d %H:%M"), s, e, c)
        for at, s, e, c in records(got, "instant", "starts", "ends", "concurrent")
    ]
    assert steps == [
        ("08 10:00", 1, 0, 1),
        ("08 11:00", 1, 0, 2),
        ("08 12:00", 1, 1, 2),  # t01 ends as t03 starts: still 2, not 3
        ("08 13:30", 0, 1, 1),
        ("08 14:00", 0, 1, 0),
        ("08 23:00", 1, 0, 1),
        ("09 00:30", 1, 0, 2),
        ("09 01:00", 0, 1, 1),
        ("09 02:30", 0, 1, 0),
        ("09 20:00", 1, 0, 1),
        ("09 21:00", 1, 0, 2),
        ("09 21:30", 1, 0, 3),
        ("09 22:00", 0, 1, 2),
        ("09 22:30", 1, 0, 3),
        ("09 23:00", 0, 1, 2),
        ("09 23:30", 0, 1, 1),
        ("10 00:30", 0, 1, 0),
        ("10 11:00", 1, 0, 1),
        ("10 12:00", 0, 0, 1),  # now: t09 still recording
    ]


def test_concurrency_peak_and_when_it_was_first_reached(db: dict[str, Any]) -> None:
    got = one(db["path"], "concurrency_peak.sql")
    assert len(got) == 1
    peak = got.iloc[0]
    assert peak["peak_concurrent"] == 3
    assert ts(peak["peak_first_at"]) == sh(9, 21, 30)
    assert ts(peak["peak_first_at"]) == dt.datetime(2024, 3, 9, 13, 30, tzinfo=UTC)
    assert ts(peak["peak_first_until"]) == sh(9, 22)
    assert peak["times_peak_reached"] == 2
    assert peak["hours_at_peak"] == 1.0
    assert peak["concurrent_now"] == 1


def test_concurrency_peak_of_an_empty_table_is_zero(db: dict[str, Any]) -> None:
    got = one(db["path"], "concurrency_peak.sql", as_of=sh(1, 0))
    assert got.iloc[0]["peak_concurrent"] == 0
    assert got.iloc[0]["times_peak_reached"] == 0
    assert pd.isna(got.iloc[0]["peak_first_at"])


def test_all_recorded_hours_agree(db: dict[str, Any]) -> None:
    """Per day, by domain, by app and the area under the concurrency curve are one total."""
    per_day = one(db["path"], "recorded_hours_per_day.sql")["recorded_hours"].sum()
    by_domain = one(db["path"], "recorded_hours_by_domain.sql")["recorded_hours"].sum()
    by_app = one(db["path"], "recorded_hours_by_app.sql")["recorded_hours"].sum()
    timeline = one(db["path"], "concurrency_timeline.sql")
    seconds = timeline["instant"].diff().shift(-1).dt.total_seconds().fillna(0)
    area = float((seconds * timeline["concurrent"]).sum() / 3600)
    assert round(per_day, 2) == round(by_domain, 2) == round(by_app, 2) == round(area, 2) == 19.5


def window(since: dt.datetime | None, until: dt.datetime | None) -> Any:
    """The `since`/`until` variables some files read, set before the file runs."""

    def run(path: Path, name: str, **kwargs: Any) -> list[pd.DataFrame]:
        with duckdb.connect(str(path), read_only=True) as con:
            con.execute(f"SET VARIABLE as_of = TIMESTAMPTZ '{AS_OF.isoformat()}'")
            for var, value in (("since", since), ("until", until)):
                if value is not None:
                    con.execute(f"SET VARIABLE {var} = TIMESTAMPTZ '{value.isoformat()}'")
            con.execute(f"SET VARIABLE bucket = {kwargs.get('bucket', 'NULL')}")
            con.execute(f"SET VARIABLE period = {kwargs.get('period', 'NULL')}")
            results = []
            for statement in duckdb.extract_statements((SQL_DIR / name).read_text("utf-8")):
                cursor = con.execute(statement.query)
                if statement.type == duckdb.StatementType.SELECT:
                    results.append(cursor.df())
        return results

    return run


def test_concurrency_envelope_is_hourly_for_a_short_range(db: dict[str, Any]) -> None:
    got = one(db["path"], "concurrency_envelope.sql")
    assert set(got["bucket"]) == {"hour"}
    # Every hour from the first recording (03-08 10:00) to the hour of now (03-10 11:00).
    assert len(got) == 50
    hours = [ts(t).astimezone(SH).strftime("%d %H") for t in got["bucket_start"]]
    assert hours[0] == "08 10" and hours[-1] == "10 11"
    busy = [
        (h, p, m)
        for h, p, m in zip(hours, got["peak_concurrent"], got["mean_concurrent"], strict=True)
        if p
    ]
    assert busy == [
        ("08 10", 1, 1.0),
        ("08 11", 2, 2.0),
        ("08 12", 2, 2.0),  # t01 ends as t03 starts: 2, never 3
        ("08 13", 2, 1.5),
        ("08 23", 1, 1.0),
        ("09 00", 2, 1.5),
        ("09 01", 1, 1.0),
        ("09 02", 1, 0.5),
        ("09 20", 1, 1.0),
        ("09 21", 3, 2.5),
        ("09 22", 3, 2.5),
        ("09 23", 2, 1.5),
        ("10 00", 1, 0.5),
        ("10 11", 1, 1.0),  # now: t09 recording since 11:00
    ]
    assert got["recorded_hours"].sum() == 19.5  # the same total as every recorded_* file


def test_concurrency_envelope_per_day(db: dict[str, Any]) -> None:
    got = window(None, None)(db["path"], "concurrency_envelope.sql", bucket="'day'")[0]
    assert [
        (str(ts(d).astimezone(SH).date()), b, p, m, h)
        for d, b, p, m, h in records(got, *got.columns)
    ] == [
        # 03-08 from the first recording at 10:00: 7.5 h over 14 h
        ("2024-03-08", "day", 2, 0.54, 7.5),
        ("2024-03-09", "day", 3, 0.44, 10.5),  # 10.5 h over 24 h
        ("2024-03-10", "day", 1, 0.13, 1.5),  # 1.5 h over the 12 h up to now
    ]


def test_concurrency_envelope_in_a_window(db: dict[str, Any]) -> None:
    run = window(sh(9, 21, 45), sh(10, 0, 15))
    got = run(db["path"], "concurrency_envelope.sql", bucket="'day'")[0]
    # 21:45-22:00 at 3, 22:00-22:30 at 2, 22:30-23:00 at 3, 23:00-23:30 at 2, then 1 to 00:15
    assert records(got, "peak_concurrent", "mean_concurrent", "recorded_hours") == [
        (3, 2.11, 4.75),
        (1, 1.0, 0.25),
    ]
    hourly = run(db["path"], "concurrency_envelope.sql")[0]
    assert set(hourly["bucket"]) == {"hour"} and len(hourly) == 4  # 21, 22, 23 and 00
    assert hourly["recorded_hours"].sum() == 5.0


def test_concurrency_envelope_of_nothing_recorded_is_empty(db: dict[str, Any]) -> None:
    assert one(db["path"], "concurrency_envelope.sql", as_of=sh(1, 0)).empty
    assert one(db["path"], "concurrency_by_weekday_hour.sql", as_of=sh(1, 0)).empty


def test_concurrency_by_weekday_hour(db: dict[str, Any]) -> None:
    got = one(db["path"], "concurrency_by_weekday_hour.sql")
    # 03-08 is a Friday (5): 14 hours of it, 24 of Saturday, 12 of Sunday.
    assert got.groupby("weekday")["hours_observed"].sum().to_dict() == {5: 14.0, 6: 24.0, 7: 12.0}
    busy = {
        (name, hour): (mean, peak)
        for _, name, hour, _, mean, peak in records(got, *got.columns)
        if peak
    }
    assert busy == {
        ("Fri", 10): (1.0, 1),
        ("Fri", 11): (2.0, 2),
        ("Fri", 12): (2.0, 2),
        ("Fri", 13): (1.5, 2),
        ("Fri", 23): (1.0, 1),
        ("Sat", 0): (1.5, 2),
        ("Sat", 1): (1.0, 1),
        ("Sat", 2): (0.5, 1),
        ("Sat", 20): (1.0, 1),
        ("Sat", 21): (2.5, 3),
        ("Sat", 22): (2.5, 3),
        ("Sat", 23): (1.5, 2),
        ("Sun", 0): (0.5, 1),
        ("Sun", 11): (1.0, 1),
    }
    assert got["weekday"].tolist() == sorted(got["weekday"].tolist())


def test_activity_per_day_matches_the_per_day_files(db: dict[str, Any]) -> None:
    got = one(db["path"], "activity_per_period.sql")
    assert [(str(d.date()), p, c, n, h) for d, p, c, n, h in records(got, *got.columns)] == [
        ("2024-03-08", "day", "finished", 3, 6.5),
        ("2024-03-08", "day", "stopped", 1, 1.0),
        ("2024-03-09", "day", "finished", 6, 8.5),
        ("2024-03-09", "day", "stopped", 0, 1.0),  # t04's hours after midnight
        ("2024-03-09", "day", "unknown", 1, 1.0),
        ("2024-03-10", "day", "finished", 0, 0.5),
        ("2024-03-10", "day", "not_started", 1, 0.0),
        ("2024-03-10", "day", "recording", 1, 1.0),
        ("2024-03-11", "day", "not_started", 1, 0.0),
    ]
    started = one(db["path"], "tasks_started_per_day.sql")["tasks"].sum()
    hours = one(db["path"], "recorded_hours_per_day.sql")["recorded_hours"].sum()
    assert got["tasks_started"].sum() == started == 14  # every task has a start
    assert round(got["recorded_hours"].sum(), 2) == round(hours, 2) == 19.5


def test_activity_per_week(db: dict[str, Any]) -> None:
    got = window(None, None)(db["path"], "activity_per_period.sql", period="'week'")[0]
    assert [(str(d.date()), p, c, n, h) for d, p, c, n, h in records(got, *got.columns)] == [
        ("2024-03-04", "week", "finished", 9, 15.5),  # ISO weeks start on Monday
        ("2024-03-04", "week", "not_started", 1, 0.0),
        ("2024-03-04", "week", "recording", 1, 1.0),
        ("2024-03-04", "week", "stopped", 1, 2.0),
        ("2024-03-04", "week", "unknown", 1, 1.0),
        ("2024-03-11", "week", "not_started", 1, 0.0),
    ]


def test_activity_in_a_window(db: dict[str, Any]) -> None:
    got = window(sh(9, 21, 45), sh(10, 0, 15))(db["path"], "activity_per_period.sql")[0]
    assert [(str(d.date()), c, n, h) for d, _, c, n, h in records(got, *got.columns)] == [
        ("2024-03-09", "finished", 0, 3.75),  # t06 1.25, t07 0.25, t08 2.25
        ("2024-03-09", "unknown", 1, 1.0),  # t13 starts 22:30, inside the window
        ("2024-03-10", "finished", 0, 0.25),
    ]


def test_recorded_hours_by_stream(db: dict[str, Any]) -> None:
    got = one(db["path"], "recorded_hours_by_stream.sql")
    assert records(got, "stream", "recorded_hours")[:3] == [
        ("stream-t06", 3.0),
        ("stream-t08", 3.0),
        ("stream-t02", 2.5),
    ]
    assert len(got) == 10 and got["recorded_hours"].sum() == 19.5


def test_top_lists_in_a_window(db: dict[str, Any]) -> None:
    run = window(sh(9, 21, 45), sh(10, 0, 15))
    by_domain = run(db["path"], "recorded_hours_by_domain.sql")[0]
    assert records(by_domain, "domain", "tasks", "recorded_hours", "pct") == [
        ("c.example.com", 2, 3.5, 70.0),
        ("b.example.com", 1, 1.25, 25.0),
        ("a.example.com", 1, 0.25, 5.0),
    ]
    by_app = run(db["path"], "recorded_hours_by_app.sql")[0]
    assert by_app["recorded_hours"].sum() == 5.0
    by_stream = run(db["path"], "recorded_hours_by_stream.sql")[0]
    assert records(by_stream, "stream", "recorded_hours") == [
        ("stream-t08", 2.5),
        ("stream-t06", 1.25),
        ("stream-t13", 1.0),
        ("stream-t07", 0.25),
    ]


def test_upcoming_tasks_soonest_first(db: dict[str, Any]) -> None:
    got = one(db["path"], "upcoming_tasks.sql")
    assert got["task_id"].tolist() == ["t10"]  # t11 left the list
    assert got["starts_in"].tolist() == [pd.Timedelta(hours=8)]
    assert got["scheduled"].tolist() == [pd.Timedelta(hours=10)]
    assert ts(got["start_time"].iloc[0]) == sh(10, 20)


def test_recording_now(db: dict[str, Any]) -> None:
    got = one(db["path"], "recording_now.sql")
    assert got["task_id"].tolist() == ["t09"]
    assert got["recording_for"].tolist() == [pd.Timedelta(hours=1)]
    assert got["ends_in"].tolist() == [pd.Timedelta(hours=1)]


def quality(path: Path, **kwargs: Any) -> dict[str, tuple[Any, ...]]:
    got = one(path, "data_quality.sql", **kwargs)
    return {
        r["check"]: (
            r["severity"],
            None if pd.isna(r["problem_rows"]) else r["problem_rows"],
            r["ok"],
            r["examples"],
        )
        for _, r in got.iterrows()
    }


def test_data_quality_counts(db: dict[str, Any]) -> None:
    assert quality(db["path"]) == {
        "duplicate_task_ids": ("error", 0, True, ""),
        "missing_task_id": ("error", 0, True, ""),
        "missing_start_time": ("warning", 0, True, ""),
        "missing_end_time": ("warning", 1, False, "t14"),
        "end_before_start": ("warning", 1, False, "t12"),
        "missing_vhost": ("warning", 0, True, ""),
        "missing_domain": ("warning", 1, False, "t14"),
        "missing_app": ("warning", 0, True, ""),
        "missing_stream": ("warning", 0, True, ""),
        "unknown_status": ("warning", 1, False, "暂停"),
        "status_code_mismatch": ("warning", 0, True, ""),
        "stale_status": ("info", 0, True, ""),
        "flagged_by_source": ("info", None, True, ""),
        "rejected_rows": ("warning", None, True, ""),
        "deleted_from_list": ("info", 2, False, "t07, t11"),
        "time_out_of_range": ("warning", 0, True, ""),
    }


def test_data_quality_flags_stale_statuses_later_on(db: dict[str, Any]) -> None:
    assert quality(db["path"], as_of=sh(10, 21))["stale_status"] == ("info", 2, False, "t09, t10")


def test_data_quality_counts_duplicates_flags_and_rejects(
    db: dict[str, Any], tmp_path: Path
) -> None:
    """On a copy: a duplicated task_id (a broken merge), the source's data_issues column and
    its rejects table (shaped as the source writes them)."""
    copy = tmp_path / "copy.duckdb"
    shutil.copy(db["path"], copy)
    with duckdb.connect(str(copy)) as con:
        con.execute(f"SET schema = '{DATASET}'")
        con.execute(
            "INSERT INTO pull_record_tasks "
            "SELECT * FROM pull_record_tasks WHERE task_id IN ('t02', 't05')"
        )
        con.execute("ALTER TABLE pull_record_tasks ADD COLUMN data_issues VARCHAR")
        con.execute(
            "UPDATE pull_record_tasks SET data_issues = 'EndTime missing; Domain missing' "
            "WHERE task_id = 't14'"
        )
        con.execute(
            "UPDATE pull_record_tasks SET data_issues = 'EndTime before StartTime' "
            "WHERE task_id = 't12'"
        )
        con.execute(
            "CREATE TABLE pull_record_task_rejects (reject_id VARCHAR, reason VARCHAR, "
            "raw_record VARCHAR, page_num BIGINT, seen_at TIMESTAMPTZ)"
        )
        con.execute(
            "INSERT INTO pull_record_task_rejects VALUES "
            "('a1', 'TaskId missing', '{}', 1, now()), "
            "('b2', 'TaskId is a int, not a string', '{\"TaskId\": 1}', 3, now())"
        )
    got = quality(copy)
    assert got["duplicate_task_ids"] == ("error", 2, False, "t02, t05")
    assert got["flagged_by_source"] == ("info", 2, False, "t12, t14")
    assert got["rejected_rows"] == ("warning", 2, False, "")


def test_a_task_deleted_while_recording_counts_up_to_its_deletion(
    db: dict[str, Any], tmp_path: Path
) -> None:
    """On a copy: t09 (recording 03-10 11:00-13:00) left the list at 11:30. It recorded half
    an hour, and is not recording now: not in recording_now, not in the "now" figure."""
    copy = tmp_path / "deleted.duckdb"
    shutil.copy(db["path"], copy)
    with duckdb.connect(str(copy)) as con:
        con.execute(
            f"UPDATE {DATASET}.pull_record_tasks SET deleted_at = ? WHERE task_id = 't09'",
            [sh(10, 11, 30)],
        )
    assert one(copy, "recording_now.sql").empty
    assert one(copy, "concurrency_peak.sql")["concurrent_now"].tolist() == [0]
    got = one(copy, "recorded_hours_per_day.sql")
    assert records(got[got["status_code"] == "recording"], "tasks", "recorded_hours") == [(1, 0.5)]
    timeline = one(copy, "concurrency_timeline.sql")
    assert timeline["concurrent"].iloc[-1] == 0
    # Before its deletion it was recording, as it was then.
    assert one(copy, "concurrency_peak.sql", as_of=sh(10, 11, 15))["concurrent_now"].tolist() == [1]
    assert quality(copy)["deleted_from_list"] == ("info", 3, False, "t07, t09, t11")


def test_another_dataset_name_only_needs_the_set_schema_line(
    db: dict[str, Any], tmp_path: Path
) -> None:
    copy = tmp_path / "renamed.duckdb"
    shutil.copy(db["path"], copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("CREATE SCHEMA other_dataset")
        for (table,) in con.execute(
            "SELECT table_name FROM duckdb_tables() WHERE schema_name = ?", [DATASET]
        ).fetchall():
            con.execute(f"CREATE TABLE other_dataset.{table} AS FROM {DATASET}.{table}")
        con.execute(f"DROP SCHEMA {DATASET} CASCADE")
    rename = {f"SET schema = '{DATASET}';": "SET schema = 'other_dataset';"}
    for name in SQL_FILES:
        with pytest.raises(duckdb.CatalogException):
            run_sql(copy, name)
        renamed, original = run_sql(copy, name, replace=rename), run_sql(db["path"], name)
        assert len(renamed) == len(original)
        for got, expected in zip(renamed, original, strict=True):
            pd.testing.assert_frame_equal(got, expected)


DUCKDB_CLI = shutil.which("duckdb", path=str(Path(sys.executable).parent)) or shutil.which("duckdb")


@pytest.mark.skipif(DUCKDB_CLI is None, reason="the duckdb CLI is not installed")
def test_files_run_from_the_duckdb_cli(db: dict[str, Any]) -> None:
    for name in SQL_FILES:
        done = subprocess.run(
            [str(DUCKDB_CLI), "-readonly", "-csv", str(db["path"])],
            stdin=(SQL_DIR / name).open("rb"),
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, (name, done.stderr.decode())
        assert b"Error" not in done.stderr, (name, done.stderr.decode())
    peak = subprocess.run(
        [
            str(DUCKDB_CLI),
            "-readonly",
            "-csv",
            "-cmd",
            f"SET VARIABLE as_of = TIMESTAMPTZ '{AS_OF}'",
            str(db["path"]),
        ],
        stdin=(SQL_DIR / "concurrency_peak.sql").open("rb"),
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert b"3,2024-03-09 21:30:00+08" in peak.stdout


UTC = dt.timezone.utc
LAST_INSTANT = dt.datetime(9999, 12, 31, 15, 59, 59, tzinfo=UTC)  # 9999-12-31T23:59:59+08:00
ODD_TIMES = [
    # a placeholder start, an end past year 9999 in Asia/Shanghai, a start that never comes
    ("o1", "已结束", "a.example.com", "live", dt.datetime(1, 1, 1, tzinfo=UTC), sh(9, 12)),
    ("o2", "已结束", "a.example.com", "live", sh(9, 11), LAST_INSTANT),
    ("o3", "未开始", "b.example.com", "show", LAST_INSTANT, None),
]


def test_times_outside_2000_to_2099_are_counted_as_data_and_never_blow_up_a_query(
    db: dict[str, Any], tmp_path: Path
) -> None:
    """Issue 23: rows loaded before the source flagged such times (or by hand). A range
    series from year 1 took 4.8 GB; under a 300 MB DuckDB limit every file must still run,
    give the answers it gives without those rows, and data_quality must count them."""
    copy = tmp_path / "odd.duckdb"
    shutil.copy(db["path"], copy)
    with duckdb.connect(str(copy)) as con:
        con.execute(f"SET schema = '{DATASET}'")
        for task in ODD_TIMES:
            values = {**row(task), "_dlt_load_id": db["second"], "_dlt_id": task[0]}
            names = ", ".join(values)
            con.execute(
                f"INSERT INTO pull_record_tasks ({names}) VALUES ({', '.join('?' * len(values))})",
                list(values.values()),
            )
    for path in sorted(SQL_DIR / name for name in SQL_FILES):
        with duckdb.connect(str(copy), read_only=True, config={"memory_limit": "300MB"}) as con:
            con.execute(f"SET VARIABLE as_of = TIMESTAMPTZ '{AS_OF.isoformat()}'")
            for statement in duckdb.extract_statements(path.read_text(encoding="utf-8")):
                cursor = con.execute(statement.query)
                if statement.type == duckdb.StatementType.SELECT:
                    cursor.df()  # the notebook's pandas frames: nanoseconds end in 2262
    for name in ("recorded_hours_per_day.sql", "concurrency_envelope.sql", "concurrency_peak.sql"):
        odd, plain = one(copy, name), one(db["path"], name)
        assert odd.drop(columns=[c for c in odd if "now" in c]).equals(
            plain.drop(columns=[c for c in plain if "now" in c])
        ), name
    found = quality(copy)["time_out_of_range"]
    assert found == ("warning", 3, False, "o1, o2, o3")
