"""The charts, as matplotlib figures, shared by the page and the notebook
(``notebooks/pull_record_tasks_analysis.ipynb``), so both look the same; and the escaping
that makes any value of the data safe as a chart label."""

from __future__ import annotations

import importlib
import io
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .common import TIME_ZONE, ReportError
from .formatting import local, shorten

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

STATUS_ORDER = ["finished", "stopped", "recording", "not_started", "unknown"]
STATUS_COLORS = {
    "finished": "#4C72B0",
    "stopped": "#C44E52",
    "recording": "#55A868",
    "not_started": "#8172B2",
    "unknown": "#937860",
}


LABEL_CHARS = 60
"""Longest data label drawn in a chart: a name of a megabyte would make a figure wider than
any image can be."""


def chart_label(value: Any, limit: int = LABEL_CHARS) -> str:
    """A value from the data as a chart label: shortened, and every ``$`` escaped, because
    matplotlib reads text between two ``$`` as math (mathtext), and a domain such as
    ``$\\undefinedmacro{x}$`` would fail the whole figure."""
    return shorten("(none)" if value is None else str(value), limit).replace("$", r"\$")


def _figure(width: float, height: float) -> tuple[Figure, Axes]:
    try:
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - matplotlib is in the notebook extra
        raise ReportError(
            "the report draws its charts with matplotlib: "
            "pip install 'volcengine-live-dlt[notebook]'"
        ) from error
    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _no_data(ax: Axes, text: str = "no data") -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _mdates() -> Any:
    """matplotlib.dates (untyped: its functions are called through Any)."""
    return importlib.import_module("matplotlib.dates")


def _date_axis(ax: Axes) -> None:
    mdates = _mdates()

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


def png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def concurrency_figure(
    envelope: Sequence[Mapping[str, Any]], peak: Mapping[str, Any], time_zone: str = TIME_ZONE
) -> Figure:
    """Per day (or hour) the peak as a filled band and the mean as a line, with the
    all-time peak and today's value marked."""
    mdates = _mdates()

    fig, ax = _figure(11, 4)
    bucket = str(envelope[0]["bucket"]) if envelope else "day"
    ax.set_title(f"Tasks recording at the same time, per {bucket}: peak and mean")
    if not envelope:
        _no_data(ax, "nothing has recorded")
        return fig
    width = timedelta(hours=1) if bucket == "hour" else timedelta(days=1)
    starts = [local(r["bucket_start"], time_zone) for r in envelope]
    edges = mdates.date2num([*starts, starts[-1] + width])
    peaks = [float(r["peak_concurrent"]) for r in envelope]
    means = [float(r["mean_concurrent"]) for r in envelope]
    ax.stairs(peaks, edges, fill=True, color="#4C72B0", alpha=0.3, label=f"peak in the {bucket}")
    ax.stairs(means, edges, color="#1f3b73", linewidth=1.2, label=f"mean over the {bucket}")
    top = int(peak.get("peak_concurrent") or 0)
    if top:
        _mark_peak(ax, top, peak.get("peak_first_at"), edges, time_zone)
    x_today = mdates.date2num(starts[-1] + width / 2)
    _mark_today(ax, x_today, envelope[-1], int(peak.get("concurrent_now") or 0), bucket)
    ax.xaxis_date()
    _date_axis(ax)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, max(top, max(peaks), 1) * 1.25)
    ax.set_xlabel(f"{bucket} ({time_zone})")
    ax.set_ylabel("concurrent recordings")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    ax.grid(alpha=0.3)
    return fig


def _mark_peak(ax: Axes, top: int, first: Any, edges: Any, time_zone: str) -> None:
    """The all-time peak as a dashed line, and where it was first reached as a dot with its
    time, written towards the middle so it stays inside the axes."""
    mdates = _mdates()

    ax.axhline(top, color="#C44E52", linestyle="--", linewidth=0.8, label=f"all-time peak {top}")
    if isinstance(first, datetime):
        at = local(first, time_zone)
        ax.plot([mdates.date2num(at)], [top], marker="o", color="#C44E52")
        right_half = mdates.date2num(at) > (edges[0] + edges[-1]) / 2
        ax.annotate(
            f"all-time peak {top} at {at:%Y-%m-%d %H:%M}",
            (mdates.date2num(at), top),
            xytext=(-8 if right_half else 8, 6),
            textcoords="offset points",
            ha="right" if right_half else "left",
            color="#C44E52",
        )


def _mark_today(
    ax: Axes, x_today: float, today: Mapping[str, Any], now_level: int, bucket: str
) -> None:
    """This bucket's peak (filled) and the level right now (hollow), at its middle."""
    ax.plot(
        [x_today],
        [float(today["peak_concurrent"])],
        marker="D",
        color="#DD8452",
        linestyle="none",
        label=f"this {bucket}: peak {today['peak_concurrent']}, now {now_level}",
    )
    ax.plot([x_today], [now_level], marker="o", color="#DD8452", fillstyle="none", linestyle="none")


def activity_figure(rows: Sequence[Mapping[str, Any]], value: str, what: str, unit: str) -> Figure:
    """Bars per day (or ISO week, for long ranges), stacked by status_code."""
    mdates = _mdates()

    fig, ax = _figure(11, 4)
    period = str(rows[0]["period"]) if rows else "day"
    ax.set_title(f"{what} per {period}, by status")
    totals: dict[date, dict[str, float]] = {}
    for r in rows:
        totals.setdefault(r["period_start"], {})[str(r["status_code"])] = float(r[value] or 0)
    if not any(v for day in totals.values() for v in day.values()):
        _no_data(ax)
        return fig
    periods = sorted(totals)
    present = {code for day in totals.values() for code, v in day.items() if v}
    codes = [c for c in STATUS_ORDER if c in present] + sorted(present - set(STATUS_ORDER))
    x = mdates.date2num([datetime(d.year, d.month, d.day) for d in periods])
    width = 6.2 if period == "week" else 0.8
    bottom = [0.0] * len(periods)
    for code in codes:
        heights = [totals[p].get(code, 0.0) for p in periods]
        ax.bar(
            x,
            heights,
            bottom=bottom,
            width=width,
            align="edge",
            label=chart_label(code),
            color=STATUS_COLORS.get(code, "#999999"),
        )
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.xaxis_date()
    _date_axis(ax)
    ax.set_xlabel(f"{period} (weeks start on Monday)" if period == "week" else "day")
    ax.set_ylabel(unit)
    ax.legend(title="status_code", loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return fig


WEEKDAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]


def heatmap_figure(rows: Sequence[Mapping[str, Any]], time_zone: str = TIME_ZONE) -> Figure:
    """Mean concurrent recordings by weekday (rows) and hour of the day (columns)."""
    fig, ax = _figure(11, 3.6)
    ax.set_title("Mean tasks recording at once, by weekday and hour")
    if not rows:
        _no_data(ax, "nothing has recorded")
        return fig
    grid = [[math.nan] * 24 for _ in range(7)]
    for r in rows:
        grid[int(r["weekday"]) - 1][int(r["hour"])] = float(r["mean_concurrent"])
    image = ax.imshow(grid, aspect="auto", cmap="Blues", vmin=0, interpolation="nearest")
    ax.set_yticks(range(7), WEEKDAYS)
    ax.set_xticks(range(24), [str(h) for h in range(24)])
    ax.set_xlabel(f"hour of the day ({time_zone}); blank: not in the window")
    fig.colorbar(image, ax=ax, label="mean concurrent", pad=0.01)
    return fig


def coverage_figure(periods: Sequence[Mapping[str, Any]]) -> Figure:
    """Per day (or ISO week) of the finished tasks' start: the hours scheduled as a pale bar
    and the hours their files cover drawn over it, so what is missing shows as the pale part
    (from :func:`~volcengine_live_cli.report.recordings.coverage_per_period`)."""
    mdates = _mdates()

    fig, ax = _figure(11, 3.6)
    period = str(periods[0]["period"]) if periods else "day"
    ax.set_title(f"Finished tasks per {period}: hours scheduled, and recorded by their files")
    if not any(float(p["scheduled_hours"] or 0) for p in periods):
        _no_data(ax, "no finished task to check")
        return fig
    starts = [p["period_start"] for p in periods]
    x = mdates.date2num([datetime(d.year, d.month, d.day) for d in starts])
    width = 6.2 if period == "week" else 0.8
    scheduled = [float(p["scheduled_hours"] or 0) for p in periods]
    recorded = [float(p["recorded_hours"] or 0) for p in periods]
    ax.bar(x, scheduled, width=width, align="edge", color="#F2C4C4", label="scheduled (missed)")
    ax.bar(x, recorded, width=width, align="edge", color="#4C72B0", label="recorded")
    ax.xaxis_date()
    _date_axis(ax)
    monday = " (weeks start on Monday)" if period == "week" else ""
    ax.set_xlabel(f"{period} the task started{monday}")
    ax.set_ylabel("hours")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    ax.grid(axis="y", alpha=0.3)
    return fig
