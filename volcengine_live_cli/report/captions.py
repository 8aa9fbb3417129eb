"""Readings: one sentence under each chart saying what it shows, on the page and in the
notebook."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .common import TIME_ZONE
from .formatting import plural, when


def concurrency_reading(
    envelope: Sequence[Mapping[str, Any]], peak: Mapping[str, Any], time_zone: str = TIME_ZONE
) -> str:
    if not envelope:
        return "Nothing has recorded yet, so there is no concurrency to show."
    bucket = envelope[0]["bucket"]
    top = int(peak.get("peak_concurrent") or 0)
    busiest = max(envelope, key=lambda r: float(r["mean_concurrent"]))
    return (
        f"At most {plural(top, 'task')} recorded at once (first at "
        f"{when(peak.get('peak_first_at'), time_zone)}; compare with your quota), "
        f"{int(peak.get('concurrent_now') or 0)} now and up to "
        f"{envelope[-1]['peak_concurrent']} this {bucket}; the band is each {bucket}'s peak, "
        f"the line its mean, highest ({busiest['mean_concurrent']}) on "
        f"{when(busiest['bucket_start'], time_zone)}."
    )


def activity_reading(rows: Sequence[Mapping[str, Any]], value: str, what: str) -> str:
    if not rows:
        return f"No {what.lower()} to show."
    period = rows[0]["period"]
    by_period: dict[Any, float] = {}
    for r in rows:
        by_period[r["period_start"]] = by_period.get(r["period_start"], 0.0) + float(r[value] or 0)
    best = max(by_period, key=lambda p: by_period[p])
    total = sum(by_period.values())
    return (
        f"{what}: {total:,.6g} in all over {plural(len(by_period), period)}, most "
        f"({by_period[best]:,.6g}) in the {period} of {best}; bars are stacked by status "
        "(not_started ones lie ahead, stopped hours are an upper bound)."
    )


def heatmap_reading(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "Nothing has recorded yet, so there is no weekly pattern to show."
    busiest = max(rows, key=lambda r: float(r["mean_concurrent"]))
    return (
        "Darker cells are the hours of the week with more recordings at once; the busiest is "
        f"{busiest['weekday_name']} {int(busiest['hour']):02d}:00, with "
        f"{busiest['mean_concurrent']} on average (peak {busiest['peak_concurrent']})."
    )


def coverage_reading(counts: Mapping[str, Any], periods: Sequence[Mapping[str, Any]]) -> str:
    """What the coverage chart shows: the share recorded, and the worst day (or week)."""
    if not counts.get("tasks"):
        return (
            "No finished task to check yet: tasks are checked once they have ended before the "
            "last file read and started after the earliest file loaded."
        )
    worst = min(
        (p for p in periods if p["pct_recorded"] is not None),
        key=lambda p: float(p["pct_recorded"]),
    )
    return (
        f"Of {counts['scheduled_hours']:,.6g} hours scheduled for "
        f"{plural(int(counts['tasks']), 'finished task')}, the files cover "
        f"{counts['recorded_hours']:,.6g} ({counts['pct_recorded']:g} %); the least in the "
        f"{worst['period']} of {worst['period_start']} ({worst['pct_recorded']:g} % of "
        f"{worst['scheduled_hours']:,.6g} hours). A pale bar above a blue one is time missed."
    )


def coverage_summary(counts: Mapping[str, Any]) -> str:
    """How many finished tasks were checked, and what became of them."""
    return (
        f"{plural(int(counts['tasks']), 'finished task')} checked (those that ended before the "
        "last file read and started after the earliest file loaded): "
        f"{int(counts['no_file'])} left no file, {int(counts['short'])} recorded short (more "
        f"than a minute less than scheduled), {int(counts['complete'])} complete."
    )


def missed_sentence(tasks: int, what: str, limit: int) -> str:
    """``3 tasks left no file.``, or ``..., the first 20.`` above ``limit`` of them."""
    more = f", the first {limit}" if tasks > limit else ""
    return f"{plural(tasks, 'task')} {what}{more}."


def orphan_summary(counts: Mapping[str, Any]) -> str:
    """The files that belong to no task (finding no_task)."""
    files = int(counts["orphan_files"])
    if not files:
        return "Every file loaded belongs to a task."
    return (
        f"{plural(files, 'file')} ({counts['orphan_hours']:,.6g} hours) "
        f"{'belongs' if files == 1 else 'belong'} to no task: recordings of a preset, or of a "
        "task deleted before it was loaded (finding no_task in sql/recording_coverage.sql)."
    )
