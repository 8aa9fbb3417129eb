"""What was recorded: ``sql/recording_coverage.sql``'s rows shaped for the page and the
notebook (counts, the missed recordings, scheduled against recorded hours per day or week).

The SQL gives one row per finished task checked (``no_file``, ``short``, ``complete``) and
one per file no task describes (``no_task``); everything here is arithmetic on those rows,
so the page, the notebook and ``duckdb < sql/recording_coverage.sql`` agree.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any

from .common import Row
from .formatting import duration, local

FILES_TABLE = "record_files"
FILES_COLUMNS = ("file_id", "vhost", "app", "stream", "start_time", "end_time", "seen_at")
"""What sql/recording_coverage.sql reads of ``record_files``."""

NOT_LOADED = (
    "The file history was not loaded: the dataset has no record_files table, so this section "
    "cannot say what was actually recorded. Turn it on with record_files = true under "
    "[sources.volcengine_live] in .dlt/config.toml, or run volcengine-live --record-files "
    "(its first run reads the last 7 days of files), then make this report again."
)

MISSED = ("no_file", "short")
MISSED_KINDS = (("no_file", "left no file"), ("short", "recorded short"))
"""Each finding of a missed recording, and how a sentence says it."""
WEEKS_AFTER_DAYS = 120
"""Over a longer span the chart has a bar per ISO week, as activity_per_period.sql."""


def _seconds(row: Mapping[str, Any], column: str) -> float:
    value = row.get(column)
    return float(value) if value is not None else 0.0


def coverage_counts(rows: Sequence[Mapping[str, Any]]) -> Row:
    """Tasks checked by finding, their scheduled and recorded hours, and the orphan files."""
    tasks = [r for r in rows if r["finding"] != "no_task"]
    orphans = [r for r in rows if r["finding"] == "no_task"]
    scheduled = sum(_seconds(r, "scheduled_seconds") for r in tasks)
    recorded = sum(_seconds(r, "recorded_seconds") for r in tasks)
    counts: Row = {f: sum(r["finding"] == f for r in tasks) for f in (*MISSED, "complete")}
    counts.update(
        tasks=len(tasks),
        scheduled_hours=round(scheduled / 3600, 2),
        recorded_hours=round(recorded / 3600, 2),
        pct_recorded=round(100 * recorded / scheduled, 1) if scheduled else None,
        orphan_files=len(orphans),
        orphan_hours=round(sum(_seconds(r, "recorded_seconds") for r in orphans) / 3600, 2),
    )
    return counts


def span(seconds: float) -> str:
    """A length of time to read: ``45 s`` under a minute, else as :func:`duration`."""
    if abs(seconds) < 60:
        return f"{seconds:.0f} s"
    return duration(timedelta(seconds=seconds))


def where_the_time_went(row: Mapping[str, Any]) -> str:
    """``no file``, or the missing time split into late start, cuts and early end."""
    if row["finding"] == "no_file":
        return "no file"
    parts = [
        f"{what} {span(_seconds(row, column))}"
        for what, column in (
            ("late start", "late_start_seconds"),
            ("cuts", "cut_seconds"),
            ("early end", "early_end_seconds"),
        )
        if _seconds(row, column) > 0
    ]
    return ", ".join(parts) or "overlapping files"


def missed_recordings(rows: Sequence[Mapping[str, Any]]) -> list[Row]:
    """The tasks that left no file, then those that recorded short, as table rows."""
    missed = [r for f in MISSED for r in rows if r["finding"] == f]
    return [
        {
            "finding": r["finding"],
            "task_id": r["task_id"],
            "start_time": r["start_time"],
            "domain/app/stream": "/".join(
                "(none)" if r.get(c) is None else str(r[c]) for c in ("domain", "app", "stream")
            ),
            "scheduled": span(_seconds(r, "scheduled_seconds")),
            "recorded": span(_seconds(r, "recorded_seconds")),
            "pct_recorded": r["pct_recorded"],
            "where the time went": where_the_time_went(r),
        }
        for r in missed
    ]


def coverage_per_period(rows: Sequence[Mapping[str, Any]], time_zone: str) -> list[Row]:
    """Per day the tasks checked started (per ISO week over more than
    :data:`WEEKS_AFTER_DAYS` days): their scheduled and recorded hours, and how many missed."""
    tasks = [r for r in rows if r["finding"] != "no_task" and r["start_time"] is not None]
    days = [local(r["start_time"], time_zone).date() for r in tasks]
    if not days:
        return []
    period = "week" if (max(days) - min(days)).days > WEEKS_AFTER_DAYS else "day"
    found: dict[date, Row] = {}
    for day, r in zip(days, tasks, strict=True):
        start = day - timedelta(days=day.weekday()) if period == "week" else day
        into = found.setdefault(
            start,
            {"period": period, "period_start": start, "tasks": 0, "missed": 0,
             "scheduled_seconds": 0.0, "recorded_seconds": 0.0},
        )  # fmt: skip
        into["tasks"] += 1
        into["missed"] += r["finding"] in MISSED
        into["scheduled_seconds"] += _seconds(r, "scheduled_seconds")
        into["recorded_seconds"] += _seconds(r, "recorded_seconds")
    return [_in_hours(found[start]) for start in sorted(found)]


def _in_hours(period: Row) -> Row:
    scheduled, recorded = period.pop("scheduled_seconds"), period.pop("recorded_seconds")
    period["scheduled_hours"] = round(scheduled / 3600, 2)
    period["recorded_hours"] = round(recorded / 3600, 2)
    period["pct_recorded"] = round(100 * recorded / scheduled, 1) if scheduled else None
    return period
