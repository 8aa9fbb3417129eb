"""The data the page needs: the files in ``sql/``, read from the repo or the wheel and run
unchanged but for their ``SET schema`` and ``SET TimeZone`` lines, so the page, the notebook
and the ``duckdb`` command line agree; and what the page says about that data."""

from __future__ import annotations

import importlib.resources
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

from .common import DATASET_NAME, TIME_ZONE, ReportError, Row
from .dataset import file_history_note
from .formatting import duration, when

SQL_DIR = Path(__file__).resolve().parent.parent.parent / "sql"
"""The repo's ``sql/`` folder, beside the ``volcengine_live_cli`` package."""
SQL_PACKAGE = "volcengine_live_cli"
"""Where an installed wheel may ship the same files instead, as ``<package>/sql/<name>``."""

STALE_AFTER = timedelta(hours=24)
"""Data older than this gets a warning: task statuses are as of the last load."""


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
    coverage: list[Row] | None = None
    """sql/recording_coverage.sql's rows; None when the file history was not loaded."""
    files_note: str | None = None
    """Why ``coverage`` is None (the file history is off by default): said on the page."""
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
    _set_window(con, as_of, since, until)

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
    data.files_note = file_history_note(con, dataset_name)
    if data.files_note is None:
        data.coverage = one("recording_coverage.sql")
    data.notices.extend(_notices(data))
    data.warnings.extend(_warnings(data))
    return data


def _set_window(
    con: duckdb.DuckDBPyConnection, as_of: datetime, since: datetime | None, until: datetime | None
) -> None:
    """The SQL files read "now" and the window from these session variables."""
    con.execute("SET VARIABLE as_of = ?::TIMESTAMPTZ", [as_of.isoformat()])
    for name, value in (("since", since), ("until", until)):
        if value is None:
            con.execute(f"RESET VARIABLE {name}")
        else:
            con.execute(f"SET VARIABLE {name} = ?::TIMESTAMPTZ", [value.isoformat()])


def _notices(data: ReportData) -> list[str]:
    """Why a chart may look empty or thin: the data is so, not the report broken."""
    found = []
    tasks = int(data.summary["tasks"] or 0)
    if tasks == 0:
        found.append(
            "The table holds no tasks yet: every chart and table below is empty. "
            "Tasks appear after a run that finds some."
        )
    elif tasks == 1:
        found.append("The table holds a single task: the charts have one to show.")
    if tasks and not any(r["status_code"] == "finished" for r in data.by_status):
        found.append(
            "No task has finished yet: hours and concurrency come from tasks still recording "
            "(counted up to now) or stopped."
        )
    if tasks and not any(r["recorded_hours"] for r in data.envelope):
        found.append(
            "Nothing has recorded in this window yet, so the concurrency charts are empty."
        )
    return found


def _warnings(data: ReportData) -> list[str]:
    """Why the numbers may mislead: stale data, or data quality errors."""
    found = []
    loaded, age = data.summary["last_loaded_at"], data.summary["data_age"]
    if loaded is None:
        found.append("No successful load is recorded in _dlt_loads.")
    elif isinstance(age, timedelta) and age > STALE_AFTER:
        found.append(
            f"The data is {duration(age)} old (last load {when(loaded, data.time_zone)}): task "
            "statuses are as of that load. Run volcengine-live to refresh it."
        )
    errors = [r["check"] for r in data.quality if r["severity"] == "error" and not r["ok"]]
    if errors:
        found.append(
            f"Data quality errors ({', '.join(errors)}): the numbers below cannot be trusted."
        )
    return found
