"""``volcengine-live``: load Volcengine Live pull-recording tasks into DuckDB (or any dlt
destination) and print what the run did.

    volcengine-live                      # incremental run into ./volcengine_live.duckdb
    volcengine-live --since 2024-01-01   # backfill tasks starting on or after that day
    volcengine-live --demo               # against the bundled emulator, no account needed

Settings and credentials are read the dlt way (``.dlt/config.toml``, ``.dlt/secrets.toml``,
``SOURCES__VOLCENGINE_LIVE__...`` environment variables); command-line options win.

Exit codes:
    0   success
    1   unexpected error (run again with ``--log-level debug`` for the traceback)
    2   configuration or credentials missing or invalid, or bad command-line arguments
    3   the API refused the request (credentials, permission, billing, parameters)
    4   transient API faults outlasted the retries, or the list kept changing under the scan
    5   the destination failed (loading, or reading the pipeline state back)
    75  another run of the same pipeline holds the lock (EX_TEMPFAIL): try again later
    130 interrupted
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

import dlt
from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigurationException,
    FieldLookupTraces,
    LookupTrace,
    LookupTraces,
)
from dlt.common.pipeline import get_dlt_pipelines_dir
from dlt.pipeline.exceptions import PipelineStepFailed

from volcengine_live import (
    ApiError,
    ConfigurationError,
    VolcengineCredentials,
    VolcengineLiveError,
    volcengine_live_source,
)
from volcengine_live.destination import duckdb_destination
from volcengine_live.incremental import to_utc
from volcengine_live.settings import MAX_PAGE_SIZE, REJECTS_TABLE_NAME, TABLE_NAME

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: runs are not locked
    fcntl = None  # type: ignore[assignment]

logger = logging.getLogger("volcengine_live.pipeline")

PIPELINE_NAME = "volcengine_live"
DATASET_NAME = "volcengine_live_dataset"  # DuckDB refuses a dataset named like its file's stem
DEMO_PIPELINE_NAME = "volcengine_live_demo"  # the demo never mixes with a real account's data
DEMO_TASKS = 5000
DEMO_SEED = 20240101

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CONFIG = 2
EXIT_API_REFUSED = 3
EXIT_API_UNAVAILABLE = 4
EXIT_DESTINATION = 5
EXIT_LOCKED = 75  # EX_TEMPFAIL from sysexits.h: cron and Airflow may simply retry later
EXIT_INTERRUPTED = 130


class LockBusyError(Exception):
    """Another run of the same pipeline holds the lock."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``--since``/``--until`` are checked here so a typo fails at once."""
    parser = argparse.ArgumentParser(
        prog="volcengine-live",
        description="Load Volcengine Live pull-recording tasks (ListPullRecordTask) with dlt.",
        epilog="Exit codes: 0 ok, 1 unexpected error, 2 configuration/credentials, 3 API "
        "refused, 4 API faults outlasted the retries or incomplete scan, 5 destination "
        "failed, 75 another run holds the lock, 130 interrupted.",
    )
    parser.add_argument(
        "--destination",
        metavar="NAME",
        help="any dlt destination, configured the dlt way (default: DuckDB file "
        "<pipeline-name>.duckdb in the working directory)",
    )
    parser.add_argument(
        "--table-format",
        choices=["delta"],
        help="write Delta tables with the filesystem destination (merge needs them there)",
    )
    parser.add_argument("--dataset-name", default=DATASET_NAME, metavar="NAME")
    parser.add_argument(
        "--pipeline-name",
        metavar="NAME",
        help=f"default {PIPELINE_NAME} ({DEMO_PIPELINE_NAME} with --demo)",
    )
    parser.add_argument(
        "--since",
        type=_iso_time,
        metavar="TIME",
        help="backfill tasks whose StartTime is at or after TIME (ISO 8601; naive is UTC); "
        "leaves the incremental state alone",
    )
    parser.add_argument(
        "--until",
        type=_iso_time,
        metavar="TIME",
        help="backfill tasks whose StartTime is before TIME (alone: from the beginning)",
    )
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="drop the tables and the state of this source, then load everything again",
    )
    parser.add_argument("--page-size", type=int, metavar="N", help=f"1 to {MAX_PAGE_SIZE}")
    parser.add_argument(
        "--progress",
        choices=("log", "tqdm", "none"),
        help="progress display (default: tqdm on a terminal, log otherwise)",
    )
    parser.add_argument(
        "--demo",
        action="store_true",
        help=f"start the bundled API emulator with {DEMO_TASKS} tasks and load from it; "
        "needs no credentials",
    )
    parser.add_argument(
        "--log-level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        help="log level of dlt and of this tool (default: WARNING, dlt's from [runtime] "
        "log_level); DEBUG also prints tracebacks",
    )
    parser.add_argument(
        "--pipelines-dir",
        metavar="DIR",
        help="where dlt keeps pipeline state (default: dlt's, e.g. ~/.dlt/pipelines)",
    )
    parser.add_argument(
        "--wait-for-lock",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for a concurrent run of the same pipeline to finish (default 0)",
    )
    args = parser.parse_args(argv)
    if args.since and args.until and args.until <= args.since:
        parser.error("--until must be later than --since")
    if args.page_size is not None and not 1 <= args.page_size <= MAX_PAGE_SIZE:
        parser.error(f"--page-size must be between 1 and {MAX_PAGE_SIZE}")
    args.pipeline_name = args.pipeline_name or (DEMO_PIPELINE_NAME if args.demo else PIPELINE_NAME)
    return args


def _iso_time(value: str) -> datetime:
    try:
        moment = to_utc(value)
    except (TypeError, ValueError):
        moment = None
    if moment is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 time such as 2024-01-01 or 2024-01-01T00:00:00+08:00"
        )
    return moment


def configure_logging(level: str | None) -> None:
    """Python logging for this tool and the source; dlt's own level via RUNTIME__LOG_LEVEL."""
    if level:
        os.environ["RUNTIME__LOG_LEVEL"] = level
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("volcengine_live").setLevel(level or logging.WARNING)


@contextlib.contextmanager
def pipeline_lock(pipelines_dir: str, pipeline_name: str, wait: float) -> Iterator[str]:
    """Hold an exclusive lock on ``<pipelines_dir>/<pipeline_name>.lock`` for the run.

    The file sits beside dlt's working folder, not in it: dlt may wipe that folder. The
    lock is released by the OS when the process ends, however it ends.
    """
    os.makedirs(pipelines_dir, exist_ok=True)
    path = os.path.join(pipelines_dir, f"{pipeline_name}.lock")
    with open(path, "a+") as handle:
        if fcntl is not None:
            deadline = time.monotonic() + max(0.0, wait)
            while True:
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        raise LockBusyError(path) from None
                    time.sleep(0.2)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield path
        finally:
            if fcntl is not None:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def demo_endpoint() -> Iterator[dict[str, Any]]:
    """Start the bundled emulator with seeded tasks; yield the source arguments that point
    at it (endpoint and the emulator's own credentials)."""
    from volcengine_live_emulator import (
        DEFAULT_ACCESS_KEY_ID,
        DEFAULT_SECRET_ACCESS_KEY,
        Emulator,
    )

    # Generated times hang off the anchor: midnight UTC keeps them the same all day, so a
    # second demo run shows an incremental run; statuses follow the wall clock.
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    with Emulator(tasks=DEMO_TASKS, seed=DEMO_SEED, latency=0.0, now=today) as emulator:
        emulator.store.advance()
        credentials = VolcengineCredentials(
            access_key_id=DEFAULT_ACCESS_KEY_ID, secret_access_key=DEFAULT_SECRET_ACCESS_KEY
        )
        credentials.resolve()  # complete as given: nothing is looked up in secrets.toml
        print(f"Demo: API emulator with {DEMO_TASKS} tasks at {emulator.endpoint}")
        yield {"endpoint": emulator.endpoint, "credentials": credentials}


def build_pipeline(args: argparse.Namespace) -> dlt.Pipeline:
    """The dlt pipeline: DuckDB file ``<pipeline-name>.duckdb`` unless ``--destination``."""
    # An absolute path: dlt remembers a pipeline's destination, and would otherwise keep
    # writing to the file of the directory the pipeline first ran in.
    # DuckDB's memory limit and threads are the source's (see volcengine_live.destination)
    # unless dlt's configuration sets them.
    destination: Any = args.destination or duckdb_destination(
        os.path.abspath(f"{args.pipeline_name}.duckdb")
    )
    progress = args.progress or ("tqdm" if sys.stderr.isatty() else "log")
    return dlt.pipeline(
        pipeline_name=args.pipeline_name,
        destination=destination,
        dataset_name=args.dataset_name,
        pipelines_dir=args.pipelines_dir,
        progress=None if progress == "none" else progress,  # type: ignore[arg-type]
    )


def build_source(args: argparse.Namespace, overrides: dict[str, Any]) -> Any:
    """The source; only options given on the command line override the dlt configuration.

    ``--since`` alone backfills up to now, ``--until`` alone from the beginning: either way
    the run is a backfill (``end_start_time`` set) and the incremental state stays as it was.
    """
    kwargs: dict[str, Any] = dict(overrides)
    if args.page_size is not None:
        kwargs["page_size"] = args.page_size
    if args.since or args.until:
        until = args.until or datetime.now(timezone.utc)
        kwargs["end_start_time"] = until.isoformat()
        kwargs["initial_start_time"] = args.since.isoformat() if args.since else None
    return volcengine_live_source(**kwargs)


@dataclass
class RunResult:
    """What the summary needs from one run."""

    rows_loaded: dict[str, int]
    metrics: dict[str, Any]
    rows_before: int | None
    rows_after: int | None
    elapsed: float
    pending_loaded: int = 0


class DestinationError(Exception):
    """The destination failed before dlt's own steps started (reading the state back)."""


def count_rows(pipeline: dlt.Pipeline) -> int | None:
    """Rows in ``pull_record_tasks`` at the destination; 0 before the first load, ``None``
    when the destination cannot be asked."""
    if pipeline.default_schema_name is None or TABLE_NAME not in pipeline.default_schema.tables:
        return 0
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(TABLE_NAME)
            rows = client.execute_sql(f"SELECT COUNT(*) FROM {table}")
        return int(rows[0][0]) if rows else None
    except Exception as error:  # a count is a nicety: never fail the run over it
        logger.debug("Could not count %s: %s", TABLE_NAME, error)
        return None


def run_pipeline(
    pipeline: dlt.Pipeline, source: Any, full_refresh: bool, table_format: str | None = None
) -> RunResult:
    """Run extract, normalize and load; gather the numbers for the summary.

    The state is read back from the destination first (as ``run`` would), so that the
    row count before the run is right even when the local pipeline folder is new. A load
    left pending by a failed run is finished first: dlt's ``run`` would load it and stop
    without reading the API.
    """
    started = time.monotonic()
    try:
        pipeline.sync_destination()
    except Exception as error:
        raise DestinationError(error) from error
    pending = len(pipeline.list_extracted_load_packages()) + len(
        pipeline.list_normalized_load_packages()
    )
    if pending:
        logger.warning("Finishing %d load package(s) left by an earlier failed run", pending)
        pipeline.run()
    before = 0 if full_refresh else count_rows(pipeline)
    options: dict[str, Any] = {"table_format": table_format} if table_format else {}
    if full_refresh:
        options["refresh"] = "drop_sources"
    pipeline.run(source, **options)
    trace = pipeline.last_trace
    rows_loaded: dict[str, int] = {}
    if trace is not None and trace.last_normalize_info is not None:
        rows_loaded = {
            table: count
            for table, count in trace.last_normalize_info.row_counts.items()
            if not table.startswith("_dlt")
        }
    metrics: dict[str, Any] = {}
    if trace is not None and trace.last_extract_info is not None:
        for step_metrics in trace.last_extract_info.metrics.values():
            resource = step_metrics[0]["resource_metrics"].get(TABLE_NAME)
            if resource is not None:
                metrics = dict(resource.custom_metrics)
    return RunResult(
        rows_loaded=rows_loaded,
        metrics=metrics,
        rows_before=before,
        rows_after=count_rows(pipeline),
        elapsed=time.monotonic() - started,
        pending_loaded=pending,
    )


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


def summarise(pipeline: dlt.Pipeline, result: RunResult, backfill: bool) -> str:
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
    else:
        name = pipeline.destination.destination_name if pipeline.destination else "?"
        lines.append(f"Data: destination {name}, table {table}")
    return "\n".join(lines)


def find_cause(error: BaseException) -> BaseException:
    """The most telling exception in a dlt chain: ours if any, else the innermost."""
    seen: set[int] = set()
    queue: list[BaseException] = [error]
    innermost = error
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, VolcengineLiveError):
            return current
        innermost = current
        for link in (getattr(current, "exception", None), current.__cause__, current.__context__):
            if isinstance(link, BaseException):
                queue.append(link)
    return innermost


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


def report_error(error: BaseException, stream: TextIO) -> int:
    """Print one paragraph (what failed, why, what to do) and return the exit code."""
    cause = find_cause(error)
    step = error.step if isinstance(error, PipelineStepFailed) else None
    if isinstance(cause, ConfigurationError):
        code, text = EXIT_CONFIG, f"Configuration error: {cause}"
    elif isinstance(cause, ApiError):
        code, text = EXIT_API_REFUSED, f"The API refused the request. {cause}"
    elif isinstance(cause, VolcengineLiveError):  # RetriesExhaustedError, IncompleteScanError
        code, text = EXIT_API_UNAVAILABLE, f"Reading the task list failed. {cause}"
    elif isinstance(cause, ConfigFieldMissingException):
        code, text = EXIT_CONFIG, _missing_fields(cause)
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


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the exit code (see the module docstring)."""
    try:
        args = parse_args(argv)
    except SystemExit as exit_:  # --help, or argparse's own usage error (code 2)
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else EXIT_CONFIG
    previous_level = os.environ.get("RUNTIME__LOG_LEVEL")
    configure_logging(args.log_level)
    debug = args.log_level == "DEBUG"
    pipelines_dir = args.pipelines_dir or get_dlt_pipelines_dir()
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(
                pipeline_lock(pipelines_dir, args.pipeline_name, args.wait_for_lock)
            )
            overrides = stack.enter_context(demo_endpoint()) if args.demo else {}
            pipeline = build_pipeline(args)
            source = build_source(args, overrides)
            result = run_pipeline(pipeline, source, args.full_refresh, args.table_format)
            print(summarise(pipeline, result, backfill=bool(args.since or args.until)))
        return EXIT_OK
    except LockBusyError as busy:
        print(
            f"volcengine-live: another run of pipeline {args.pipeline_name!r} is in progress "
            f"(lock {busy}). Not starting a second one; try again when it has finished, or "
            f"pass --wait-for-lock SECONDS. (exit code {EXIT_LOCKED})",
            file=sys.stderr,
        )
        return EXIT_LOCKED
    except KeyboardInterrupt:
        print(
            "volcengine-live: interrupted. Run again: an unfinished load is completed first "
            f"and the state advances only with a completed scan. (exit code {EXIT_INTERRUPTED})",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except Exception as error:
        if debug:
            traceback.print_exception(error, file=sys.stderr)
        return report_error(error, sys.stderr)
    finally:
        if args.log_level:
            if previous_level is None:
                os.environ.pop("RUNTIME__LOG_LEVEL", None)
            else:
                os.environ["RUNTIME__LOG_LEVEL"] = previous_level


if __name__ == "__main__":
    sys.exit(main())
