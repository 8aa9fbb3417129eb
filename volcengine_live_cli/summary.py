"""What the command prints: a summary of a run, or one paragraph explaining why it
failed, with the exit code that goes with it (listed in ``volcengine_live_cli.command``).

Why the walk through dlt's ``LookupTraces``: dlt's own message for a missing setting lists
every key it tried in every provider; the user needs the missing names and one example.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import TextIO

import dlt
import tomlkit
from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigurationException,
    ConfigValueCannotBeCoercedException,
    FieldLookupTraces,
    LookupTrace,
    LookupTraces,
)
from dlt.common.configuration.providers.toml import TomlProviderReadException
from dlt.pipeline.exceptions import PipelineStepFailed

from volcengine_live import ApiError, ConfigurationError, VolcengineLiveError
from volcengine_live.settings import FILES_TABLE_NAME, REJECTS_TABLE_NAME, TABLE_NAME, where_to_fix

from .run import (
    DamagedPipelineFolderError,
    DestinationError,
    RunResult,
    exception_chain,
)

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_API_REFUSED = 3
EXIT_API_UNAVAILABLE = 4
EXIT_DESTINATION = 5
EXIT_LOCKED = 75  # EX_TEMPFAIL from sysexits.h: cron and Airflow may simply retry later
EXIT_INTERRUPTED = 130


def duckdb_file(pipeline: dlt.Pipeline) -> str | None:
    """The DuckDB database file, when the destination is DuckDB."""
    if pipeline.destination is None or not pipeline.destination.destination_type.endswith("duckdb"):
        return None
    try:
        with pipeline.sql_client() as client:
            database = getattr(client.credentials, "database", None)
    except Exception:
        return None
    return os.path.relpath(database) if isinstance(database, str) else None


def duckdb_command() -> str:
    """The DuckDB command line as a user can type it: the one installed beside this
    program (duckdb-cli is a dependency), relative to here when that is shorter."""
    beside = Path(sys.executable).parent / "duckdb"
    if beside.exists() and shutil.which("duckdb") != str(beside):
        relative = os.path.relpath(beside)
        return relative if len(relative) < len(str(beside)) else str(beside)
    return "duckdb"


def summarise(
    pipeline: dlt.Pipeline, result: RunResult, backfill: bool, account: str | None = None
) -> str:
    """A few lines saying what was loaded, what the API did, and where the data is."""
    m = result.metrics
    written = int(m.get("rows_written", result.rows_loaded.get(TABLE_NAME, 0)))
    loaded = ", ".join(f"{t} {n} rows" for t, n in sorted(result.rows_loaded.items()))
    note = " (backfill: incremental state unchanged)" if backfill else ""
    lines = [f"Loaded: {loaded or 'no rows'}{note}"]
    if result.pending_loaded:
        lines.insert(0, f"Finished {result.pending_loaded} load(s) left by an earlier failed run")
    if result.rows_before is not None and result.rows_after is not None:
        new = result.rows_after - result.rows_before
        lines.append(
            f"Tasks: {new} new, {max(0, written - new)} updated; {result.rows_after} in the table"
            + (f" for account {account}" if account else "")
        )
    late = int(m.get("late_days", 0))
    lines.append(
        f"Read: {int(m.get('rows_read', 0))} rows in {int(m.get('scans', 0))} pass(es); "
        f"{int(m.get('flagged', 0))} flagged (data_issues), "
        f"{int(m.get('rejected', 0))} rejected ({REJECTS_TABLE_NAME})"
        + (f"; {late} earlier day(s) changed and were re-read" if late else "")
    )
    lines.append(
        f"API: {int(m.get('requests', 0))} requests, {int(m.get('retries', 0))} retries, "
        f"{int(m.get('throttled', 0))} throttled (HTTP 429)"
    )
    if result.file_metrics is not None:
        lines.append(files_line(result))
    lines.append(f"Elapsed: {result.elapsed:.1f}s")
    table = f"{pipeline.dataset_name}.{TABLE_NAME}"
    database = duckdb_file(pipeline)
    if database:
        lines.append(f"Data: DuckDB file {database}, table {table}")
        query = f"SELECT status_code, count(*) FROM {table} GROUP BY ALL ORDER BY 2 DESC"
        lines.append(f'Query: {duckdb_command()} {database} -c "{query}"')
        lines.append(
            "Notebook: make notebook (opens notebooks/pull_record_tasks_analysis.ipynb, "
            "which reads this file)"
        )
        lines.append(f"Report: volcengine-live report --duckdb {database} (an HTML page)")
    else:
        name = pipeline.destination.destination_name if pipeline.destination else "?"
        lines.append(f"Data: destination {name}, table {table}")
    return "\n".join(lines)


def files_line(result: RunResult) -> str:
    """What the file history's part of the run did (``record_files`` was selected)."""
    f = result.file_metrics or {}
    return (
        f"Files: {result.rows_loaded.get(FILES_TABLE_NAME, 0)} rows loaded into "
        f"{FILES_TABLE_NAME}; {int(f.get('windows', 0))} window(s) of the file history read, "
        f"{int(f.get('files_listed', 0))} files listed, {int(f.get('requests', 0))} requests, "
        f"{int(f.get('retries', 0))} retries"
    )


def find_cause(error: BaseException) -> BaseException:
    """The most telling exception in a dlt chain: ours if any, or dlt's word that a
    configured value does not convert (its cause, a bare ValueError, names nothing), else the
    innermost."""
    chain = exception_chain(error)
    telling = (VolcengineLiveError, ConfigValueCannotBeCoercedException)
    return next((link for link in chain if isinstance(link, telling)), chain[-1])


def _missing_fields(error: ConfigFieldMissingException) -> str:
    """dlt's own message lists every key it tried; the missing fields and one example
    environment variable are enough here."""
    names: list[str] = []
    example: str | None = None
    pending: list[tuple[str, FieldLookupTraces]] = [("", error.traces)]
    while pending:
        prefix, traces = pending.pop(0)
        for name, field_traces in traces.items():
            nested = [t for t in field_traces if isinstance(t, LookupTraces)]
            if nested:
                pending.append((f"{prefix}{name}.", nested[0].traces))
                continue
            names.append(prefix + name)
            keys = [
                t.key
                for t in field_traces
                if isinstance(t, LookupTrace) and t.provider == "Environment Variables"
            ]
            if example is None and keys:
                example = next((k for k in keys if k.startswith("DESTINATION__")), keys[0])
    hint = f" (for example the environment variable {example})" if example else ""
    return (
        f"Configuration error: {error.spec_name} is missing {', '.join(names)}. Set them in "
        f".dlt/secrets.toml or .dlt/config.toml, or as environment variables{hint}; "
        "--log-level debug lists every place dlt looked."
    )


def _broken_toml(error: TomlProviderReadException) -> str:
    """Which of the TOML files dlt tried cannot be parsed, and where in it."""
    for path in error.full_paths:  # the files dlt merged, in the order it read them
        try:
            tomlkit.parse(Path(path).read_text(encoding="utf-8"))
        except OSError:
            continue
        except Exception as problem:  # tomlkit's parse errors, or undecodable bytes
            return (
                f"Configuration error: {os.path.relpath(path)} is not valid TOML ({problem}). "
                "Fix that line (a [section] must close with ], a text value needs quotes), or "
                "move the file away, and run again."
            )
    return f"Configuration error: {error}. Fix the TOML file it names and run again."


def _damaged_folder(error: DamagedPipelineFolderError) -> str:
    return (
        f"The pipeline's working folder {error.folder} is damaged: a state or schema file in "
        f"it cannot be read ({error}). Remove that folder (rm -r '{error.folder}') and run "
        "again: the state and schema are restored from the destination, and a load left "
        "pending in the folder is read from the API again. --full-refresh does not help here: "
        "it needs the folder readable."
    )


def _not_convertible(error: ConfigValueCannotBeCoercedException) -> str:
    """dlt could not convert a configured value to the source argument's type."""
    name = getattr(error, "field_name", "?")
    value = getattr(error, "field_value", None)
    hint = getattr(error, "hint", None)
    what = getattr(hint, "__name__", None) or str(hint)
    return f"Configuration error: {name} {value!r} is not of type {what}. {where_to_fix(name)}"


def report_error(error: BaseException, stream: TextIO) -> int:
    """Print one paragraph (what failed, why, what to do) and return the exit code."""
    chain = exception_chain(error)
    if any(isinstance(link, KeyboardInterrupt) for link in chain):
        # dlt wraps Ctrl-C in PipelineStepFailed, an Exception: it is still an interruption
        return report_interrupted(stream)
    toml = next((link for link in chain if isinstance(link, TomlProviderReadException)), None)
    cause = find_cause(error)
    step = error.step if isinstance(error, PipelineStepFailed) else None
    if toml is not None:
        code, text = EXIT_CONFIG, _broken_toml(toml)
    elif isinstance(error, DamagedPipelineFolderError):
        code, text = EXIT_DESTINATION, _damaged_folder(error)
    elif isinstance(cause, ConfigurationError):
        code, text = EXIT_CONFIG, f"Configuration error: {cause}"
    elif isinstance(cause, ApiError):
        code, text = EXIT_API_REFUSED, f"The API refused the request. {cause}"
    elif isinstance(cause, VolcengineLiveError):  # RetriesExhaustedError, IncompleteScanError
        code, text = EXIT_API_UNAVAILABLE, f"Reading the task list failed. {cause}"
    elif isinstance(cause, ConfigValueCannotBeCoercedException):
        code, text = EXIT_CONFIG, _not_convertible(cause)
    elif isinstance(cause, ConfigFieldMissingException):
        try:
            code, text = EXIT_CONFIG, _missing_fields(cause)
        except (AttributeError, TypeError, KeyError):  # dlt changed its lookup traces
            code, text = EXIT_CONFIG, f"Configuration error: {cause}"
    elif isinstance(cause, ConfigurationException):
        code = EXIT_CONFIG
        text = f"Configuration error: {cause}. Check .dlt/config.toml and .dlt/secrets.toml."
    elif step in ("load", "sync") or isinstance(error, DestinationError):
        step = step or "sync"
        code = EXIT_DESTINATION
        text = (
            f"The destination failed during {step}: {type(cause).__name__}: {cause}. "
            "Check the destination's configuration, that it is reachable and (for a DuckDB "
            "file) that no other program has it open. The incremental state did not advance: "
            "run again once it is fixed."
        )
    else:
        code = EXIT_ERROR
        where = f" during {step}" if step else ""
        text = (
            f"Unexpected error{where}: {type(cause).__name__}: {cause}. Run again with "
            "--log-level debug to see the traceback."
        )
    if code != EXIT_CONFIG and not text.rstrip().endswith("."):
        text = text.rstrip() + "."
    print(f"volcengine-live: {text} (exit code {code})", file=stream)
    return code


def report_lock_busy(pipeline_name: str, lock: str, stream: TextIO) -> int:
    print(
        f"volcengine-live: another run of pipeline {pipeline_name!r} is in progress "
        f"(lock {lock}). Not starting a second one; try again when it has finished, or "
        f"pass --wait-for-lock SECONDS. (exit code {EXIT_LOCKED})",
        file=stream,
    )
    return EXIT_LOCKED


def report_interrupted(stream: TextIO) -> int:
    print(
        "volcengine-live: interrupted. Run again: an unfinished load is completed first "
        f"and the state advances only with a completed scan. (exit code {EXIT_INTERRUPTED})",
        file=stream,
    )
    return EXIT_INTERRUPTED
