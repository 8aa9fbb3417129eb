"""dlt source for Volcengine Live pull-recording tasks (``ListPullRecordTask``) and, when
selected, the files their recordings left (``DescribeRecordTaskFileHistory``).

>>> import dlt
>>> from volcengine_live import volcengine_live_source
>>> pipeline = dlt.pipeline("volcengine_live", destination="duckdb")
>>> pipeline.run(volcengine_live_source())
>>> pipeline.run(volcengine_live_source().with_resources("pull_record_tasks", "record_files"))

Every run reads the account's whole task list (the API has no time filter) and writes the
tasks that are new, recent or still changing: the run's phases are in ``run.py``, the rules
in ``incremental.py`` and the README beside this file. ``record_files`` walks time windows
instead (``record_files.py``). This module only wires settings to the two resources.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

import dlt
from dlt.sources import DltResource, DltSource

from . import accounts, settings
from .accounts import configured_accounts
from .client import LiveApiClient
from .credentials import MISSING_CREDENTIALS, VolcengineCredentials
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
from .incremental import WritePlan
from .load_format import quote_safe_hints
from .reader import ListReader
from .record_files import FILE_COLUMN_HINTS, FileHistory, first_start, windows
from .run import TaskListRun
from .state import IncrementalState
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
    ``[sources.volcengine_live.accounts.<account>]`` is built with :func:`account_source`.

    Raises:
        ConfigurationError: credentials missing, a setting out of range, or a configured
            account given other credentials than its own; the message names the setting
            and where to fix it.
    """
    # Taken first, so that it holds the arguments alone: every setting by its name.
    configured = dict(locals())
    label = _checked_label(credentials, account)
    checked = settings.SourceSettings.checked(**_setting_values(configured))
    return [
        _tasks_resource(credentials, checked, label),
        _record_files_resource(credentials, checked, label),
    ]


def account_source(account: str, **arguments: Any) -> DltSource:
    """The source of one configured account: its own credentials, its section's settings
    (``[sources.volcengine_live.accounts.<account>]``), ``arguments`` winning over both; a
    setting the section lacks comes from ``[sources.volcengine_live]`` as usual.

    Raises:
        ConfigurationError: ``account`` is not a valid name or not configured, the account has
            no credentials of its own, or one of its settings is bad (the message names the
            account's section).
    """
    values = accounts.account_arguments(account, arguments)
    try:
        source: DltSource = volcengine_live_source(**values)
    except ConfigurationError as error:  # it names [sources.volcengine_live] only
        label = values["account"]
        raise ConfigurationError(
            f"{error} For account {label!r} alone: {accounts.account_section(label)}."
        ) from None
    return source


def _checked_label(credentials: VolcengineCredentials | None, account: str | None) -> str | None:
    """The account's label, checked, once the credentials are there (and its own)."""
    label = None if account is None else accounts.check_name(account)
    if credentials is None or not credentials.access_key_id or not credentials.secret_access_key:
        raise ConfigurationError(MISSING_CREDENTIALS)
    if label is not None:
        accounts.check_own_credentials(label, credentials.access_key_id)
    return label


def _setting_values(arguments: dict[str, Any]) -> dict[str, Any]:
    """The source's arguments as :meth:`settings.SourceSettings.checked` takes them: the
    settings by name, the four task filters together."""
    values = {name: arguments[name] for name in settings.SETTING_NAMES}
    values["task_filters"] = {name: values.pop(name) for name in settings.TASK_FILTERS}
    return values


def _tasks_resource(
    credentials: VolcengineCredentials, checked: settings.SourceSettings, label: str | None
) -> DltResource:
    """``pull_record_tasks`` with a client that sends the task filters."""
    task_filter = TaskFilter(checked.task_filters)
    client = LiveApiClient(
        credentials.access_key_id,
        credentials.secret_access_key,
        credentials.session_token,
        checked.client,
        body_fields=task_filter.body_fields(),
    )
    return pull_record_tasks(
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


def _record_files_resource(
    credentials: VolcengineCredentials, checked: settings.SourceSettings, label: str | None
) -> DltResource:
    """``record_files`` with a client of its own (its own 10/s limit) and dlt's incremental
    on ``start_time``; selected only when ``record_files`` is set (or by ``with_resources``)."""
    files = checked.files
    since, until = checked.initial_start_time, checked.end_start_time
    first_window = timedelta(hours=files.first_window_hours)
    if until is not None and since is None:  # a backfill needs a start: the first window's
        since = until - first_window
    resource = record_files(
        FileHistory.configured(credentials, checked),
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
    yield from _quote_safe_load()
    now = datetime.now(timezone.utc)
    run = TaskListRun(
        client,
        WritePlan(IncrementalState.load(state), lookback, now, since, until),
        ListReader(client, page_size, max_rescans),
        RunWriter(deleted_tasks, spill_directory(), account),
        task_filter,
    )
    try:
        yield from run.read()
        yield from run.reconcile()
        # Reached only when the scan is complete: the state advances with the load package.
        run.save(state)
        accounts.mark_state(state, account)
    finally:
        dlt.current.resource_metrics().update(run.metrics())
        run.close()


def _quote_safe_load() -> Iterator[Any]:
    """The hints that keep a DuckDB load working from a folder with a ``'`` in its path
    (``load_format.py``), merged into this resource's tables; nothing elsewhere."""
    load_hints = quote_safe_hints()
    if load_hints is not None:
        logger.warning(
            "The pipeline's folder %s has a ' in its path, which dlt's DuckDB loader cannot "
            "read Parquet files from: loading as SQL inserts instead (slower). Another "
            "--pipelines-dir (or DLT_DATA_DIR) without a quote keeps Parquet.",
            dlt.current.pipeline().working_dir,
        )
        yield dlt.mark.with_hints([], load_hints)


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
    end = until or datetime.now(timezone.utc)
    start = first_start(state, updated.start_value, end - first_window)
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
                rows = history.rows(records, written, start, until, account)
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
