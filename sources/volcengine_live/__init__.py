"""dlt source for Volcengine Live pull-recording tasks (``ListPullRecordTask``).

>>> import dlt
>>> from volcengine_live import volcengine_live_source
>>> pipeline = dlt.pipeline("volcengine_live", destination="duckdb")
>>> pipeline.run(volcengine_live_source())

Every run reads the account's whole task list (the API has no filter) and writes the
tasks that are new, recent or still changing; see ``incremental.py`` and the README beside
this file for the exact rules.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
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
from .reader import ListPass, ListReader
from .state import IncrementalState
from .writer import RunWriter, spill_directory

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
) -> DltResource:
    """Every live pull-recording task of a Volcengine account, as table ``pull_record_tasks``.

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
    )
    client = LiveApiClient(
        credentials.access_key_id,
        credentials.secret_access_key,
        credentials.session_token,
        checked.client,
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
    )


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
) -> Iterator[Any]:
    """Tasks as Arrow tables (merged on ``task_id``); records without a TaskId go to
    ``pull_record_task_rejects`` with the reason. The rules are in the README beside this
    file: read the whole list until a pass is complete, write each task once per run.
    With ``account``, both tables get an ``account`` column and a key with it."""
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
    finder = DeletionFinder(plan, account)
    late_days: set[int] = set()
    missing = deleted = 0
    started = time.monotonic()
    try:
        main_passes: list[ListPass] = []
        for list_pass in reader.passes():
            main_passes.append(list_pass)
            observer.begin_pass()
            for batch in list_pass:
                observer.observe(batch.tasks)
                yield from writer.write(plan.select(batch.tasks), batch.rejects, batch.earlier)
                yield from writer.refresh(batch.repeated)
        yield from writer.write_held()
        late_days = observer.changed_days()
        missing = finder.find_candidates(main_passes, late_days)
        extra = None
        if late_days or missing:
            extra = reader.extra_pass()
            yield from _extra_pass(extra, plan, observer, late_days, writer)
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
    for batch in extra:
        yield from writer.write(select_late(batch.tasks), batch.rejects)
