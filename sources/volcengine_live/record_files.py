"""The files that finished recordings left (``DescribeRecordTaskFileHistory``), as rows of
table ``record_files``: the windows a run reads, how one window is read whole, and how a
file becomes a row.

**Windows.** The API lists the files of a time window of at most 7 days. A run walks
forward from where the last one left off (the latest file start loaded, less a lag; on the
first run ``initial_start_time``, or ``record_files_first_window_hours`` before now) to now,
in windows of 7 days less a second, each one's ``DateTo`` the next one's ``DateFrom``.

**Lag.** A recording is listed only once it has finished, so a file that started before a
run and finished after it is missing from that run; the next run reads again from
``record_files_lag_hours`` (default 7 days) before the latest start it loaded, and finds
it if it lasted less than the lag. Every file read again is merged on its key: no duplicate.

**Key.** ``file_id``, a hash of what names a file: the storage type, Vhost, App, Stream, the
recording's start, Bucket, Path, Vid and FileName. Rows carry no TaskId; a file belongs to a
task only by Vhost/App/Stream and time (``sql/recording_coverage.sql``).

Why not X
---------
* **One window from the cursor to now**: the API refuses a span over 7 days.
* **Windows that do not touch** (``[a, b)``, ``[b, c)``): which rows a window selects is
  not documented (files starting in it, or overlapping it; ``DateTo`` included or not), and
  whether exactly 7 days is accepted neither. Windows that share their boundary second and
  are a second short of 7 days lose no file under any of these readings; a file listed by
  two windows is written once (the run remembers the keys it wrote).
* **The task list's own state machine** (``incremental.py``): a file, once listed, never
  changes (it has no status), and its start only grows with new recordings; the one late
  row is a recording finishing after a run, which dlt's ``lag`` covers. So
  ``dlt.sources.incremental`` on ``start_time`` fits here, with its state committed with
  the load package as dlt always does.
* **A compound primary key** (Vhost, App, Stream, start, FileName...): a TOS file has no
  Vid and a VOD file no Path, and a key column that is empty or null merges differently on
  different destinations; a hash of them all is never null.
* **Parsing the times without their offset**: the zone of ``StartTime``/``EndTime`` is not
  documented (Beijing time is a guess), so the ``*UTC`` fields are used when present, and a
  time without an offset is flagged, not guessed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from . import settings
from .client import LiveApiClient
from .credentials import VolcengineCredentials
from .errors import IncompleteScanError
from .records import snake_case
from .responses import Page, parse_page
from .times import parse_time, to_utc
from .writer import ACCOUNT_COLUMN

logger = logging.getLogger(__name__)

WINDOW = timedelta(days=7) - timedelta(seconds=1)
"""The widest window asked for: the API allows 7 days at most, exactly 7 is unconfirmed."""

FILE_FIELDS: dict[str, str] = {
    "Vhost": "vhost",
    "App": "app",
    "Stream": "stream",
    "Bucket": "bucket",
    "Path": "path",
    "Vid": "vid",
    "FileName": "file_name",
    "Format": "format",
    "Duration": "duration",
    "StartTime": "start_time_text",
    "EndTime": "end_time_text",
    "StartTimeUTC": "start_time_utc_text",
    "EndTimeUTC": "end_time_utc_text",
}
"""The fields of a file (SDK models), every one a string, and their columns: kept as the
API gave them; ``start_time``/``end_time`` and ``duration_seconds`` are read from them."""

FILE_COLUMN_HINTS: Any = {
    "file_id": {"data_type": "text", "nullable": False, "primary_key": True},
    "storage_type": {"data_type": "text", "nullable": False},
    "start_time": {"data_type": "timestamp", "timezone": True, "nullable": True},
    "end_time": {"data_type": "timestamp", "timezone": True, "nullable": True},
    "duration_seconds": {"data_type": "double", "nullable": True},
    "data_issues": {"data_type": "text", "nullable": True},
    "seen_at": {"data_type": "timestamp", "timezone": True, "dedup_sort": "desc"},
    **{column: {"data_type": "text", "nullable": True} for column in FILE_FIELDS.values()},
}

FILE_FILTERS = {"vhost": "Vhost", "app": "App", "stream": "Stream"}
"""The task-list filters that files have too, and their names in the request."""

DURATION_TOLERANCE_SECONDS = 5.0
"""``Duration`` and ``EndTime - StartTime`` may differ by rounding; more is flagged."""

FIRST_WINDOW_START = "first_window_start"
"""Key in ``record_files``' state: where the first run began, for runs that find no file."""


def first_start(
    state: MutableMapping[str, Any], loaded: datetime | None, default: datetime
) -> datetime:
    """Where this run's windows begin: dlt's incremental start (``loaded``) once a file is
    loaded; before that the first run's start, kept in ``state``, else ``default``."""
    if loaded is not None:
        return loaded
    start = to_utc(state.get(FIRST_WINDOW_START)) or default
    state[FIRST_WINDOW_START] = start.isoformat()
    return start


def windows(start: datetime, end: datetime) -> list[tuple[datetime, datetime]]:
    """``[start, end]`` as windows of at most :data:`WINDOW`, each ``DateTo`` the next
    ``DateFrom``, in whole seconds (the API's precision): ``start`` rounded down, ``end``
    up. None when ``start`` is not before ``end``."""
    first = start.replace(microsecond=0)
    last = end if end.microsecond == 0 else end.replace(microsecond=0) + timedelta(seconds=1)
    found: list[tuple[datetime, datetime]] = []
    while first < last:
        upto = min(first + WINDOW, last)
        found.append((first, upto))
        first = upto
    return found


def rfc3339(moment: datetime) -> str:
    """An instant as the API takes it: RFC 3339 in UTC, to the second."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FileHistory:
    """Reads the files of one window whole, page after page, under ``client``'s limit."""

    client: LiveApiClient
    page_size: int
    file_type: str
    filters: Mapping[str, str] = field(default_factory=dict)
    """Task filters that apply to files (``vhost``, ``app``, ``stream``)."""
    max_rereads: int = 2
    pages: int = 0
    rereads: int = 0

    @classmethod
    def configured(
        cls, credentials: VolcengineCredentials, checked: settings.SourceSettings
    ) -> FileHistory:
        """The history with a client of its own, for the action's own limit (10/s)."""
        files = checked.files
        client = LiveApiClient(
            credentials.access_key_id,
            credentials.secret_access_key,
            credentials.session_token,
            replace(checked.client, requests_per_second=files.requests_per_second),
            action=settings.FILES_ACTION,
            account_limit=settings.FILES_ACCOUNT_REQUESTS_PER_SECOND,
        )
        return cls(
            client, files.page_size, files.file_type, checked.task_filters, checked.max_rescans
        )

    def rows(
        self,
        records: list[Any],
        written: set[str],
        start: datetime,
        until: datetime | None,
        account: str | None,
    ) -> list[dict[str, Any]]:
        """Rows for the files of ``records`` within the filters and ``[start, until)`` and
        not ``written`` yet in this run (added to it), labelled with ``account``."""
        seen_at = datetime.now(timezone.utc)
        rows = [file_row(record, self.file_type, seen_at) for record in records]
        rows = [
            row
            for row in rows
            if matches(row, self.filters)
            and row["file_id"] not in written
            and _in_range(row, start, until)
        ]
        written.update(row["file_id"] for row in rows)
        if account is not None:
            rows = [{ACCOUNT_COLUMN: account, **row} for row in rows]
        return rows

    def body_fields(self) -> dict[str, str]:
        """The filters the request may carry: the API refuses a ``Stream`` without an
        ``App``, so without ``app`` the stream is checked on the rows only."""
        fields = {
            FILE_FILTERS[name]: value
            for name, value in self.filters.items()
            if name in FILE_FILTERS
        }
        if "App" not in fields:
            fields.pop("Stream", None)
        return fields

    def window(self, date_from: datetime, date_to: datetime) -> Iterator[list[Any]]:
        """The window's files as the API lists them, page by page. A read during which the
        window's ``TotalCount`` moved, or that got fewer rows than it, is read again (the
        rows read twice are merged on their key); after ``max_rereads`` more reads it
        raises :class:`IncompleteScanError` rather than miss a file."""
        totals: set[int] = set()
        for read in range(self.max_rereads + 1):
            if read:
                self.rereads += 1
                logger.warning(
                    "The files of %s..%s changed while they were read (TotalCount %s); "
                    "reading the window again",
                    rfc3339(date_from),
                    rfc3339(date_to),
                    sorted(totals),
                )
            totals, rows = set(), 0
            page_num = 1
            while True:
                page = self._page(date_from, date_to, page_num)
                totals.add(page.total_count)
                rows += len(page.tasks)
                if page.tasks:
                    yield page.tasks
                full = len(page.tasks) >= self.page_size
                if not full or page_num * self.page_size >= page.total_count:
                    break
                page_num += 1
            if len(totals) == 1 and rows >= next(iter(totals)):
                return
        raise IncompleteScanError(
            f"The files of {rfc3339(date_from)}..{rfc3339(date_to)} kept changing while they "
            f"were read ({self.max_rereads + 1} reads, TotalCount {sorted(totals)}). Nothing "
            "was committed; run again."
        )

    def _page(self, date_from: datetime, date_to: datetime, page_num: int) -> Page:
        body = {
            "DateFrom": rfc3339(date_from),
            "DateTo": rfc3339(date_to),
            "PageNum": page_num,
            "PageSize": self.page_size,
            "Type": self.file_type,
            **self.body_fields(),
        }
        size = self.page_size

        def parse(status: int, headers: Any, content: bytes) -> Page:
            return parse_page(status, headers, content, page_num, size, rows_key="Data")

        self.pages += 1
        what = f"Files {rfc3339(date_from)}..{rfc3339(date_to)} page {page_num}"
        return self.client.call(json.dumps(body).encode(), parse, what)


def file_row(record: Any, file_type: str, seen_at: datetime) -> dict[str, Any]:
    """One listed file as a row: every field kept (unknown ones as text columns), the times
    read (``*UTC`` first), ``duration_seconds`` read leniently, what could not be read
    named in ``data_issues``, and the ``file_id`` key."""
    if not isinstance(record, dict):
        raw = json.dumps(record, ensure_ascii=False, default=str)
        return {
            "file_id": _hash(["not an object", raw]),
            "storage_type": file_type,
            "raw_record": raw[:10_000],
            "data_issues": f"record is a {type(record).__name__}, not an object",
            "seen_at": seen_at,
        }
    issues: list[str] = []
    row: dict[str, Any] = {"file_id": "", "storage_type": file_type}
    for name, column in FILE_FIELDS.items():
        row[column] = _text(record.get(name))
    start = _instant(record, "StartTime", issues)
    end = _instant(record, "EndTime", issues)
    row["start_time"], row["end_time"] = start, end
    if start is not None and end is not None and end < start:
        issues.append("EndTime before StartTime")
    row["duration_seconds"] = _duration(record.get("Duration"), start, end, issues)
    for name in ("Vhost", "App", "Stream"):
        if not row[FILE_FIELDS[name]]:
            issues.append(f"{name} missing")
    if not (row["file_name"] or row["path"] or row["vid"]):
        issues.append("FileName, Path and Vid missing")
    row["data_issues"] = "; ".join(issues) or None
    row["seen_at"] = seen_at
    for name in sorted(set(record) - set(FILE_FIELDS)):
        column = snake_case(name)
        while column in row or column in FILE_COLUMN_HINTS:
            column += "_"
        row[column] = _text(record[name])
    when = start.isoformat() if start is not None else row["start_time_text"]
    where = [row["bucket"], row["path"], row["vid"], row["file_name"]]
    row["file_id"] = _hash([file_type, row["vhost"], row["app"], row["stream"], when, *where])
    return row


def matches(row: Mapping[str, Any], filters: Mapping[str, str]) -> bool:
    """Whether a file row is within the filters that files have (Vhost, App, Stream)."""
    return all(row.get(name) == value for name, value in filters.items() if name in FILE_FILTERS)


def _instant(record: Mapping[str, Any], name: str, issues: list[str]) -> datetime | None:
    """``<name>UTC`` when it is a time, else ``<name>`` read with its offset; a missing or
    unreadable value is an issue only when neither gives the time."""
    in_utc, given = record.get(f"{name}UTC"), record.get(name)
    moment = parse_time(in_utc)
    if moment is not None:
        return moment
    moment = parse_time(given)
    if in_utc not in (None, ""):
        issues.append(f"{name}UTC unparseable: {str(in_utc)[:64]!r}")
    if moment is None:
        if given in (None, ""):
            issues.append(f"{name} missing")
        else:
            issues.append(f"{name} unparseable (no time with an offset): {str(given)[:64]!r}")
    return moment


_NUMBER = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|sec|secs|seconds?|m|min|mins|h|hours?)?", re.I)
_CLOCK = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)")
_UNITS = {"ms": 0.001, "m": 60.0, "min": 60.0, "mins": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float | None:
    """Seconds from ``Duration``, whose unit is not documented: a number (taken as seconds),
    a number with a unit (``ms``, ``s``, ``min``, ``h``), or ``[H:]MM:SS``; ``None`` for
    anything else."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str):
        return None
    text = value.strip()
    number = _NUMBER.fullmatch(text)
    if number:
        unit = (number.group(2) or "s").lower()
        factor = _UNITS.get(unit, 3600.0 if unit.startswith("hour") else 1.0)
        return float(number.group(1)) * factor
    clock = _CLOCK.fullmatch(text)
    if clock:
        hours, minutes, seconds = clock.groups()
        return int(hours or 0) * 3600.0 + int(minutes) * 60.0 + float(seconds)
    return None


def _duration(
    value: Any, start: datetime | None, end: datetime | None, issues: list[str]
) -> float | None:
    seconds = parse_duration(value)
    if seconds is None:
        if value in (None, ""):
            issues.append("Duration missing")
        else:
            issues.append(f"Duration unparseable: {str(value)[:64]!r}")
        return None
    if start is not None and end is not None and end >= start:
        span = (end - start).total_seconds()
        if abs(seconds - span) > max(DURATION_TOLERANCE_SECONDS, 0.01 * span):
            issues.append(f"Duration {seconds:g} s is not EndTime - StartTime ({span:g} s)")
    return seconds


def _text(value: Any) -> str | None:
    """Strings as they are; anything else as JSON (a field whose type varies never breaks a
    load)."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _hash(parts: list[Any]) -> str:
    text = json.dumps(parts, ensure_ascii=False)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _in_range(row: dict[str, Any], start: datetime, until: datetime | None) -> bool:
    """A file that starts in ``[start, until)``, or whose start is unknown: a window also
    lists files that started before it, if the API selects by overlap, and dlt's
    incremental would drop them uncounted."""
    moment = row.get("start_time")
    return moment is None or (moment >= start and (until is None or moment < until))
