"""The page: one self-contained HTML document, its CSS inline and its charts PNG images
embedded, so it opens with no Jupyter and no network."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from . import captions
from .captions import activity_reading, concurrency_reading, heatmap_reading
from .charts import activity_figure, concurrency_figure, coverage_figure, heatmap_figure, png
from .common import Row
from .formatting import cell, plural, when
from .queries import ReportData
from .recordings import (
    MISSED_KINDS,
    NOT_LOADED,
    coverage_counts,
    coverage_per_period,
    missed_recordings,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TOP = 10
FIRST_ROWS = 20

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px auto;
       max-width: 1180px; color: #222; line-height: 1.4; padding: 0 16px; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.meta { color: #666; }
.warning { background: #fff3cd; border: 1px solid #e0b400; padding: 8px 12px; margin: 8px 0; }
.notice { background: #e8f0fe; border: 1px solid #8ab4f8; padding: 8px 12px; margin: 8px 0; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: left; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
tr.bad td { background: #fdecea; }
figure { margin: 12px 0 24px; } figure img { max-width: 100%; height: auto; }
figcaption { color: #444; max-width: 1100px; }
.cols { display: flex; flex-wrap: wrap; gap: 24px; } .cols > div { flex: 1 1 340px; }
"""


def _table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    time_zone: str,
    empty: str = "none",
    bad: str | None = None,
) -> str:
    if not rows:
        return f"<p class='meta'>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []
    for r in rows:
        cells = []
        for c in columns:
            v = r.get(c)
            number = isinstance(v, (int, float)) and not isinstance(v, bool)
            cls = " class='n'" if number else ""
            cells.append(f"<td{cls}>{html.escape(cell(v, time_zone))}</td>")
        row_cls = " class='bad'" if bad and not r.get(bad) else ""
        body.append(f"<tr{row_cls}>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(body)}</table>"


def _chart(fig: Figure, alt: str, reading: str) -> str:
    data = base64.b64encode(png(fig)).decode("ascii")
    return (
        f"<figure><img class='chart' alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"
        f"<figcaption>{html.escape(reading)}</figcaption></figure>"
    )


def _first(rows: list[Row], what: str) -> str:
    n = len(rows)
    more = f", the first {FIRST_ROWS}" if n > FIRST_ROWS else ""
    return f"<p>{html.escape(plural(n, what))}{more}.</p>"


def render_html(data: ReportData) -> str:
    """The whole page; everything it needs is inline."""
    parts = [
        *_head(data),
        *_freshness(data),
        *_recording_load(data),
        *_where_the_hours_go(data),
        *_what_was_recorded(data),
        *_task_lists(data),
        *_data_quality(data),
        "</body></html>",
    ]
    return "\n".join(parts)


def _head(data: ReportData) -> list[str]:
    """The document's head, the title, what the page is of, and its warnings and notices."""
    tz = data.time_zone
    window = "all loaded tasks"
    if data.since or data.until:
        window = f"{when(data.since, tz) if data.since else 'the start'} to " + (
            when(data.until, tz) if data.until else "now"
        )
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        "<title>Volcengine Live recording tasks: report</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Volcengine Live pull-recording tasks</h1>",
        f"<p class='meta'>{html.escape(data.source)}, dataset "
        f"{html.escape(data.dataset_name)}; as of {html.escape(when(data.as_of, tz))} "
        f"({html.escape(tz)}); "
        f"charts and top lists: {html.escape(window)}. Made by volcengine-live report from the "
        "files in sql/.</p>",
    ]
    parts += [f"<p class='warning'>Warning: {html.escape(w)}</p>" for w in data.warnings]
    parts += [f"<p class='notice'>{html.escape(n)}</p>" for n in data.notices]
    return parts


def _freshness(data: ReportData) -> list[str]:
    tz = data.time_zone
    s = data.summary
    return [
        "<h2>Freshness</h2>",
        f"<p>Last successful load: <b>{html.escape(when(s['last_loaded_at'], tz))}</b> "
        f"({html.escape(cell(s['data_age'], tz))} ago), "
        f"{html.escape(plural(int(s['successful_loads'] or 0), 'successful load'))}; "
        f"<b>{html.escape(plural(int(s['tasks'] or 0), 'task'))}</b> in the table. Statuses "
        "are as of that load.</p>",
        "<h2>Tasks by status</h2>",
        _table(data.by_status, ["status", "status_code", "tasks", "pct"], tz, empty="no tasks"),
    ]


PEAK_COLUMNS = [
    "peak_concurrent",
    "peak_first_at",
    "peak_first_until",
    "times_peak_reached",
    "hours_at_peak",
    "concurrent_now",
]


def _recording_load(data: ReportData) -> list[str]:
    tz = data.time_zone
    return [
        "<h2>Recording load</h2>",
        _table([data.peak], PEAK_COLUMNS, tz),
        _chart(
            concurrency_figure(data.envelope, data.peak, tz),
            "concurrency envelope",
            concurrency_reading(data.envelope, data.peak, tz),
        ),
        _chart(
            heatmap_figure(data.heatmap, tz),
            "weekday by hour heatmap",
            heatmap_reading(data.heatmap),
        ),
        _chart(
            activity_figure(data.activity, "tasks_started", "Tasks started", "tasks"),
            "tasks started",
            activity_reading(data.activity, "tasks_started", "Tasks started"),
        ),
        _chart(
            activity_figure(data.activity, "recorded_hours", "Recorded hours", "hours"),
            "recorded hours",
            activity_reading(data.activity, "recorded_hours", "Recorded hours"),
        ),
    ]


def _where_the_hours_go(data: ReportData) -> list[str]:
    """The top domains, apps and streams by recorded hours, side by side."""
    parts = ["<h2>Where the hours go</h2><div class='cols'>"]
    for title, rows, columns in (
        ("Domains", data.by_domain, ["domain", "tasks", "recorded_hours", "pct"]),
        ("Apps", data.by_app, ["domain", "app", "tasks", "recorded_hours", "pct"]),
        ("Streams", data.by_stream, ["domain", "app", "stream", "recorded_hours", "pct"]),
    ):
        shown = f" (top {TOP} of {len(rows)})" if len(rows) > TOP else ""
        parts.append(f"<div><h3>{title}{shown}</h3>")
        parts.append(
            _table(rows[:TOP], columns, data.time_zone, empty="nothing recorded") + "</div>"
        )
    parts.append("</div>")
    return parts


MISSED_COLUMNS = [
    "finding",
    "task_id",
    "start_time",
    "domain/app/stream",
    "scheduled",
    "recorded",
    "pct_recorded",
    "where the time went",
]


def _what_was_recorded(data: ReportData) -> list[str]:
    """From sql/recording_coverage.sql: the missed recordings first, then the hours
    scheduled against those recorded over time, then the files no task describes; or, when
    the file history was not loaded, how to load it."""
    parts = ["<h2 id='what-was-recorded'>What was recorded</h2>"]
    if data.coverage is None:
        return [*parts, f"<p class='notice'>{html.escape(data.files_note or NOT_LOADED)}</p>"]
    counts = coverage_counts(data.coverage)
    missed = missed_recordings(data.coverage)
    periods = coverage_per_period(data.coverage, data.time_zone)
    parts.append(f"<p>{html.escape(captions.coverage_summary(counts))}</p>")
    parts.append("<h3>Missed recordings</h3>")
    for finding, what in MISSED_KINDS:
        rows = [r for r in missed if r["finding"] == finding]  # each kind gets its own first
        parts.append(f"<p>{html.escape(captions.missed_sentence(len(rows), what, FIRST_ROWS))}</p>")
        if rows:
            parts.append(_table(rows[:FIRST_ROWS], MISSED_COLUMNS, data.time_zone))
    return [
        *parts,
        _chart(
            coverage_figure(periods),
            "hours scheduled and recorded",
            captions.coverage_reading(counts, periods),
        ),
        f"<p>{html.escape(captions.orphan_summary(counts))}</p>",
    ]


def _task_lists(data: ReportData) -> list[str]:
    """The first tasks scheduled next and the first recording now."""
    tz = data.time_zone
    columns = ["task_id", "start_time", "end_time", "domain", "app", "stream"]
    return [
        "<h2>Scheduled next</h2>" + _first(data.upcoming, "scheduled task"),
        _table(data.upcoming[:FIRST_ROWS], [*columns[:3], "starts_in", *columns[3:]], tz),
        "<h2>Recording now</h2>" + _first(data.recording, "task recording"),
        _table(data.recording[:FIRST_ROWS], [*columns[:3], "ends_in", *columns[3:]], tz),
    ]


def _data_quality(data: ReportData) -> list[str]:
    columns = ["check", "severity", "problem_rows", "ok", "examples"]
    return [
        "<h2>Data quality</h2><p>error rows must be 0; warning rows are malformed "
        "source data the answers above leave out.</p>",
        _table(data.quality, columns, data.time_zone, bad="ok"),
    ]
