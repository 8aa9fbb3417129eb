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
from array import array
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
from dlt.sources import DltResource

from . import settings
from .client import ClientConfig, LiveApiClient, ScanReport, distinct_count
from .credentials import VolcengineCredentials
from .errors import (
    ApiError,
    ConfigurationError,
    IncompleteScanError,
    RetriesExhaustedError,
    VolcengineLiveError,
)
from .incremental import CursorState, WritePlan, to_utc
from .open_tasks import OpenTaskBuffer
from .records import REJECT_COLUMNS, tasks_to_arrow

__all__ = [
    "ApiError",
    "ConfigurationError",
    "IncompleteScanError",
    "RetriesExhaustedError",
    "VolcengineCredentials",
    "VolcengineLiveError",
    "pull_record_tasks",
    "volcengine_live_source",
]

logger = logging.getLogger(__name__)


@dlt.source(name="volcengine_live", max_table_nesting=0)
def volcengine_live_source(
    credentials: VolcengineCredentials = dlt.secrets.value,
    endpoint: str = settings.DEFAULT_ENDPOINT,
    region: str = settings.DEFAULT_REGION,
    page_size: int = settings.DEFAULT_PAGE_SIZE,
    lookback_hours: float = settings.DEFAULT_LOOKBACK_HOURS,
    initial_start_time: str | None = None,
    end_start_time: str | None = None,
    requests_per_second: float | None = settings.DEFAULT_REQUESTS_PER_SECOND,
    max_concurrency: int = settings.DEFAULT_MAX_CONCURRENCY,
    request_timeout: float = settings.DEFAULT_REQUEST_TIMEOUT,
    max_attempts: int = settings.DEFAULT_MAX_ATTEMPTS,
    backoff_seconds: float = settings.DEFAULT_BACKOFF_SECONDS,
    max_rescans: int = settings.DEFAULT_MAX_RESCANS,
) -> DltResource:
    """Every live pull-recording task of a Volcengine account, as table ``pull_record_tasks``.

    Args:
        credentials: access key pair (and STS session token); see ``credentials.py``.
        endpoint: API base URL; https unless on this machine.
        region: signing region of the account (``cn-north-1``; BytePlus uses its own).
        page_size: rows per request, 1 to 500.
        lookback_hours: settled tasks starting within this many hours before the cursor are
            written again on each run.
        initial_start_time: ISO 8601; tasks starting earlier are never loaded.
        end_start_time: ISO 8601, exclusive. Set it (with ``initial_start_time``) to backfill
            a StartTime range without touching the incremental state.
        requests_per_second: client-side cap, below the account's 50/s; ``None``: no cap.
        max_concurrency: pages in flight at once.
        request_timeout: seconds to wait for one response.
        max_attempts: tries per page for transient faults.
        backoff_seconds: first wait before a retry; doubles per attempt (jittered), at most
            30 s, or what the server's ``Retry-After`` asks.
        max_rescans: extra full passes when the list changes during a pass.
    """
    if credentials is None or not credentials.access_key_id or not credentials.secret_access_key:
        raise ConfigurationError(MISSING_CREDENTIALS)
    if not 1 <= int(page_size) <= settings.MAX_PAGE_SIZE:
        raise ConfigurationError(
            f"page_size {page_size} is out of range: the API takes 1 to "
            f"{settings.MAX_PAGE_SIZE}. Fix [sources.volcengine_live] page_size."
        )
    if lookback_hours < 0:
        raise ConfigurationError(
            "lookback_hours must not be negative. Fix [sources.volcengine_live] lookback_hours."
        )
    since = _parse_setting("initial_start_time", initial_start_time)
    until = _parse_setting("end_start_time", end_start_time)
    if since and until and until <= since:
        raise ConfigurationError(
            f"end_start_time {until.isoformat()} is not after initial_start_time "
            f"{since.isoformat()}: the backfill range is empty."
        )
    client = LiveApiClient(
        credentials.access_key_id,
        credentials.secret_access_key,
        credentials.session_token,
        ClientConfig(
            endpoint=endpoint,
            region=region,
            service=settings.SERVICE,
            request_timeout=float(request_timeout),
            max_attempts=max(1, int(max_attempts)),
            backoff_seconds=max(0.0, float(backoff_seconds)),
            requests_per_second=float(requests_per_second) if requests_per_second else None,
            max_concurrency=max(1, int(max_concurrency)),
        ),
    )
    return pull_record_tasks(
        client,
        page_size=int(page_size),
        lookback=timedelta(hours=float(lookback_hours)),
        since=since,
        until=until,
        max_rescans=max(0, int(max_rescans)),
    )


MISSING_CREDENTIALS = (
    "Volcengine credentials are missing. Put them in one of three places: "
    "(1) .dlt/secrets.toml under [sources.volcengine_live.credentials] as access_key_id and "
    "secret_access_key; (2) the environment variables "
    "SOURCES__VOLCENGINE_LIVE__CREDENTIALS__ACCESS_KEY_ID and "
    "SOURCES__VOLCENGINE_LIVE__CREDENTIALS__SECRET_ACCESS_KEY; (3) the official SDKs' "
    "VOLC_ACCESSKEY and VOLC_SECRETKEY."
)


def _parse_setting(name: str, value: str | datetime | None) -> datetime | None:
    try:
        return to_utc(value)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"{name} {value!r} is not an ISO 8601 time such as 2024-01-01T00:00:00+08:00. "
            f"Fix [sources.volcengine_live] {name}."
        ) from None


TASK_COLUMN_HINTS: Any = {
    "task_id": {"data_type": "text", "nullable": False, "primary_key": True},
    "start_time": {"data_type": "timestamp", "timezone": True},
    "end_time": {"data_type": "timestamp", "timezone": True},
    "seen_at": {"data_type": "timestamp", "timezone": True, "dedup_sort": "desc"},
    "data_issues": {"data_type": "text", "nullable": True},
}


# Each table's hints ride on its items as a table variant (see _tasks_item): hints on the
# resource itself would be copied into every table it yields, and the rejects table has no
# task_id to be non-null.
@dlt.resource(name=settings.TABLE_NAME, write_disposition="merge")
def pull_record_tasks(
    client: LiveApiClient,
    page_size: int = settings.DEFAULT_PAGE_SIZE,
    lookback: timedelta = timedelta(hours=settings.DEFAULT_LOOKBACK_HOURS),
    since: datetime | None = None,
    until: datetime | None = None,
    max_rescans: int = settings.DEFAULT_MAX_RESCANS,
) -> Iterator[Any]:
    """Pages of tasks as Arrow tables (merged on ``task_id``); records without a TaskId go to
    ``pull_record_task_rejects`` with the reason."""
    state = dlt.current.resource_state()
    plan = WritePlan(
        previous=CursorState.load(state),
        lookback=lookback,
        run_started_at=datetime.now(timezone.utc),
        since=since,
        until=until,
    )
    metrics = dlt.current.resource_metrics()
    counts: dict[str, float] = dict.fromkeys(
        ("rows_read", "rows_written", "flagged", "rejected", "scans", "late_days"), 0
    )
    started = time.monotonic()

    def pages(select: Callable[[pa.Table], pa.Table]) -> Iterator[Any]:
        """One pass over the list: the selected tasks in batches, and every reject."""
        scan = client.scan(page_size)
        counts["scans"] += 1
        records: list[Any] = []
        record_pages: list[int] = []
        first_fetch = 0.0
        for page in scan:
            if not records:
                first_fetch = page.fetched_at
            records.extend(page.tasks)
            record_pages.extend([page.page_num] * len(page.tasks))
            counts["rows_read"] += len(page.tasks)
            if len(records) >= BATCH_ROWS:
                yield from convert(records, record_pages, first_fetch, select)
                records, record_pages = [], []
        if records:
            yield from convert(records, record_pages, first_fetch, select)
        reports.append(scan.report)

    def convert(
        records: list[Any],
        record_pages: list[int],
        fetched_at: float,
        select: Callable[[pa.Table], pa.Table],
    ) -> Iterator[Any]:
        """Pages gathered into one batch: converted, selected and handed to dlt as one item
        (dlt and Arrow spend a fixed cost per item and per call, so batches go faster)."""
        seen_at = datetime.fromtimestamp(fetched_at, timezone.utc)
        converted = tasks_to_arrow(records, seen_at, record_pages)
        counts["flagged"] += converted.flagged
        counts["rejected"] += len(converted.rejects)
        selected = select(converted.tasks)
        # Open tasks wait for the end of the run, so that a task read by two passes (the
        # list moved) is written once, with the status the later pass saw.
        still_open = WritePlan.open_mask(selected)
        open_buffer.add(selected.filter(still_open))
        settled = selected.filter(pc.invert(still_open))
        if open_ids and settled.num_rows:
            # Open when read before, settled now: written now, and not at the end.
            settled_since.update(open_ids.intersection(settled.column("task_id").to_pylist()))
        if settled.num_rows:
            counts["rows_written"] += settled.num_rows
            yield _tasks_item(settled)
        rejects = [r for r in converted.rejects if r["reject_id"] not in rejects_written]
        if rejects:
            rejects_written.update(r["reject_id"] for r in rejects)
            yield _rejects_item(rejects)

    # Each task and each reject is written at most once per run: a destination that
    # upserts (Delta) refuses a load holding two rows for one key.
    rejects_written: set[str] = set()
    open_buffer = OpenTaskBuffer(_spill_directory())
    open_ids = open_buffer.ids
    settled_since: set[str] = set()
    reports: list[ScanReport] = []
    try:
        for _ in range(max_rescans + 1):
            plan.begin_pass()
            if not reports:
                yield from pages(plan.select)
            else:
                yield from pages(_unseen_by(reports, plan.select, open_ids))
            if reports[-1].stable or _lists_duplicates(reports):
                break
            logger.warning(
                "The task list changed during a pass (TotalCount %s, %d distinct tasks read); "
                "reading it again so that no task is missed",
                sorted(reports[-1].total_counts),
                reports[-1].distinct_tasks,
            )
        else:
            _check_union_complete(reports, max_rescans)
        for latest_open in open_buffer.latest(exclude=settled_since):
            counts["rows_written"] += latest_open.num_rows
            yield _tasks_item(latest_open)
        open_buffer.close()
        late_days = plan.changed_days()
        if late_days:
            counts["late_days"] = len(late_days)
            logger.warning(
                "%d day(s) before the lookback window changed since the last run (a task "
                "created late with an old StartTime, or changed or deleted); re-reading them",
                len(late_days),
            )
            yield from pages(lambda tasks: plan.select_days(tasks, late_days))
        # Reached only when the scan is complete: the state advances with the load package.
        plan.next_state().save(state)
    finally:
        counts["elapsed_seconds"] = round(time.monotonic() - started, 3)
        metrics.update(counts)
        metrics.update(client.stats.as_dict())
        client.close()
        open_buffer.close()


BATCH_ROWS = 10_000
"""Records converted and handed to dlt at once: about 10 MB of parsed JSON at most."""


REJECT_COLUMN_HINTS: Any = {
    "reject_id": {"data_type": "text", "nullable": False, "primary_key": True},
    "reason": {"data_type": "text", "nullable": False},
    "raw_record": {"data_type": "text", "nullable": True},
    "page_num": {"data_type": "bigint", "nullable": True},
    "seen_at": {"data_type": "timestamp", "timezone": True, "nullable": True},
}


def _unseen_by(
    reports: list[ScanReport], select: Callable[[pa.Table], pa.Table], open_ids: set[str]
) -> Callable[[pa.Table], pa.Table]:
    """``select``, less the settled TaskIds that earlier passes of this run read (and so
    wrote, if they were to be written). Tasks that were open stay in: they are written
    once, at the end of the run or when they settle."""
    seen: set[int] = set().union(*(report.task_id_hashes for report in reports))

    def select_unseen(tasks: pa.Table) -> pa.Table:
        selected = select(tasks)
        ids = selected.column("task_id").to_pylist()
        keep = [hash(i) not in seen or i in open_ids for i in ids]
        return selected.filter(pa.array(keep, pa.bool_()))

    return select_unseen


def _spill_directory() -> str | None:
    """Where the open tasks wait for the end of the run: the pipeline's working directory
    (beside its load packages), or the system's temporary directory outside a pipeline."""
    try:
        return dlt.current.pipeline().working_dir
    except Exception:  # no active pipeline: the resource is iterated on its own
        return None


def _tasks_item(tasks: pa.Table) -> Any:
    """Tasks for ``pull_record_tasks``, merged on task_id; the latest read wins a tie."""
    return dlt.mark.with_hints(
        tasks,
        dlt.mark.make_hints(
            table_name=settings.TABLE_NAME,
            write_disposition="merge",
            primary_key="task_id",
            columns=TASK_COLUMN_HINTS,
        ),
        create_table_variant=True,
    )


def _rejects_item(rejects: list[dict[str, Any]]) -> Any:
    """Records set aside, with the reason, one row per distinct record (merged on its hash)."""
    return dlt.mark.with_hints(
        pa.Table.from_pylist(rejects, schema=pa.schema(REJECT_COLUMNS)),
        dlt.mark.make_hints(
            table_name=settings.REJECTS_TABLE_NAME,
            write_disposition="merge",
            primary_key="reject_id",
            # Its own columns: without them the table would take the resource's hints for
            # pull_record_tasks (a non-null task_id it does not have).
            columns=REJECT_COLUMN_HINTS,
        ),
        # A variant: hints for this table only, not merged into the resource's.
        create_table_variant=True,
    )


def _lists_duplicates(reports: list[ScanReport]) -> bool:
    """The last two passes read the same list, whole and unmoved, in which some TaskIds
    stand twice: the API's own duplicates, not a list moving under the scan."""
    if len(reports) < 2:
        return False
    last, before = reports[-1], reports[-2]
    unmoved = all(
        len(report.total_counts) == 1 and report.rows == report.first_total
        for report in (last, before)
    )
    if not unmoved or last.first_total != before.first_total:
        return False
    if not last.distinct_tasks == before.distinct_tasks == _distinct_across([before, last]):
        return False
    logger.warning(
        "The API lists %d TaskId(s) more than once (the same in two passes): each task is "
        "loaded once",
        (last.first_total or 0) - last.distinct_tasks,
    )
    return True


def _distinct_across(reports: list[ScanReport]) -> int:
    """Distinct tasks read by these passes together."""
    seen = array("q")
    for report in reports:
        seen.extend(report.task_id_hashes)
    return distinct_count(seen)


def _check_union_complete(reports: list[ScanReport], max_rescans: int) -> None:
    """After passes that all saw the list move: accept only if together they read at least
    every task the last pass was promised at its start."""
    promised = reports[-1].first_total or 0
    found = _distinct_across(reports)
    if found < promised:
        raise IncompleteScanError(
            f"Read {found} distinct tasks but the API reported {promised} (TotalCount) after "
            f"{max_rescans + 1} passes while the list kept changing. Nothing was committed; "
            "run again, or raise max_rescans under [sources.volcengine_live]."
        )
