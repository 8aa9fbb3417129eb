"""Opening the DuckDB file: which one, read-only, and whether it holds what the SQL reads
(else a :class:`ReportError` naming what is missing, rather than a DuckDB error later)."""

from __future__ import annotations

from pathlib import Path

import duckdb

from .common import DEFAULT_FILES, EXIT_BUSY, ReportError
from .recordings import FILES_COLUMNS, FILES_TABLE, NOT_LOADED

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
    con = _connect(path)
    columns = _columns(con, dataset_name)
    if "pull_record_tasks" not in columns and "_dlt_loads" in columns:
        columns["pull_record_tasks"] = empty_tasks_table(con)
    missing = _missing(columns, dataset_name)
    if missing:
        hint = _dataset_hint(con, dataset_name)
        con.close()
        raise ReportError(f"{path} has no {'; no '.join(missing)}.{hint}")
    return con


def file_history_note(con: duckdb.DuckDBPyConnection, dataset_name: str) -> str | None:
    """``None`` when the dataset holds the file history sql/recording_coverage.sql reads;
    otherwise what the report says instead: the table is off by default, so its absence is
    a choice to explain, not an error."""
    columns = _columns(con, dataset_name).get(FILES_TABLE)
    if columns is None:
        return NOT_LOADED
    lacking = [c for c in FILES_COLUMNS if c not in columns]
    if lacking:
        return (
            f"The file history cannot be read: {dataset_name}.{FILES_TABLE} lacks column(s) "
            f"{', '.join(lacking)}, which sql/recording_coverage.sql reads: load it with "
            "this project's source (record_files = true)."
        )
    return None


def _connect(path: Path) -> duckdb.DuckDBPyConnection:
    """Read-only, so a report never changes the data; a file locked by a writer (a running
    pipeline) is exit code 75, to be tried again, not a broken file."""
    if not path.is_file():
        raise ReportError(f"No DuckDB file at {path}.")
    try:
        return duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as error:
        if "lock" in str(error).lower():
            raise ReportError(
                f"{path} is open for writing by another process (a running pipeline?): "
                "try again when it has finished.",
                EXIT_BUSY,
            ) from error
        raise ReportError(f"{path} is not a DuckDB file DuckDB can open: {error}") from error


def _columns(con: duckdb.DuckDBPyConnection, dataset_name: str) -> dict[str, set[str]]:
    """Table -> its columns, in the dataset's schema of the file."""
    found = con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() "
        "WHERE database_name = current_database() AND schema_name = ?",
        [dataset_name],
    ).fetchall()
    columns: dict[str, set[str]] = {}
    for table, column in found:
        columns.setdefault(table, set()).add(column)
    return columns


def _missing(columns: dict[str, set[str]], dataset_name: str) -> list[str]:
    """Each table, or each table's columns, that the SQL files read and the file lacks."""
    missing = []
    for table, needed in REQUIRED_COLUMNS.items():
        if table not in columns:
            missing.append(f"table {dataset_name}.{table}")
        else:
            lacking = [c for c in needed if c not in columns[table]]
            if lacking:
                missing.append(f"column(s) {', '.join(lacking)} of {dataset_name}.{table}")
    return missing


def _dataset_hint(con: duckdb.DuckDBPyConnection, dataset_name: str) -> str:
    """The datasets that do hold tasks, when this file loaded them under another name."""
    datasets = [
        s
        for (s,) in con.execute(
            "SELECT DISTINCT schema_name FROM duckdb_tables() "
            "WHERE table_name = 'pull_record_tasks' AND NOT schema_name LIKE '%\\_staging' "
            "ESCAPE '\\' ORDER BY 1"
        ).fetchall()
    ]
    return (
        f" Datasets with a pull_record_tasks table: {', '.join(datasets)} (--dataset-name)."
        if datasets and dataset_name not in datasets
        else " Load it with volcengine-live first."
    )


def empty_tasks_table(con: duckdb.DuckDBPyConnection) -> set[str]:
    """An empty ``pull_record_tasks`` for this connection only (a temporary table, which a
    read-only connection may create and which the SQL files find before the dataset's
    tables); returns its columns. For a dataset that was loaded but has no such table: dlt
    creates a table only when rows come, so an account without a single task has none, and
    that is data (0 tasks), not a missing load. The notebook uses it too."""
    columns = ", ".join(f"{name} {kind}" for name, kind in EMPTY_TASKS_COLUMNS.items())
    con.execute(f"CREATE TEMP TABLE IF NOT EXISTS pull_record_tasks ({columns})")
    return set(EMPTY_TASKS_COLUMNS)
