"""Every setting of the source in one place: its default, the fixed facts of the
``ListPullRecordTask`` API, and the check each configured value must pass.

The source's arguments carry real types, so dlt converts what it reads from configuration
(``SOURCES__VOLCENGINE_LIVE__PAGE_SIZE=250`` is the int 250) and refuses what it cannot
convert, naming the setting. The checks here add what types cannot say: ranges, choices, and
values passed from Python, which dlt does not convert. Every bad value raises
:class:`ConfigurationError` naming the setting and where to fix it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import checks

# Explicitly re-exported: accounts, signing and the command name the section from here.
from .checks import SECTION as SECTION
from .checks import where_to_fix as where_to_fix
from .errors import ConfigurationError

DEFAULT_ENDPOINT = "https://live.volcengineapi.com"
DEFAULT_REGION = "cn-north-1"
SERVICE = "live"
ACTION = "ListPullRecordTask"
API_VERSION = "2023-01-01"

MAX_PAGE_SIZE = 500
"""The API refuses larger pages."""
DEFAULT_PAGE_SIZE = MAX_PAGE_SIZE

ACCOUNT_REQUESTS_PER_SECOND = 50
"""The API's limit per account, shared by every client of that account."""
DEFAULT_REQUESTS_PER_SECOND = 40.0
"""Leaves a fifth of the account's limit to other tools using the same account."""
DEFAULT_MAX_CONCURRENCY = 8
"""Requests in flight: at 100 ms per round trip, 8 are enough to reach 50 requests/s."""

DEFAULT_LOOKBACK_HOURS = 24.0
"""Settled tasks whose StartTime is within this window of the cursor are re-read each run.

A day covers tasks created with a StartTime already in the past (back-dated or created
late), clocks that disagree, and runs that are hours apart; each run rewrites only the
tasks of the last day, a small share of a busy account.
"""

DEFAULT_REQUEST_TIMEOUT = 30.0
DEFAULT_MAX_ATTEMPTS = 6
"""Attempts per page for transient faults (the first try included)."""
DEFAULT_BACKOFF_SECONDS = 0.5
"""First backoff; doubled after each failed attempt, with jitter."""
DEFAULT_MAX_BACKOFF_SECONDS = 30.0
DEFAULT_MAX_RESCANS = 2
"""Extra full scans when the list changed under a scan otherwise than by new tasks at its
head (those cost a re-read of a few pages, not a scan; see ``coverage.py``)."""

DELETED_TASKS_MODES = ("flag", "delete")
"""What becomes of a task that left the list: ``flag`` sets its ``deleted_at``; ``delete``
also removes its row from a destination that merges (dlt's ``hard_delete``)."""
DEFAULT_DELETED_TASKS = "flag"

TABLE_NAME = "pull_record_tasks"
REJECTS_TABLE_NAME = "pull_record_task_rejects"

FILES_ACTION = "DescribeRecordTaskFileHistory"
FILES_TABLE_NAME = "record_files"
FILES_ACCOUNT_REQUESTS_PER_SECOND = 10
"""``DescribeRecordTaskFileHistory``'s own limit per account (not shared with the task list)."""
DEFAULT_FILES_REQUESTS_PER_SECOND = 8.0
"""Leaves a fifth of the action's limit to other tools, as the task list's default does."""
MAX_FILES_WINDOW_HOURS = 7 * 24
"""The API's widest window (``DateTo`` at most 7 days after ``DateFrom``)."""
DEFAULT_FILES_LAG_HOURS = float(MAX_FILES_WINDOW_HOURS)
"""Each run reads again the files that started this long before the latest one loaded: a
recording is listed only once it has finished, so a file that started before the last run
and finished after it is found by the next run if it lasted less than this."""
DEFAULT_FILES_FIRST_WINDOW_HOURS = float(MAX_FILES_WINDOW_HOURS)
"""How far back the first run looks when ``initial_start_time`` is not set."""
MAX_FILES_PAGE_SIZE = 1000
"""Not documented for 2023-01-01; the legacy SDK's ``[1, 1000]``."""
DEFAULT_FILES_PAGE_SIZE = 100
FILE_TYPES = ("tos", "vod")
"""``Type`` of ``DescribeRecordTaskFileHistory``: files stored in TOS or in VOD."""
DEFAULT_FILES_TYPE = "tos"

TASK_FILTERS = ("vhost", "domain", "app", "stream")
"""Optional filters of the task list (``Vhost``, ``Domain``, ``App``, ``Stream`` in the body
of the newer SDKs), each also checked on every row."""

STATUS_CODES: dict[str, str] = {
    "停用": "stopped",
    "未开始": "not_started",
    "生效中": "recording",
    "已结束": "finished",
}
"""Status as the API writes it (Chinese) -> a stable English code."""
UNKNOWN_STATUS_CODE = "unknown"

SETTLED_STATUS_CODES = frozenset({"stopped", "finished"})
"""Codes that do not change again. Every other status (unknown ones included) is re-read
on each run until it settles."""

ENV_ACCESS_KEY = ("VOLCENGINE_ACCESS_KEY", "VOLC_ACCESSKEY")
ENV_SECRET_KEY = ("VOLCENGINE_SECRET_KEY", "VOLC_SECRETKEY")
ENV_SESSION_TOKEN = ("VOLCENGINE_SESSION_TOKEN", "VOLC_SESSIONTOKEN")
"""Environment variables of the official Volcengine SDKs, the newer names (also read by
Volcengine's Live MCP server) first; used when dlt's configuration has no credentials."""


SETTING_NAMES = (
    "endpoint",
    "region",
    "page_size",
    "lookback_hours",
    "initial_start_time",
    "end_start_time",
    "requests_per_second",
    "max_concurrency",
    "request_timeout",
    "max_attempts",
    "backoff_seconds",
    "max_rescans",
    "deleted_tasks",
    "run_timeout",
    "max_response_bytes",
    "vhost",
    "domain",
    "app",
    "stream",
    "record_files",
    "record_files_type",
    "record_files_lag_hours",
    "record_files_first_window_hours",
    "record_files_page_size",
    "record_files_requests_per_second",
)
"""The source's settings (its arguments but ``credentials`` and ``account``)."""


DEFAULT_RUN_TIMEOUT: float | None = None
"""Seconds the whole run may take, from its first request; None: no limit."""
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024
"""The most a response body may hold once decompressed: a page of 500 tasks is about
100 KB, so 64 MiB is generous for any real page and still bounds a hostile one."""

# Ranges of the settings whose extremes break something that names nothing.
MIN_REQUESTS_PER_SECOND = 0.1
MAX_REQUEST_TIMEOUT = 3600.0
MAX_LOOKBACK_HOURS = 87_600.0
"""Ten years."""
MAX_RUN_TIMEOUT = 7 * 24 * 3600.0
MIN_RESPONSE_BYTES = 1024 * 1024
"""Ten times a page of 500 tasks: a smaller cap would refuse real pages."""
MAX_RESPONSE_BYTES = 1024 * 1024 * 1024


@dataclass(frozen=True)
class ClientConfig:
    """What :class:`~volcengine_live.client.LiveApiClient` needs, checked already."""

    endpoint: str = DEFAULT_ENDPOINT
    region: str = DEFAULT_REGION
    service: str = SERVICE
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    backoff_seconds: float = DEFAULT_BACKOFF_SECONDS
    max_backoff_seconds: float = DEFAULT_MAX_BACKOFF_SECONDS
    requests_per_second: float | None = DEFAULT_REQUESTS_PER_SECOND
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    run_timeout: float | None = DEFAULT_RUN_TIMEOUT
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES


@dataclass(frozen=True)
class FilesSettings:
    """The ``record_files`` resource's settings, checked."""

    enabled: bool = False
    file_type: str = DEFAULT_FILES_TYPE
    lag_hours: float = DEFAULT_FILES_LAG_HOURS
    first_window_hours: float = DEFAULT_FILES_FIRST_WINDOW_HOURS
    page_size: int = DEFAULT_FILES_PAGE_SIZE
    requests_per_second: float | None = DEFAULT_FILES_REQUESTS_PER_SECOND


@dataclass(frozen=True)
class SourceSettings:
    """The source's settings, converted and checked: build it with :meth:`checked`."""

    client: ClientConfig
    page_size: int = DEFAULT_PAGE_SIZE
    lookback_hours: float = DEFAULT_LOOKBACK_HOURS
    initial_start_time: datetime | None = None
    end_start_time: datetime | None = None
    max_rescans: int = DEFAULT_MAX_RESCANS
    deleted_tasks: str = DEFAULT_DELETED_TASKS
    task_filters: dict[str, str] = field(default_factory=dict)
    """The task-list filters set (``vhost``, ``domain``, ``app``, ``stream``), by name."""
    files: FilesSettings = FilesSettings()

    @classmethod
    def checked(
        cls,
        *,
        endpoint: Any,
        region: Any,
        page_size: Any,
        lookback_hours: Any,
        initial_start_time: Any,
        end_start_time: Any,
        requests_per_second: Any,
        max_concurrency: Any,
        request_timeout: Any,
        max_attempts: Any,
        backoff_seconds: Any,
        max_rescans: Any,
        deleted_tasks: Any = DEFAULT_DELETED_TASKS,
        run_timeout: Any = DEFAULT_RUN_TIMEOUT,
        max_response_bytes: Any = DEFAULT_MAX_RESPONSE_BYTES,
        task_filters: Mapping[str, Any] | None = None,
        record_files: Any = False,
        record_files_type: Any = DEFAULT_FILES_TYPE,
        record_files_lag_hours: Any = DEFAULT_FILES_LAG_HOURS,
        record_files_first_window_hours: Any = DEFAULT_FILES_FIRST_WINDOW_HOURS,
        record_files_page_size: Any = DEFAULT_FILES_PAGE_SIZE,
        record_files_requests_per_second: Any = DEFAULT_FILES_REQUESTS_PER_SECOND,
    ) -> SourceSettings:
        """Settings from values as configured (TOML values, environment strings, Python
        objects); raises :class:`ConfigurationError` naming the first bad one."""
        arguments = dict(locals())  # taken first: the arguments alone, by setting name
        since, until = _backfill_range(initial_start_time, end_start_time)
        checked_page_size = checks.page_size("page_size", page_size, MAX_PAGE_SIZE)
        client = _client_config(arguments)
        return cls(
            client=client,
            page_size=checked_page_size,
            # Ten years re-reads any real account whole; far beyond, the window's start
            # falls before year 1 and datetime raises an OverflowError naming nothing.
            lookback_hours=checks.number(
                "lookback_hours", lookback_hours, 0, maximum=MAX_LOOKBACK_HOURS
            ),
            initial_start_time=since,
            end_start_time=until,
            max_rescans=checks.whole("max_rescans", max_rescans, minimum=0),
            deleted_tasks=checks.choice("deleted_tasks", deleted_tasks, DELETED_TASKS_MODES),
            task_filters=checks.filters(task_filters or {}, TASK_FILTERS),
            files=_files_settings(arguments),
        )


def _client_config(values: Mapping[str, Any]) -> ClientConfig:
    """The client's settings, checked in this order (the first bad one is named)."""
    return ClientConfig(
        endpoint=checks.text("endpoint", values["endpoint"]),
        region=checks.text("region", values["region"]),
        # An hour per page is already absurd; far above, sockets refuse the timeout
        # with an OverflowError that names nothing.
        request_timeout=checks.number(
            "request_timeout", values["request_timeout"], 0, above=True, maximum=MAX_REQUEST_TIMEOUT
        ),
        max_attempts=checks.whole("max_attempts", values["max_attempts"], minimum=1),
        backoff_seconds=checks.number("backoff_seconds", values["backoff_seconds"], 0),
        requests_per_second=_rate("requests_per_second", values["requests_per_second"]),
        max_concurrency=checks.whole("max_concurrency", values["max_concurrency"], minimum=1),
        run_timeout=checks.optional_seconds("run_timeout", values["run_timeout"], MAX_RUN_TIMEOUT),
        max_response_bytes=checks.whole(
            "max_response_bytes",
            values["max_response_bytes"],
            MIN_RESPONSE_BYTES,
            MAX_RESPONSE_BYTES,
        ),
    )


def _files_settings(values: Mapping[str, Any]) -> FilesSettings:
    """The ``record_files_*`` settings, checked in this order."""
    return FilesSettings(
        enabled=checks.flag("record_files", values["record_files"]),
        file_type=checks.choice("record_files_type", values["record_files_type"], FILE_TYPES),
        lag_hours=checks.number("record_files_lag_hours", values["record_files_lag_hours"], 0),
        first_window_hours=checks.number(
            "record_files_first_window_hours", values["record_files_first_window_hours"], 0
        ),
        page_size=checks.page_size(
            "record_files_page_size", values["record_files_page_size"], MAX_FILES_PAGE_SIZE
        ),
        requests_per_second=_rate(
            "record_files_requests_per_second", values["record_files_requests_per_second"]
        ),
    )


def _backfill_range(
    initial_start_time: Any, end_start_time: Any
) -> tuple[datetime | None, datetime | None]:
    """``[initial_start_time, end_start_time)``, checked: two times, the end after the start."""
    since = checks.time("initial_start_time", initial_start_time)
    until = checks.time("end_start_time", end_start_time)
    if since and until and until <= since:
        raise ConfigurationError(
            f"end_start_time {until.isoformat()} is not after initial_start_time "
            f"{since.isoformat()}: the backfill range is empty."
        )
    return since, until


def _rate(name: str, value: Any) -> float | None:
    return checks.rate(value, name, MIN_REQUESTS_PER_SECOND)
