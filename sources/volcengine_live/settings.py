"""Defaults and fixed facts of the ``ListPullRecordTask`` API."""

from __future__ import annotations

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
"""Extra full scans when the list changed under a scan (TotalCount moved)."""

TABLE_NAME = "pull_record_tasks"
REJECTS_TABLE_NAME = "pull_record_task_rejects"

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

ENV_ACCESS_KEY = "VOLC_ACCESSKEY"
ENV_SECRET_KEY = "VOLC_SECRETKEY"
ENV_SESSION_TOKEN = "VOLC_SESSIONTOKEN"
"""Environment variables the official Volcengine SDKs read."""
