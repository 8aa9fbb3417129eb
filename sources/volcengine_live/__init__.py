"""dlt source for Volcengine Live pull-recording tasks (``ListPullRecordTask``) and, when
selected, the files their recordings left (``DescribeRecordTaskFileHistory``).

>>> import dlt
>>> from volcengine_live import volcengine_live_source
>>> pipeline = dlt.pipeline("volcengine_live", destination="duckdb")
>>> pipeline.run(volcengine_live_source())
>>> pipeline.run(volcengine_live_source().with_resources("pull_record_tasks", "record_files"))

Every run reads the account's whole task list (the API has no time filter) and writes the
tasks that are new, recent or still changing; see ``incremental.py`` and the README beside
this file for the exact rules. ``record_files`` walks time windows instead
(``record_files.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

import dlt
import pyarrow as pa
from dlt.sources import DltResource

from . import accounts, settings
from .accounts import account_source, configured_accounts
from .client import LiveApiClient
from .credentials import MISSING_CREDENTIALS, VolcengineCredentials
from .deletions import DeletionFinder
from .errors import (
    ApiError,
    ConfigurationError,
    IncompleteScanError,
    RequestDeadlineError,
    ResponseTooLargeError,
    RetriesExhaustedError,
    RunTimeoutError,
    VolcengineLiveError,
)
from .incremental import StateObserver, WritePlan
from .load_format import quote_safe_hints
from .reader import Batch, ListPass, ListReader
from .record_files import FILE_COLUMN_HINTS, FileHistory, file_row, matches, windows
from .state import IncrementalState, to_utc
from .task_filter import TaskFilter
from .writer import ACCOUNT_COLUMN, ACCOUNT_COLUMN_HINT, RunWriter, spill_directory

__all__ = [
    "MISSING_CREDENTIALS",
    "ApiError",
    "ConfigurationError",
    "IncompleteScanError",
    "RequestDeadlineError",
    "ResponseTooLargeError",
    "RetriesExhaustedError",
    "RunTimeoutError",
    "VolcengineCredentials",
    "VolcengineLiveError",
    "account_source",
    "configured_accounts",
    "pull_record_tasks",
    "record_files",
    "volcengine_live_source",
]

logger = logging.getLogger(__name__)


# The annotations are read by dlt at runtime: typing.Optional, not `X | None`, for Python 3.10.
@dlt.source(name="volcengine_live", max_table_nesting=0)
def volcengine_live_source(
    credentials: VolcengineCredentials = dlt.secrets.value,
    endpoint: str = settings.DEFAULT_ENDPOINT,
    region: str = settings.DEFAULT_REGION,
    page_size: int = settings.DEFAULT_PAGE_SIZE,
    lookback_hours: float = settings.DEFAULT_LOOKBACK_HOURS,
    initial_start_time: Optional[datetime] = None,  # noqa: UP045
    end_start_time: Optional[datetime] = None,  # noqa: UP045
    requests_per_second: Optional[float] = settings.DEFAULT_REQUESTS_PER_SECOND,  # noqa: UP045
    max_concurrency: int = settings.DEFAULT_MAX_CONCURRENCY,
    request_timeout: float = settings.DEFAULT_REQUEST_TIMEOUT,
    max_attempts: int = settings.DEFAULT_MAX_ATTEMPTS,
    backoff_seconds: float = settings.DEFAULT_BACKOFF_SECONDS,
    max_rescans: int = settings.DEFAULT_MAX_RESCANS,
    deleted_tasks: str = settings.DEFAULT_DELETED_TASKS,
    run_timeout: Optional[float] = settings.DEFAULT_RUN_TIMEOUT,  # noqa: UP045
    max_response_bytes: int = settings.DEFAULT_MAX_RESPONSE_BYTES,
    account: Optional[str] = None,  # noqa: UP045
    vhost: Optional[str] = None,  # noqa: UP045
    domain: Optional[str] = None,  # noqa: UP045
    app: Optional[str] = None,  # noqa: UP045
    stream: Optional[str] = None,  # noqa: UP045
    record_files: bool = False,
    record_files_type: str = settings.DEFAULT_FILES_TYPE,
    record_files_lag_hours: float = settings.DEFAULT_FILES_LAG_HOURS,
    record_files_first_window_hours: float = settings.DEFAULT_FILES_FIRST_WINDOW_HOURS,
    record_files_page_size: int = settings.DEFAULT_FILES_PAGE_SIZE,
    record_files_requests_per_second: Optional[float] = (  # noqa: UP045
        settings.DEFAULT_FILES_REQUESTS_PER_SECOND
    ),
) -> list[DltResource]:
    """Every live pull-recording task of a Volcengine account, as table ``pull_record_tasks``,
    and (selected with ``record_files`` or ``with_resources``) the files their recordings
    left, as table ``record_files``.

    ``credentials`` is the access key pair (and STS session token), see ``credentials.py``;
    every other argument is a setting, with its meaning and range in the settings table of
    the README beside this file. ``account``, a short label (``cn``, ``byteplus``) for one of
    several accounts loading into one dataset, adds an ``account`` column to both tables,
    merged on ``(account, task_id)``; an account configured under
    ``[sources.volcengine_live.accounts.<account>]`` is built with :func:`account_source`,
    which reads its own credentials and settings (see ``accounts.py``).

    Raises:
        ConfigurationError: credentials missing, a setting out of range, or a configured
            account given other credentials than its own; the message names the setting
            and where to fix it.
    """
    label = None if account is None else accounts.check_name(account)
    if credentials is None or not credentials.access_key_id or not credentials.secret_access_key:
        raise ConfigurationError(MISSING_CREDENTIALS)
    if label is not None:
        accounts.check_own_credentials(label, credentials.access_key_id)
    checked = settings.SourceSettings.checked(
        endpoint=endpoint,
        region=region,
        page_size=page_size,
        lookback_hours=lookback_hours,
        initial_start_time=initial_start_time,
        end_start_time=end_start_time,
        requests_per_second=requests_per_second,
        max_concurrency=max_concurrency,
        request_timeout=request_timeout,
        max_attempts=max_attempts,
        backoff_seconds=backoff_seconds,
        max_rescans=max_rescans,
        deleted_tasks=deleted_tasks,
        run_timeout=run_timeout,
        max_response_bytes=max_response_bytes,
        task_filters={"vhost": vhost, "domain": domain, "app": app, "stream": stream},
        record_files=record_files,
        record_files_type=record_files_type,
        record_files_lag_hours=record_files_lag_hours,
        record_files_first_window_hours=record_files_first_window_hours,
        record_files_page_size=record_files_page_size,
        record_files_requests_per_second=record_files_requests_per_second,
    )
    task_filter = TaskFilter(checked.task_filters)
    client = LiveApiClient(
        credentials.access_key_id,
        credentials.secret_access_key,
        credentials.session_token,
        checked.client,
        body_fields=task_filter.body_fields(),
    )
    tasks = pull_record_tasks(
        client,
        page_size=checked.page_size,
        lookback=timedelta(hours=checked.lookback_hours),
        since=checked.initial_start_time,
        until=checked.end_start_time,
        max_rescans=checked.max_rescans,
        deleted_tasks=checked.deleted_tasks,
        account=label,
        task_filter=task_filter,
    )
    return [tasks, _record_files_resource(credentials, checked, label)]


def _record_files_resource(
    credentials: VolcengineCredentials, checked: settings.SourceSettings, label: str | None
) -> DltResource:
    """``record_files`` with a client of its own (its own 10/s limit) and dlt's incremental
    on ``start_time``; selected only when ``record_files`` is set (or by ``with_resources``)."""
    files = checked.files
    client = LiveApiClient(
        credentials.access_key_id,
        credentials.secret_access_key,
        credentials.session_token,
        replace(checked.client, requests_per_second=files.requests_per_second),
        action=settings.FILES_ACTION,
        account_limit=settings.FILES_ACCOUNT_REQUESTS_PER_SECOND,
    )
    since, until = checked.initial_start_time, checked.end_start_time
    first_window = timedelta(hours=files.first_window_hours)
    if until is not None and since is None:  # a backfill needs a start: the first window's
        since = until - first_window
    history = FileHistory(
        client, files.page_size, files.file_type, checked.task_filters, checked.max_rescans
    )
    resource = record_files(
        history,
        first_window=first_window,
        until=until,
        account=label,
        updated=dlt.sources.incremental(
            "start_time",
            initial_value=since,
            end_value=until,
            lag=files.lag_hours * 3600,
            on_cursor_value_missing="include",
        ),
    )
    if label is not None:
        resource.apply_hints(
            primary_key=[ACCOUNT_COLUMN, "file_id"],
            columns={ACCOUNT_COLUMN: ACCOUNT_COLUMN_HINT},
        )
    resource.selected = files.enabled
    return resource


@dlt.resource(name=settings.TABLE_NAME, write_disposition="merge")
def pull_record_tasks(
    client: LiveApiClient,
    page_size: int = settings.DEFAULT_PAGE_SIZE,
    lookback: timedelta = timedelta(hours=settings.DEFAULT_LOOKBACK_HOURS),
    since: datetime | None = None,
    until: datetime | None = None,
    max_rescans: int = settings.DEFAULT_MAX_RESCANS,
    deleted_tasks: str = settings.DEFAULT_DELETED_TASKS,
    account: str | None = None,
    task_filter: TaskFilter | None = None,
) -> Iterator[Any]:
    """Tasks as Arrow tables (merged on ``task_id``); records without a TaskId go to
    ``pull_record_task_rejects`` with the reason. The rules are in the README beside this
    file: read the whole list until a pass is complete, write each task once per run.
    With ``account``, both tables get an ``account`` column and a key with it. With
    ``task_filter``, only the tasks it keeps are written, or looked for as deleted."""
    state = dlt.current.resource_state()
    accounts.claim_state(state, account)
    load_hints = quote_safe_hints()
    if load_hints is not None:
        logger.warning(
            "The pipeline's folder %s has a ' in its path, which dlt's DuckDB loader cannot "
            "read Parquet files from: loading as SQL inserts instead (slower). Another "
            "--pipelines-dir (or DLT_DATA_DIR) without a quote keeps Parquet.",
            dlt.current.pipeline().working_dir,
        )
        yield dlt.mark.with_hints([], load_hints)  # merged into this resource's tables
    plan = WritePlan(
        IncrementalState.load(state), lookback, datetime.now(timezone.utc), since, until
    )
    observer = StateObserver(plan)
    reader = ListReader(client, page_size, max_rescans)
    writer = RunWriter(deleted_tasks, spill_directory(), account)
    finder = DeletionFinder(plan, account, task_filter)
    late_days: set[int] = set()
    missing = deleted = 0
    started = time.monotonic()
    try:
        main_passes: list[ListPass] = []
        for list_pass in reader.passes():
            main_passes.append(list_pass)
            observer.begin_pass()
            for batch in _kept(list_pass, task_filter):
                observer.observe(batch.tasks)
                yield from writer.write(plan.select(batch.tasks), batch.rejects, batch.earlier)
                yield from writer.refresh(batch.repeated)
        yield from writer.write_held()
        late_days = observer.changed_days()
        missing = finder.find_candidates(main_passes, late_days)
        extra = None
        if late_days or missing:
            extra = reader.extra_pass()
            yield from _extra_pass(extra, plan, observer, late_days, writer, task_filter)
        gone = finder.confirmed(extra)
        deleted = gone.num_rows
        yield from writer.write_deleted(gone)
        # Reached only when the scan is complete: the state advances with the load package.
        every_pass = main_passes + ([extra] if extra is not None else [])
        finder.next_state(observer.next_state(), late_days, every_pass).save(state)
        accounts.mark_state(state, account)
    finally:
        dlt.current.resource_metrics().update(
            **reader.counts(),
            rows_written=writer.rows_written,
            late_days=len(late_days),
            deletion_candidates=missing,
            deleted=deleted,
            elapsed_seconds=round(time.monotonic() - started, 3),
            **client.stats.as_dict(),
        )
        client.close()
        writer.close()
        # Arrow's allocator keeps what the run freed (30-40 MB at a million tasks) for
        # reuse; the load that follows does not use it, so it goes back to the system.
        pa.default_memory_pool().release_unused()


def _extra_pass(
    extra: ListPass,
    plan: WritePlan,
    observer: StateObserver,
    late_days: set[int],
    writer: RunWriter,
    task_filter: TaskFilter | None = None,
) -> Iterator[Any]:
    """One more pass after the main ones: it writes the late days (days below the window
    whose fingerprint changed) and confirms the tasks that seem deleted (``deletions.py``)."""
    if late_days:
        logger.warning(
            "%d day(s) before the lookback window changed since the last run (a task "
            "created late with an old StartTime, or changed or deleted); re-reading them",
            len(late_days),
        )
    select_late = plan.late_day_selection(late_days, observer.written_below_window)
    for batch in _kept(extra, task_filter):
        yield from writer.write(select_late(batch.tasks), batch.rejects)


def _kept(batches: ListPass, task_filter: TaskFilter | None) -> Iterator[Batch]:
    """A pass's batches, less the tasks outside the filter (a server that ignores the
    filters sends them all); the pass itself, and its checks of completeness, see every
    row the API sent."""
    for batch in batches:
        yield batch if task_filter is None else task_filter.batch(batch)


@dlt.resource(
    name=settings.FILES_TABLE_NAME,
    write_disposition="merge",
    primary_key="file_id",
    columns=FILE_COLUMN_HINTS,
    selected=False,
)
def record_files(
    history: FileHistory,
    first_window: timedelta = timedelta(hours=settings.DEFAULT_FILES_FIRST_WINDOW_HOURS),
    until: datetime | None = None,
    account: str | None = None,
    # dlt's idiom: the incremental as the argument's default (the source passes its own)
    updated: dlt.sources.incremental[datetime] = dlt.sources.incremental(  # noqa: B008
        "start_time", on_cursor_value_missing="include"
    ),
) -> Iterator[Any]:
    """The files finished recordings left, merged on ``file_id``: windows of at most 7 days
    from dlt's incremental start (the latest file start loaded, less the lag) to now (or
    ``until``), each read whole; every file written once a run. See ``record_files.py``."""
    state = dlt.current.resource_state()
    accounts.claim_state(state, account)
    now = datetime.now(timezone.utc)
    end = until or now
    start = updated.start_value
    if start is None:  # nothing loaded yet: from the first run's first window, kept
        start = to_utc(state.get(FIRST_WINDOW_START)) or end - first_window
        state[FIRST_WINDOW_START] = start.isoformat()
    written: set[str] = set()
    walked = listed = 0
    started = time.monotonic()
    # Taken now: dlt may close this generator (after a failure) outside its extract context.
    metrics = dlt.current.resource_metrics()
    try:
        for date_from, date_to in windows(start, end):
            walked += 1
            for records in history.window(date_from, date_to):
                listed += len(records)
                seen_at = datetime.now(timezone.utc)
                rows = [file_row(record, history.file_type, seen_at) for record in records]
                rows = [
                    row
                    for row in rows
                    if matches(row, history.filters)
                    and row["file_id"] not in written
                    and _in_range(row, start, until)
                ]
                written.update(row["file_id"] for row in rows)
                if account is not None:
                    rows = [{ACCOUNT_COLUMN: account, **row} for row in rows]
                if rows:
                    yield rows
        accounts.mark_state(state, account)
    finally:
        metrics.update(
            windows=walked,
            pages=history.pages,
            windows_reread=history.rereads,
            files_listed=listed,
            rows_written=len(written),
            elapsed_seconds=round(time.monotonic() - started, 3),
            **history.client.stats.as_dict(),
        )
        history.client.close()


def _in_range(row: dict[str, Any], start: datetime, until: datetime | None) -> bool:
    """A file that starts in ``[start, until)``, or whose start is unknown: a window also
    lists files that started before it, if the API selects by overlap, and dlt's
    incremental would drop them uncounted."""
    moment = row.get("start_time")
    return moment is None or (moment >= start and (until is None or moment < until))


FIRST_WINDOW_START = "first_window_start"
"""Key in ``record_files``' state: where the first run began, for runs that find no file."""
