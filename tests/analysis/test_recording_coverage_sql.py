"""Exact answers of sql/recording_coverage.sql: on hand-built DuckDB tables (every number
below checked by hand), and on what the source loads from the emulator, whose own record of
each task's fate must come out the same.

Hand-built, all on 2024-03-08 (UTC), vhost ``v``, app ``live``, files read at 21:00:

    task status stream schedule     files                       finding
    f1   已结束  s1     10:00-12:00  10:00-11:00, 11:00-12:00    complete (2 segments)
    f2   已结束  s2     10:00-12:00  none (app "other" on s2,    no_file
                                     10:30-10:50, is not its)
    f3   已结束  s3     10:00-12:00  10:00-11:00                 short, 3600 s early end
    f4   已结束  s4     10:00-12:00  10:00-10:40, 10:45-12:00    short, 300 s cut
    f5   已结束  s5     10:00-12:00  10:00:30-12:00              complete (30 s late < 60)
    f6   已结束  s6     10:00-11:00  09:50-11:10                 complete (clipped)
    f7   已结束  s7     13:00-14:00  13:00-14:00 twice (tos/vod) complete (counted once)
    f8   停用   s8     10:00-12:00  10:00-10:30                 unchecked; file not orphan
    f9   已结束  s9     22:00-23:00  none                        left out: ends after 21:00
    f10  未开始  s10    23:30-23:50  none                        not checked
    f11  已结束  s11    16:00-17:00  16:00-17:00                 complete (left the list)
    f0   已结束  s0     08:00-09:00  none                        left out: before 09:50, the
                                                                 earliest file loaded
    -    -      s12    -            15:00-15:20                 no_task
    -    -      s1     -            20:00-20:10                 no_task
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from helpers import Loader, make_emulator, now

REPO = Path(__file__).resolve().parents[2]
SQL = (REPO / "sql" / "recording_coverage.sql").read_text(encoding="utf-8")
DATASET = "volcengine_live_dataset"
UTC = dt.timezone.utc


def at(hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2024, 3, 8, hour, minute, second, tzinfo=UTC)


TASKS = [
    ("f1", "已结束", "finished", "s1", at(10), at(12), None),
    ("f2", "已结束", "finished", "s2", at(10), at(12), None),
    ("f3", "已结束", "finished", "s3", at(10), at(12), None),
    ("f4", "已结束", "finished", "s4", at(10), at(12), None),
    ("f5", "已结束", "finished", "s5", at(10), at(12), None),
    ("f6", "已结束", "finished", "s6", at(10), at(11), None),
    ("f7", "已结束", "finished", "s7", at(13), at(14), None),
    ("f8", "停用", "stopped", "s8", at(10), at(12), None),
    ("f9", "已结束", "finished", "s9", at(22), at(23), None),
    ("f10", "未开始", "not_started", "s10", at(23, 30), at(23, 50), None),
    ("f11", "已结束", "finished", "s11", at(16), at(17), at(20)),
    ("f0", "已结束", "finished", "s0", at(8), at(9), None),
]
FILES = [
    ("a1", "live", "s1", at(10), at(11)),
    ("a2", "live", "s1", at(11), at(12)),
    ("b1", "other", "s2", at(10, 30), at(10, 50)),
    ("c1", "live", "s3", at(10), at(11)),
    ("d1", "live", "s4", at(10), at(10, 40)),
    ("d2", "live", "s4", at(10, 45), at(12)),
    ("e1", "live", "s5", at(10, 0, 30), at(12)),
    ("g1", "live", "s6", at(9, 50), at(11, 10)),
    ("h1", "live", "s7", at(13), at(14)),
    ("h2", "live", "s7", at(13), at(14)),
    ("i1", "live", "s8", at(10), at(10, 30)),
    ("k1", "live", "s11", at(16), at(17)),
    ("o1", "live", "s12", at(15), at(15, 20)),
    ("o2", "live", "s1", at(20), at(20, 10)),
]
READ_AT = at(21)


def run(path: Path, **variables: Any) -> pd.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        for name, value in variables.items():
            con.execute(f"SET VARIABLE {name} = {value}")
        results = [con.execute(statement.query) for statement in duckdb.extract_statements(SQL)]
        frame: pd.DataFrame = results[-1].df()
    return frame


@pytest.fixture(scope="module")
def hand_built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("coverage") / "coverage.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(f"CREATE SCHEMA {DATASET}; SET schema = '{DATASET}'")
        con.execute(
            "CREATE TABLE pull_record_tasks (task_id TEXT, vhost TEXT, domain TEXT, app TEXT, "
            "stream TEXT, status TEXT, status_code TEXT, start_time TIMESTAMPTZ, "
            "end_time TIMESTAMPTZ, deleted_at TIMESTAMPTZ)"
        )
        con.executemany(
            "INSERT INTO pull_record_tasks VALUES (?, 'v', 'd', 'live', ?, ?, ?, ?, ?, ?)",
            [
                (t, stream, status, code, b, e, gone)
                for t, status, code, stream, b, e, gone in TASKS
            ],
        )
        con.execute(
            "CREATE TABLE record_files (file_id TEXT, vhost TEXT, app TEXT, stream TEXT, "
            "start_time TIMESTAMPTZ, end_time TIMESTAMPTZ, seen_at TIMESTAMPTZ)"
        )
        con.executemany(
            "INSERT INTO record_files VALUES (?, 'v', ?, ?, ?, ?, ?)",
            [(*f, READ_AT) for f in FILES],
        )
    return path


def test_each_finished_task_gets_its_recorded_seconds_against_the_schedule(
    hand_built: Path,
) -> None:
    found = run(hand_built)
    columns = ["finding", "task_id", "file_id", "recorded_seconds", "scheduled_seconds", "files"]
    rows = [
        tuple(None if pd.isna(value) else value for value in row)
        for row in found[columns].itertuples(index=False)
    ]
    assert rows == [
        ("no_file", "f2", None, 0.0, 7200.0, 0),
        ("short", "f3", None, 3600.0, 7200.0, 1),
        ("short", "f4", None, 6900.0, 7200.0, 2),
        ("no_task", None, "b1", 1200.0, None, 1),
        ("no_task", None, "o1", 1200.0, None, 1),
        ("no_task", None, "o2", 600.0, None, 1),
        ("complete", "f1", None, 7200.0, 7200.0, 2),
        ("complete", "f5", None, 7170.0, 7200.0, 1),
        ("complete", "f6", None, 3600.0, 3600.0, 1),
        ("complete", "f7", None, 3600.0, 3600.0, 2),
        ("complete", "f11", None, 3600.0, 3600.0, 1),
    ]


def test_the_missing_time_is_split_into_late_start_cuts_and_early_end(hand_built: Path) -> None:
    found = run(hand_built).set_index("task_id")
    where = ["late_start_seconds", "cut_seconds", "early_end_seconds", "missing_seconds"]
    assert found.loc["f3", where].tolist() == [0, 0, 3600, 3600]
    assert found.loc["f4", where].tolist() == [0, 300, 0, 300]
    assert found.loc["f5", where].tolist() == [30, 0, 0, 30]
    assert found.loc["f3", "pct_recorded"] == 50.0


def test_a_task_row_carries_its_domain_and_a_file_without_a_task_none(hand_built: Path) -> None:
    found = run(hand_built)
    assert set(found.loc[found.task_id.notna(), "domain"]) == {"d"}
    assert found.loc[found.finding == "no_task", "domain"].isna().all()


def test_the_tolerance_and_the_window_are_variables(hand_built: Path) -> None:
    strict = run(hand_built, tolerance_seconds=0).set_index("task_id")
    assert strict.loc["f5", "finding"] == "short"
    windowed = run(
        hand_built,
        since="TIMESTAMPTZ '2024-03-08 12:30:00+00'",
        until="TIMESTAMPTZ '2024-03-08 18:00:00+00'",
    )
    assert sorted(
        zip(windowed.finding, windowed.task_id.fillna(windowed.file_id), strict=True)
    ) == [
        ("complete", "f11"),
        ("complete", "f7"),
        ("no_task", "o1"),
    ]


# ------------------------------------------------------------------ against the emulator


@pytest.fixture(scope="module")
def emulated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Loader]:
    """Both tables loaded from an emulator whose clock is 3 days before the wall clock."""
    with make_emulator(tasks=600, now=now() - dt.timedelta(days=3)) as emu:
        loader = Loader(emu, tmp_path_factory.mktemp("coverage-emulated"))
        since = dt.datetime.fromtimestamp(emu.store.clock, UTC) - dt.timedelta(days=40)
        loader.pipeline().run(
            loader.source(initial_start_time=since).with_resources(
                "pull_record_tasks", "record_files"
            )
        )
        yield loader


def test_the_coverage_finds_exactly_the_emulators_missed_and_short_recordings(
    emulated: Loader,
) -> None:
    emu = emulated.emulator
    # Checked from 6 days after the first load (a task lasts at most 5), so that every file
    # from there on has its task loaded.
    since = dt.datetime.fromtimestamp(emu.store.clock, UTC) - dt.timedelta(days=34)
    found = run(emulated.duckdb_path, since=f"TIMESTAMPTZ '{since.isoformat()}'")
    tasks = list(emu.store.all_tasks())
    overlapping = _overlapping(tasks)  # real tasks of a stream never overlap; generated ones may
    fates = {o.task_id: o for o in emu.record_files.outcomes()}
    checked = found[found.task_id.notna() & ~found.task_id.isin(list(overlapping))]
    assert len(checked) > 100
    for row in checked.itertuples():
        fate = fates[row.task_id]
        expected = {"missing": "no_file", "short": "short", "cut": "short"}.get(
            fate.kind, "complete"
        )
        assert (row.finding, row.recorded_seconds) == (expected, fate.recorded_seconds), row.task_id
    assert {"no_file", "short", "complete"} <= set(checked.finding)
    orphans = sorted(
        (r.stream, dt.datetime.fromtimestamp(r.start, UTC))
        for r in emu.record_files.listed()
        if r.task_id is None and r.start >= since.timestamp()
    )
    no_task = found[found.finding == "no_task"]
    listed = sorted(
        zip(no_task.stream, [t.astimezone(UTC) for t in no_task.start_time], strict=True)
    )
    assert orphans and listed == orphans


FINDINGS = {"missing": "no_file", "short": "short", "cut": "short"}
"""The emulator's fate of a task -> the finding the coverage must give it."""


def _overlapping(tasks: list[dict[str, Any]]) -> set[str]:
    """TaskIds whose window overlaps another task's on the same vhost/app/stream."""
    from volcengine_live.records import parse_time

    by_stream: dict[tuple[str, str, str], list[tuple[dt.datetime, dt.datetime, str]]] = {}
    for t in tasks:
        start, end = parse_time(t["StartTime"]), parse_time(t["EndTime"])
        if start is not None and end is not None:
            by_stream.setdefault((t["Vhost"], t["App"], t["Stream"]), []).append(
                (start, end, t["TaskId"])
            )
    found: set[str] = set()
    for windows in by_stream.values():
        windows.sort()
        reach, holder = windows[0][1], windows[0][2]
        for start, end, task_id in windows[1:]:
            if start < reach:
                found.update((holder, task_id))
            if end > reach:
                reach, holder = end, task_id
    return found
