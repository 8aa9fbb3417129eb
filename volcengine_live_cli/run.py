"""Running one load: the lock that keeps a second run of the same pipeline out, the
bundled emulator for ``--demo``, the dlt pipeline and source built from the command line,
and the run itself with the numbers the summary needs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.common.destination.exceptions import InvalidDestinationReference, UnknownDestinationModule
from dlt.common.exceptions import DltException
from dlt.common.pipeline import get_dlt_pipelines_dir

from volcengine_live import (
    ConfigurationError,
    VolcengineCredentials,
    account_source,
    volcengine_live_source,
)
from volcengine_live.settings import FILES_TABLE_NAME, TABLE_NAME

from .duckdb_settings import duckdb_destination
from .metrics import last_run_metrics

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


class LockBusyError(Exception):
    """Another run of the same pipeline holds the lock."""


class DamagedPipelineFolderError(Exception):
    """A file in the pipeline's working folder (state, schema) cannot be read back."""

    def __init__(self, folder: str, pipeline_name: str, cause: BaseException) -> None:
        self.folder = folder
        self.pipeline_name = pipeline_name
        super().__init__(f"{type(cause).__name__}: {cause}")


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


def build_pipeline(
    args: argparse.Namespace, name: str | None = None, database: str | None = None
) -> dlt.Pipeline:
    """The dlt pipeline ``name`` (default ``--pipeline-name``): DuckDB file
    ``<database>.duckdb`` (default: the pipeline's name) unless ``--destination``; accounts
    name their own pipelines and share one file."""
    name = name or args.pipeline_name
    # An absolute path: dlt remembers a pipeline's destination, and would otherwise keep
    # writing to the file of the directory the pipeline first ran in. DuckDB runs at its own
    # defaults unless dlt's configuration sets global_config (duckdb_settings).
    destination: Any = (
        _named_destination(args.destination)
        if args.destination
        else duckdb_destination(os.path.abspath(f"{database or name}.duckdb"))
    )
    progress = args.progress or ("tqdm" if sys.stderr.isatty() else "log")
    try:
        return dlt.pipeline(
            pipeline_name=name,
            destination=destination,
            dataset_name=args.dataset_name,
            pipelines_dir=args.pipelines_dir,
            progress=None if progress == "none" else progress,  # type: ignore[arg-type]
        )
    except (ValueError, DltException) as error:
        # dlt reads the state and the schema back from the working folder here; a file cut
        # short (disk full, a copy of a live folder) fails every run with a bare JSON error
        folder = os.path.abspath(os.path.join(args.pipelines_dir or get_dlt_pipelines_dir(), name))
        decoding = (json.JSONDecodeError, UnicodeDecodeError)
        if not os.path.isdir(folder) or not any(
            isinstance(link, decoding) for link in exception_chain(error)
        ):
            raise
        raise DamagedPipelineFolderError(folder, name, error) from error


def exception_chain(error: BaseException) -> list[BaseException]:
    """``error`` and every exception it wraps (dlt's ``exception``, causes, contexts),
    breadth first: the last is the innermost."""
    seen: set[int] = set()
    found: list[BaseException] = []
    queue: list[BaseException] = [error]
    while queue:
        current = queue.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        found.append(current)
        for link in (getattr(current, "exception", None), current.__cause__, current.__context__):
            if isinstance(link, BaseException):
                queue.append(link)
    return found


def _named_destination(reference: str) -> Any:
    """``--destination``: a dlt destination type or a named destination; an unknown name
    fails here, naming the option, rather than as dlt's import trace from deep in the run."""
    try:
        return Destination.from_reference(reference)
    except (UnknownDestinationModule, InvalidDestinationReference):
        raise ConfigurationError(
            f"--destination {reference!r} is not a dlt destination. Give a destination type "
            "(duckdb, postgres, filesystem, bigquery, snowflake, ...: "
            "https://dlthub.com/docs/dlt-ecosystem/destinations/), or name one configured "
            f'as [destination.{reference}] with destination_type = "..." in '
            f".dlt/config.toml (or DESTINATION__{reference.upper()}__DESTINATION_TYPE)."
        ) from None


def build_source(args: argparse.Namespace, overrides: dict[str, Any]) -> Any:
    """The source (an account's, with ``account`` in ``overrides``); only options given on
    the command line override the dlt configuration.

    ``--since`` alone backfills up to now, ``--until`` alone from the beginning: either way
    the run is a backfill (``end_start_time`` set) and the incremental state stays as it was.
    """
    kwargs: dict[str, Any] = dict(overrides)
    if args.page_size is not None:
        kwargs["page_size"] = args.page_size
    if args.record_files:  # only when given: record_files = true in the config stays on
        kwargs["record_files"] = True
    if args.since or args.until:
        until = args.until or datetime.now(timezone.utc)
        kwargs["end_start_time"] = until.isoformat()
        kwargs["initial_start_time"] = args.since.isoformat() if args.since else None
    account = kwargs.pop("account", None)
    if account is not None:
        return account_source(account, **kwargs)
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
    file_metrics: dict[str, Any] | None = None
    """``record_files``' metrics; None when the run did not read the file history."""


class DestinationError(Exception):
    """The destination failed before dlt's own steps started (reading the state back)."""


def count_rows(pipeline: dlt.Pipeline, account: str | None = None) -> int | None:
    """Rows in ``pull_record_tasks`` at the destination (``account``'s only, with one); 0
    before the first load, ``None`` when the destination cannot be asked."""
    if pipeline.default_schema_name is None or TABLE_NAME not in pipeline.default_schema.tables:
        return 0
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(TABLE_NAME)
            where = f" WHERE account = '{account}'" if account else ""  # a checked label
            rows = client.execute_sql(f"SELECT COUNT(*) FROM {table}{where}")
        return int(rows[0][0]) if rows else None
    except Exception as error:  # a count is a nicety: never fail the run over it
        logger.debug("Could not count %s: %s", TABLE_NAME, error)
        return None


def table_columns(pipeline: dlt.Pipeline) -> set[str] | None:
    """The columns of ``pull_record_tasks`` at the destination; ``None`` when it has no such
    table or cannot be asked (a filesystem destination)."""
    dataset = pipeline.dataset_name.replace("'", "")
    sql = (
        "SELECT column_name FROM information_schema.columns "
        f"WHERE table_schema = '{dataset}' AND table_name = '{TABLE_NAME}'"
    )
    try:
        with pipeline.sql_client() as client:
            rows = client.execute_sql(sql)
    except Exception as error:  # a check, not a step: never fail the run over it
        logger.debug("Could not read the columns of %s: %s", TABLE_NAME, error)
        return None
    return {str(row[0]) for row in rows} if rows else None


def check_table_fits(pipeline: dlt.Pipeline, account: str | None) -> None:
    """Refuse to merge labelled rows into a table loaded without accounts, and the other way
    round: the two keys (``task_id``; ``account, task_id``) would overwrite each other."""
    columns = table_columns(pipeline)
    if columns is None or ("account" in columns) == (account is not None):
        return
    table = f"{pipeline.dataset_name}.{TABLE_NAME}"
    if account is None:
        raise ConfigurationError(
            f"{table} holds several accounts (it has an account column): load it with "
            "--account NAME or --all-accounts, or use another --dataset-name."
        )
    raise ConfigurationError(
        f"{table} was loaded without accounts (it has no account column, its key is task_id "
        "alone): load the accounts into a new dataset (--dataset-name) or drop that table "
        "first; see docs/accounts.md, moving from one account to many."
    )


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
    # a single account may carry a label of its own (`account` in [sources.volcengine_live])
    check_table_fits(pipeline, dlt.config.get("sources.volcengine_live.account") or None)
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
    return RunResult(
        rows_loaded=rows_loaded,
        metrics=last_run_metrics(pipeline) or {},
        rows_before=before,
        rows_after=count_rows(pipeline),
        elapsed=time.monotonic() - started,
        pending_loaded=pending,
        file_metrics=last_run_metrics(pipeline, FILES_TABLE_NAME),
    )
