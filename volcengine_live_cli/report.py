"""``volcengine-live report``: the recording load as one self-contained HTML page.

    volcengine-live report                          # from the file the last run wrote
    volcengine-live report --duckdb volcengine_live_demo.duckdb --output demo.html
    volcengine-live report --since 2024-01-01 --until 2024-04-01

The page needs no Jupyter and no network to open: charts are PNG images embedded in it.
Every number comes from the files in ``sql/``, run unchanged but for their ``SET schema`` and
``SET TimeZone`` lines, so the page, the notebook and the ``duckdb`` command line agree.
The chart functions are shared with the notebook (``notebooks/pull_record_tasks_analysis.ipynb``).

Exit codes: 0 written, 1 unexpected error, 2 bad arguments, no DuckDB file, or the file lacks
the tables (the message names what is missing), 75 another process is writing the file.
"""

from __future__ import annotations

import argparse
import base64
import html
import importlib
import importlib.resources
import io
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

DATASET_NAME = "volcengine_live_dataset"
TIME_ZONE = "Asia/Shanghai"
OUTPUT = "volcengine_live_report.html"
DEFAULT_FILES = ("volcengine_live.duckdb", "volcengine_live_demo.duckdb")
"""What ``volcengine-live`` and ``volcengine-live --demo`` write in the working directory
(``<pipeline-name>.duckdb``); the report reads the one written last."""

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
"""The repo's ``sql/`` folder, beside this package."""
SQL_PACKAGE = "volcengine_live_cli"
"""Where an installed wheel may ship the same files instead, as ``<package>/sql/<name>``."""

STALE_AFTER = timedelta(hours=24)
"""Data older than this gets a warning: task statuses are as of the last load."""
TOP = 10
FIRST_ROWS = 20

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BUSY = 75

REQUIRED_COLUMNS = {
    "pull_record_tasks": (
        "task_id",
        "start_time",
        "end_time",
        "vhost",
        "domain",
        "app",
        "stream",
        "status",
        "status_code",
        "deleted_at",
    ),
    "_dlt_loads": ("load_id", "status", "inserted_at"),
}

STATUS_ORDER = ["finished", "stopped", "recording", "not_started", "unknown"]
STATUS_COLORS = {
    "finished": "#4C72B0",
    "stopped": "#C44E52",
    "recording": "#55A868",
    "not_started": "#8172B2",
    "unknown": "#937860",
}

Row = dict[str, Any]


class ReportError(Exception):
    """A report that cannot be made, with the exit code and a message saying why."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


# --- SQL ---------------------------------------------------------------------------------


def sql_text(name: str) -> str:
    """The text of ``sql/<name>``: from the repo's ``sql/`` folder, else from the package
    data of :data:`SQL_PACKAGE` (``<package>/sql/<name>``) when installed from a wheel."""
    path = SQL_DIR / name
    if path.is_file():
        return path.read_text(encoding="utf-8")
    try:
        resource = importlib.resources.files(SQL_PACKAGE).joinpath("sql", name)
        if resource.is_file():
            return resource.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):
        pass
    raise ReportError(f"sql/{name} was found neither in {SQL_DIR} nor in {SQL_PACKAGE}/sql", 1)


SET_SCHEMA = re.compile(r"^SET schema = '[^']*';$", re.MULTILINE)
SET_TIME_ZONE = re.compile(r"^SET TimeZone = '[^']*';$", re.MULTILINE)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def prepare_sql(name: str, dataset_name: str, time_zone: str) -> str:
    """``sql/<name>`` with its one ``SET schema`` and ``SET TimeZone`` lines set to these."""
    text = sql_text(name)
    text, schemas = SET_SCHEMA.subn(lambda _: f"SET schema = {_quote(dataset_name)};", text)
    text, zones = SET_TIME_ZONE.subn(lambda _: f"SET TimeZone = {_quote(time_zone)};", text)
    if schemas != 1 or zones != 1:
        raise ReportError(f"sql/{name} must set schema and TimeZone exactly once each", 1)
    return text


def fetch_rows(cursor: duckdb.DuckDBPyConnection) -> list[Row]:
    columns = [d[0] for d in cursor.description or []]
    return [dict(zip(columns, values, strict=True)) for values in cursor.fetchall()]


def run_sql(
    con: duckdb.DuckDBPyConnection, name: str, dataset_name: str, time_zone: str
) -> list[list[Row]]:
    """Run ``sql/<name>`` statement by statement: one list of rows per SELECT."""
    results = []
    for statement in duckdb.extract_statements(prepare_sql(name, dataset_name, time_zone)):
        cursor = con.execute(statement.query)
        if statement.type == duckdb.StatementType.SELECT:
            results.append(fetch_rows(cursor))
    return results


# --- Opening the file --------------------------------------------------------------------


def default_duckdb_file(folder: Path | None = None) -> Path:
    """The DuckDB file the last ``volcengine-live`` run wrote in ``folder`` (default: the
    working directory): of :data:`DEFAULT_FILES`, the one modified last."""
    folder = folder or Path.cwd()
    found = [folder / name for name in DEFAULT_FILES if (folder / name).is_file()]
    if not found:
        raise ReportError(
            f"No DuckDB file here: neither {' nor '.join(DEFAULT_FILES)} is in {folder}. "
            "Run volcengine-live (or volcengine-live --demo) first, or pass --duckdb FILE."
        )
    return max(found, key=lambda p: p.stat().st_mtime)


def open_dataset(path: Path, dataset_name: str) -> duckdb.DuckDBPyConnection:
    """A read-only connection to ``path``, after checking it holds the tables and columns
    the SQL files read; otherwise a :class:`ReportError` naming what is missing."""
    if not path.is_file():
        raise ReportError(f"No DuckDB file at {path}.")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as error:
        if "lock" in str(error).lower():
            raise ReportError(
                f"{path} is open for writing by another process (a running pipeline?): "
                "try again when it has finished.",
                EXIT_BUSY,
            ) from error
        raise ReportError(f"{path} is not a DuckDB file DuckDB can open: {error}") from error
    found = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = ?",
        [dataset_name],
    ).fetchall()
    columns: dict[str, set[str]] = {}
    for table, column in found:
        columns.setdefault(table, set()).add(column)
    if "pull_record_tasks" not in columns and "_dlt_loads" in columns:
        columns["pull_record_tasks"] = empty_tasks_table(con)
    missing = []
    for table, needed in REQUIRED_COLUMNS.items():
        if table not in columns:
            missing.append(f"table {dataset_name}.{table}")
        else:
            lacking = [c for c in needed if c not in columns[table]]
            if lacking:
                missing.append(f"column(s) {', '.join(lacking)} of {dataset_name}.{table}")
    if missing:
        datasets = [
            s
            for (s,) in con.execute(
                "SELECT DISTINCT schema_name FROM duckdb_tables() "
                "WHERE table_name = 'pull_record_tasks' AND NOT schema_name LIKE '%\\_staging' "
                "ESCAPE '\\' ORDER BY 1"
            ).fetchall()
        ]
        con.close()
        hint = (
            f" Datasets with a pull_record_tasks table: {', '.join(datasets)} (--dataset-name)."
            if datasets and dataset_name not in datasets
            else " Load it with volcengine-live first."
        )
        raise ReportError(f"{path} has no {'; no '.join(missing)}.{hint}")
    return con


EMPTY_TASKS_COLUMNS = {
    "task_id": "VARCHAR",
    "start_time": "TIMESTAMPTZ",
    "end_time": "TIMESTAMPTZ",
    "vhost": "VARCHAR",
    "domain": "VARCHAR",
    "app": "VARCHAR",
    "stream": "VARCHAR",
    "status": "VARCHAR",
    "status_code": "VARCHAR",
    "data_issues": "VARCHAR",
    "seen_at": "TIMESTAMPTZ",
    "deleted_at": "TIMESTAMPTZ",
}


def empty_tasks_table(con: duckdb.DuckDBPyConnection) -> set[str]:
    """An empty ``pull_record_tasks`` for this connection only (a temporary table, which a
    read-only connection may create and which the SQL files find before the dataset's
    tables); returns its columns. For a dataset that was loaded but has no such table: dlt
    creates a table only when rows come, so an account without a single task has none, and
    that is data (0 tasks), not a missing load. The notebook uses it too."""
    columns = ", ".join(f"{name} {kind}" for name, kind in EMPTY_TASKS_COLUMNS.items())
    con.execute(f"CREATE TEMP TABLE IF NOT EXISTS pull_record_tasks ({columns})")
    return set(EMPTY_TASKS_COLUMNS)


# --- What the report shows -----------------------------------------------------------------


@dataclass
class ReportData:
    """Every query result the page shows, as lists of rows (column name -> value)."""

    source: str
    dataset_name: str
    time_zone: str
    as_of: datetime
    since: datetime | None
    until: datetime | None
    summary: Row
    by_status: list[Row]
    envelope: list[Row]
    peak: Row
    heatmap: list[Row]
    activity: list[Row]
    by_domain: list[Row]
    by_app: list[Row]
    by_stream: list[Row]
    upcoming: list[Row]
    recording: list[Row]
    quality: list[Row]
    notices: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def collect(
    con: duckdb.DuckDBPyConnection,
    *,
    source: str,
    dataset_name: str = DATASET_NAME,
    time_zone: str = TIME_ZONE,
    as_of: datetime | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> ReportData:
    """Run every SQL file the report needs, as of ``as_of`` (default now), with the charts
    and top lists limited to ``[since, until)``."""
    as_of = (as_of or datetime.now(timezone.utc)).replace(microsecond=0)
    con.execute("SET VARIABLE as_of = ?::TIMESTAMPTZ", [as_of.isoformat()])
    for name, value in (("since", since), ("until", until)):
        if value is None:
            con.execute(f"RESET VARIABLE {name}")
        else:
            con.execute(f"SET VARIABLE {name} = ?::TIMESTAMPTZ", [value.isoformat()])

    def one(name: str) -> list[Row]:
        (rows,) = run_sql(con, name, dataset_name, time_zone)
        return rows

    summary, by_status = run_sql(con, "freshness.sql", dataset_name, time_zone)
    data = ReportData(
        source=source,
        dataset_name=dataset_name,
        time_zone=time_zone,
        as_of=as_of,
        since=since,
        until=until,
        summary=summary[0],
        by_status=by_status,
        envelope=one("concurrency_envelope.sql"),
        peak=one("concurrency_peak.sql")[0],
        heatmap=one("concurrency_by_weekday_hour.sql"),
        activity=one("activity_per_period.sql"),
        by_domain=one("recorded_hours_by_domain.sql"),
        by_app=one("recorded_hours_by_app.sql"),
        by_stream=one("recorded_hours_by_stream.sql"),
        upcoming=one("upcoming_tasks.sql"),
        recording=one("recording_now.sql"),
        quality=one("data_quality.sql"),
    )
    tasks = int(data.summary["tasks"] or 0)
    if tasks == 0:
        data.notices.append(
            "The table holds no tasks yet: every chart and table below is empty. "
            "Tasks appear after a run that finds some."
        )
    elif tasks == 1:
        data.notices.append("The table holds a single task: the charts have one to show.")
    if tasks and not any(r["status_code"] == "finished" for r in by_status):
        data.notices.append(
            "No task has finished yet: hours and concurrency come from tasks still recording "
            "(counted up to now) or stopped."
        )
    if tasks and not any(r["recorded_hours"] for r in data.envelope):
        data.notices.append(
            "Nothing has recorded in this window yet, so the concurrency charts are empty."
        )
    loaded, age = data.summary["last_loaded_at"], data.summary["data_age"]
    if loaded is None:
        data.warnings.append("No successful load is recorded in _dlt_loads.")
    elif isinstance(age, timedelta) and age > STALE_AFTER:
        data.warnings.append(
            f"The data is {duration(age)} old (last load {when(loaded, time_zone)}): task "
            "statuses are as of that load. Run volcengine-live to refresh it."
        )
    errors = [r["check"] for r in data.quality if r["severity"] == "error" and not r["ok"]]
    if errors:
        data.warnings.append(
            f"Data quality errors ({', '.join(errors)}): the numbers below cannot be trusted."
        )
    return data


# --- Formatting ------------------------------------------------------------------------------


def local(value: datetime, time_zone: str) -> datetime:
    """An instant as the naive wall-clock time of ``time_zone``, for plotting."""
    if value.tzinfo is None:
        return value
    return value.astimezone(ZoneInfo(time_zone)).replace(tzinfo=None)


def when(value: Any, time_zone: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        try:
            return f"{local(value, time_zone):%Y-%m-%d %H:%M}"
        except OverflowError:  # 9999-12-31 UTC is year 10000 east of Greenwich
            return f"{value:%Y-%m-%d %H:%M %Z}"
    return str(value)


LABEL_CHARS = 60
"""Longest data label drawn in a chart: a name of a megabyte would make a figure wider than
any image can be."""
CELL_CHARS = 200
"""Longest text shown in a table cell of the page; the full text is in the database."""


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chart_label(value: Any, limit: int = LABEL_CHARS) -> str:
    """A value from the data as a chart label: shortened, and every ``$`` escaped, because
    matplotlib reads text between two ``$`` as math (mathtext), and a domain such as
    ``$\\undefinedmacro{x}$`` would fail the whole figure."""
    return shorten("(none)" if value is None else str(value), limit).replace("$", r"\$")


def duration(value: timedelta) -> str:
    """``1 d 2 h``, ``3 h 05 min``, ``12 min``, ``-2 h 00 min``."""
    if abs(value) < timedelta(minutes=1):
        return "0 min"  # also a load that finished while "now" was being read
    sign, seconds = ("-" if value < timedelta(0) else ""), abs(int(value.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{sign}{days} d {hours} h"
    if hours:
        return f"{sign}{hours} h {minutes:02d} min"
    return f"{sign}{minutes} min"


def cell(value: Any, time_zone: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, datetime):
        return when(value, time_zone)
    if isinstance(value, timedelta):
        return duration(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, (list, tuple)):
        return shorten(", ".join(str(v) for v in value), CELL_CHARS)
    return shorten(str(value), CELL_CHARS)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


# --- Charts (shared with the notebook) ------------------------------------------------------


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
    first = peak.get("peak_first_at")
    if top:
        ax.axhline(
            top, color="#C44E52", linestyle="--", linewidth=0.8, label=f"all-time peak {top}"
        )
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
    now_level = int(peak.get("concurrent_now") or 0)
    today = envelope[-1]
    x_today = mdates.date2num(starts[-1] + width / 2)
    ax.plot(
        [x_today],
        [float(today["peak_concurrent"])],
        marker="D",
        color="#DD8452",
        linestyle="none",
        label=f"this {bucket}: peak {today['peak_concurrent']}, now {now_level}",
    )
    ax.plot([x_today], [now_level], marker="o", color="#DD8452", fillstyle="none", linestyle="none")
    ax.xaxis_date()
    _date_axis(ax)
    ax.set_xlim(edges[0], edges[-1])
    ax.set_ylim(0, max(top, max(peaks), 1) * 1.25)
    ax.set_xlabel(f"{bucket} ({time_zone})")
    ax.set_ylabel("concurrent recordings")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize="small")
    ax.grid(alpha=0.3)
    return fig


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


# --- Readings: one sentence per chart ---------------------------------------------------------


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


# --- HTML ------------------------------------------------------------------------------------

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
    tz = data.time_zone
    s = data.summary
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

    parts.append("<h2>Freshness</h2>")
    parts.append(
        f"<p>Last successful load: <b>{html.escape(when(s['last_loaded_at'], tz))}</b> "
        f"({html.escape(cell(s['data_age'], tz))} ago), "
        f"{html.escape(plural(int(s['successful_loads'] or 0), 'successful load'))}; "
        f"<b>{html.escape(plural(int(s['tasks'] or 0), 'task'))}</b> in the table. Statuses "
        "are as of that load.</p>"
    )
    parts.append("<h2>Tasks by status</h2>")
    parts.append(
        _table(data.by_status, ["status", "status_code", "tasks", "pct"], tz, empty="no tasks")
    )

    parts.append("<h2>Recording load</h2>")
    parts.append(
        _table(
            [data.peak],
            [
                "peak_concurrent",
                "peak_first_at",
                "peak_first_until",
                "times_peak_reached",
                "hours_at_peak",
                "concurrent_now",
            ],
            tz,
        )
    )
    parts.append(
        _chart(
            concurrency_figure(data.envelope, data.peak, tz),
            "concurrency envelope",
            concurrency_reading(data.envelope, data.peak, tz),
        )
    )
    parts.append(
        _chart(
            heatmap_figure(data.heatmap, tz),
            "weekday by hour heatmap",
            heatmap_reading(data.heatmap),
        )
    )
    parts.append(
        _chart(
            activity_figure(data.activity, "tasks_started", "Tasks started", "tasks"),
            "tasks started",
            activity_reading(data.activity, "tasks_started", "Tasks started"),
        )
    )
    parts.append(
        _chart(
            activity_figure(data.activity, "recorded_hours", "Recorded hours", "hours"),
            "recorded hours",
            activity_reading(data.activity, "recorded_hours", "Recorded hours"),
        )
    )

    parts.append("<h2>Where the hours go</h2><div class='cols'>")
    for title, rows, columns in (
        ("Domains", data.by_domain, ["domain", "tasks", "recorded_hours", "pct"]),
        ("Apps", data.by_app, ["domain", "app", "tasks", "recorded_hours", "pct"]),
        ("Streams", data.by_stream, ["domain", "app", "stream", "recorded_hours", "pct"]),
    ):
        shown = f" (top {TOP} of {len(rows)})" if len(rows) > TOP else ""
        parts.append(f"<div><h3>{title}{shown}</h3>")
        parts.append(_table(rows[:TOP], columns, tz, empty="nothing recorded") + "</div>")
    parts.append("</div>")

    columns = ["task_id", "start_time", "end_time", "domain", "app", "stream"]
    parts.append("<h2>Scheduled next</h2>" + _first(data.upcoming, "scheduled task"))
    parts.append(_table(data.upcoming[:FIRST_ROWS], [*columns[:3], "starts_in", *columns[3:]], tz))
    parts.append("<h2>Recording now</h2>" + _first(data.recording, "task recording"))
    parts.append(_table(data.recording[:FIRST_ROWS], [*columns[:3], "ends_in", *columns[3:]], tz))

    parts.append(
        "<h2>Data quality</h2><p>error rows must be 0; warning rows are malformed "
        "source data the answers above leave out.</p>"
    )
    parts.append(
        _table(data.quality, ["check", "severity", "problem_rows", "ok", "examples"], tz, bad="ok")
    )
    parts.append("</body></html>")
    return "\n".join(parts)


# --- Entry points ------------------------------------------------------------------------------


def write_report(
    duckdb_path: Path | str | None = None,
    output: Path | str = OUTPUT,
    *,
    dataset_name: str = DATASET_NAME,
    time_zone: str = TIME_ZONE,
    since: datetime | None = None,
    until: datetime | None = None,
    as_of: datetime | None = None,
) -> ReportData:
    """Write the report of the DuckDB file ``duckdb_path`` (default: the one the last run
    wrote here) to ``output``; return what it shows. :class:`ReportError` when it cannot."""
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ReportError(
            f"Unknown time zone {time_zone!r} (use a name like Asia/Shanghai)."
        ) from error
    if since and until and until <= since:
        raise ReportError("--until must be later than --since")
    path = Path(duckdb_path) if duckdb_path is not None else default_duckdb_file()
    with open_dataset(path, dataset_name) as con:
        try:
            data = collect(
                con,
                source=f"DuckDB file {path.name}",
                dataset_name=dataset_name,
                time_zone=time_zone,
                as_of=as_of,
                since=since,
                until=until,
            )
        except duckdb.NotImplementedException as error:
            raise ReportError(
                f"DuckDB does not accept the time zone {time_zone!r}: {error}"
            ) from error
    page = render_html(data)
    Path(output).write_text(page, encoding="utf-8")
    return data


def _time(value: str) -> datetime:
    """ISO 8601 date or time; naive ones are in UTC, as for the loading command."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="volcengine-live report",
        description="Write one self-contained HTML page (charts embedded, no network needed) "
        "about the recording tasks in a DuckDB file the pipeline loaded.",
        epilog="Exit codes: 0 written, 1 unexpected error, 2 bad arguments, no file, or tables "
        "missing, 75 the file is being written.",
    )
    parser.add_argument(
        "--duckdb",
        metavar="FILE",
        type=Path,
        help=f"the DuckDB file (default: the last written of {', '.join(DEFAULT_FILES)} "
        "in the working directory)",
    )
    parser.add_argument("--dataset-name", default=DATASET_NAME, metavar="NAME")
    parser.add_argument(
        "--output",
        default=OUTPUT,
        metavar="FILE",
        type=Path,
        help=f"the HTML file to write (default {OUTPUT})",
    )
    parser.add_argument(
        "--since",
        type=_time,
        metavar="TIME",
        help="charts and top lists from TIME (ISO 8601; naive is UTC)",
    )
    parser.add_argument(
        "--until", type=_time, metavar="TIME", help="charts and top lists before TIME"
    )
    parser.add_argument(
        "--timezone",
        default=TIME_ZONE,
        metavar="ZONE",
        help=f"days, hours and times in this zone (default {TIME_ZONE}, as the SQL)",
    )
    parser.add_argument(
        "--as-of", type=_time, metavar="TIME", help="see the data as of TIME instead of now"
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """``volcengine-live report [options]``; return the exit code."""
    try:
        args = parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else EXIT_USAGE
    try:
        data = write_report(
            args.duckdb,
            args.output,
            dataset_name=args.dataset_name,
            time_zone=args.timezone,
            since=args.since,
            until=args.until,
            as_of=args.as_of,
        )
    except ReportError as error:
        print(f"volcengine-live report: {error} (exit code {error.code})", file=sys.stderr)
        return error.code
    except Exception as error:
        print(
            f"volcengine-live report: unexpected error: {type(error).__name__}: {error} "
            f"(exit code {EXIT_ERROR})",
            file=sys.stderr,
        )
        return EXIT_ERROR
    tasks = int(data.summary["tasks"] or 0)
    print(
        f"Report: {args.output} ({plural(tasks, 'task')}, {data.source}, dataset "
        f"{data.dataset_name}); open it in a browser."
    )
    for warning in data.warnings:
        print(f"Warning: {warning}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
