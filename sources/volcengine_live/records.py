"""Turning one page of API tasks into an Arrow table, keeping every record.

A task with a TaskId is always kept. Problems in its other fields (an unparseable, missing
or out-of-range time, EndTime before StartTime, a missing field) are written to its
``data_issues`` column, so they can be counted and queried. A record without a usable
TaskId cannot be merged; it is set aside as a reject, with the reason and the raw record.

Fields the API adds become text columns named after them, never after one of the
project's own columns (:func:`api_column`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc

from .settings import STATUS_CODES, UNKNOWN_STATUS_CODE
from .times import overflows, parse_time

logger = logging.getLogger(__name__)

KNOWN_FIELDS = ("TaskId", "StartTime", "EndTime", "Vhost", "Domain", "App", "Stream", "Status")
_TEXT_FIELDS = ("Vhost", "Domain", "App", "Stream", "Status")
TIMESTAMP_TYPE = pa.timestamp("us", tz="UTC")
_KNOWN_STRUCT = pa.struct([(name, pa.string()) for name in KNOWN_FIELDS])
_STATUS_VALUES = pa.array(list(STATUS_CODES), pa.string())
_STATUS_CODE_VALUES = pa.array(list(STATUS_CODES.values()), pa.string())

EARLIEST_TIME: Final = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST_TIME: Final = datetime(2100, 1, 1, tzinfo=timezone.utc)
"""Times outside ``[EARLIEST_TIME, LATEST_TIME)`` are flagged and stored as null (the API's
text stays in ``data_issues``). Why these bounds: no recording task predates the service
(launched well after 2000) or is scheduled a lifetime ahead, so such a time is a
placeholder (``0001-01-01``, ``9999-12-31``), not data. And every part downstream must hold
it: pandas' nanosecond timestamps in the notebook end in 2262, Python's datetime at year
9999 (``9999-12-31T23:59:59+08:00`` shown in Asia/Shanghai overflows), and the analysis
SQL expands a task into its days and hours: 100 years is 876,000 hours at most, year 1 to
9999 is 88 million per task (issue 23: 4.8 GB before the report gave up)."""

PROJECT_COLUMNS: Final = frozenset(
    {
        *(name.lower() for name in ("Vhost", "Domain", "App", "Stream", "Status")),
        "task_id",
        "start_time",
        "end_time",
        "status_code",
        "data_issues",
        "seen_at",
        "deleted_at",  # added by the writer (writer.tasks_item)
        "account",  # added by the writer with an account label (writer.with_account)
    }
)
"""Every column of ``pull_record_tasks`` the project writes itself. A field the API adds
is never stored under one of these names (:func:`api_column`)."""
API_PREFIX: Final = "api_"

REJECT_COLUMNS: dict[str, pa.DataType] = {
    "reject_id": pa.string(),
    "reason": pa.string(),
    "raw_record": pa.string(),
    "page_num": pa.int64(),
    "seen_at": TIMESTAMP_TYPE,
}

_warned_statuses: set[str] = set()


def status_code(status: Any) -> str:
    """English code of an API status; ``unknown`` (with one warning per value) for new ones."""
    code = STATUS_CODES.get(status) if isinstance(status, str) else None
    if code is not None:
        return code
    if str(status) not in _warned_statuses:
        _warned_statuses.add(str(status))
        logger.warning(
            "Unknown task Status %r: kept as-is with status_code 'unknown' and re-read on "
            "every run until it is one of %s",
            status,
            ", ".join(STATUS_CODES),
        )
    return UNKNOWN_STATUS_CODE


def status_codes(statuses: pa.Array) -> pa.Array:
    """:func:`status_code` for a whole column, in Arrow; warns once per unknown value."""
    positions = pc.index_in(statuses, value_set=_STATUS_VALUES)
    codes = pc.fill_null(pc.take(_STATUS_CODE_VALUES, positions), UNKNOWN_STATUS_CODE)
    if positions.null_count:
        for unknown in pc.unique(pc.filter(statuses, pc.is_null(positions))).to_pylist():
            status_code(unknown)
    return codes


def snake_case(name: str) -> str:
    """``StartTime`` -> ``start_time``, for fields the API adds later."""
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"[^0-9a-zA-Z]+", "_", name).strip("_").lower() or "field"


def api_column(name: str) -> str:
    """The column for a field the API added: its snake_case name, or ``api_`` and that name
    when the name is one of :data:`PROJECT_COLUMNS` (``DeletedAt`` -> ``api_deleted_at``),
    so the API can never write into ``deleted_at``, ``account`` or ``seen_at``. Names that
    begin with ``api_`` get the prefix too (``ApiDeletedAt`` -> ``api_api_deleted_at``), so
    two fields never meet under one name this way."""
    column = snake_case(name)
    if column in PROJECT_COLUMNS or column.startswith(API_PREFIX):
        return API_PREFIX + column
    return column


_EARLIEST = pa.scalar(EARLIEST_TIME, TIMESTAMP_TYPE)
_RANGE_TEXT = f"{EARLIEST_TIME.year}..{LATEST_TIME.year - 1}"
_LATEST = pa.scalar(LATEST_TIME, TIMESTAMP_TYPE)


def _time_column(
    values: pa.Array | list[Any],
) -> tuple[pa.Array, list[datetime | None] | None, pa.Array]:
    """Arrow timestamps for ``values``, null where out of range; the Python values too when
    some had to be parsed one by one (the fast vectorised cast refuses the whole page on one
    bad value); and which values parsed but were out of range."""
    parsed: list[datetime | None] | None = None
    try:
        strings = values if isinstance(values, pa.Array) else pa.array(values, pa.string())
        times = strings.cast(TIMESTAMP_TYPE)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        raw = values.to_pylist() if isinstance(values, pa.Array) else values
        parsed = [parse_time(v) for v in raw]
        times = pa.array(parsed, TIMESTAMP_TYPE)
    in_range = pc.and_(pc.greater_equal(times, _EARLIEST), pc.less(times, _LATEST))
    out_of_range = pc.fill_null(pc.invert(in_range), False)
    if parsed is not None and None in parsed:
        raw = values.to_pylist() if isinstance(values, pa.Array) else values
        overflow = [p is None and overflows(v) for p, v in zip(parsed, raw, strict=True)]
        out_of_range = pc.or_(out_of_range, pa.array(overflow, pa.bool_()))
    if pc.any(out_of_range).as_py():
        times = pc.if_else(out_of_range, pa.scalar(None, TIMESTAMP_TYPE), times)
        if parsed is not None:
            parsed = [
                None if out else p for p, out in zip(parsed, out_of_range.to_pylist(), strict=True)
            ]
    return times, parsed, out_of_range


def _known_struct(tasks: list[Any]) -> pa.StructArray | None:
    """The documented fields converted in C by Arrow, when every record is an object whose
    values are strings or null (the usual page); ``None`` sends the page the careful way."""
    try:
        struct = pa.array(tasks, type=_KNOWN_STRUCT)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None
    return struct if struct.null_count == 0 else None


def _ids_usable(task_ids: pa.Array) -> bool:
    return (
        task_ids.null_count == 0
        and not pc.any(pc.equal(task_ids, "")).as_py()
        and not pc.any(pc.match_substring(task_ids, "\x00")).as_py()
    )


def _set_aside_rejects(
    records: list[Any], seen_at: datetime, page_nums: Sequence[int]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    tasks: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    for record, page_num in zip(records, page_nums, strict=True):
        reason = _reject_reason(record)
        if reason is None:
            tasks.append(record)
            continue
        raw = json.dumps(record, ensure_ascii=False, default=str, sort_keys=True)
        rejects.append(
            {
                # The same bad record is read on every run: one row per distinct record.
                "reject_id": hashlib.blake2b(raw.encode(), digest_size=16).hexdigest(),
                "reason": reason,
                "raw_record": raw[:10_000],
                "page_num": page_num,
                "seen_at": seen_at,
            }
        )
    return tasks, rejects


def _row_issues(
    task: dict[str, Any],
    start: datetime | None,
    end: datetime | None,
    out_of_range: tuple[bool, bool] = (False, False),
) -> str:
    issues = []
    for name, parsed, out in (
        ("StartTime", start, out_of_range[0]),
        ("EndTime", end, out_of_range[1]),
    ):
        raw = task.get(name)
        if raw is None or raw == "":
            issues.append(f"{name} missing")
        elif out:
            issues.append(f"{name} out of range {_RANGE_TEXT}: {str(raw)[:64]!r}")
        elif parsed is None:
            issues.append(f"{name} unparseable: {str(raw)[:64]!r}")
    if start is not None and end is not None and end < start:
        issues.append("EndTime before StartTime")
    for name in _TEXT_FIELDS:
        value = task.get(name)
        if value is None or value == "":
            issues.append(f"{name} missing")
        elif not isinstance(value, str):
            issues.append(f"{name} not a string")
        elif "\x00" in value:
            issues.append(f"{name} holds a NUL byte (stored as U+FFFD)")
    status = task.get("Status")
    if isinstance(status, str) and status and status not in STATUS_CODES:
        issues.append(f"Status unknown: {status[:32]!r}")
    return "; ".join(issues)


def _suspect_rows(columns: dict[str, pa.Array]) -> list[int]:
    """Rows that may have an issue, found with vectorised checks so clean pages cost little."""
    suspect = pc.or_(pc.is_null(columns["start_time"]), pc.is_null(columns["end_time"]))
    suspect = pc.or_(
        suspect, pc.fill_null(pc.less(columns["end_time"], columns["start_time"]), False)
    )
    suspect = pc.or_(suspect, pc.equal(columns["status_code"], UNKNOWN_STATUS_CODE))
    for name in _TEXT_FIELDS:
        column = columns[name.lower()]
        suspect = pc.or_(suspect, pc.fill_null(pc.equal(column, ""), True))
        suspect = pc.or_(suspect, pc.fill_null(pc.match_substring(column, "\x00"), False))
    return [int(i) for i in pc.indices_nonzero(suspect).to_pylist()]


def _without_nul(column: pa.Array) -> pa.Array:
    """``column`` with NUL bytes as U+FFFD: PostgreSQL refuses NUL in text, so one such
    value would fail every load there (the row's ``data_issues`` says it was replaced)."""
    if column.null_count == len(column) or not pc.any(pc.match_substring(column, "\x00")).as_py():
        return column
    return pc.replace_substring(column, "\x00", "\ufffd")


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _text_column(values: pa.Array | list[Any]) -> pa.Array:
    if isinstance(values, pa.Array):
        return values
    try:
        return pa.array(values, pa.string())
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return pa.array([_text(v) for v in values], pa.string())


def _as_datetime(value: pa.Scalar) -> datetime | None:
    result = value.as_py()
    return result if isinstance(result, datetime) else None


def _extra_column(values: list[Any]) -> pa.Array:
    """A column for a field the API added, always text: strings as they are, anything else
    as JSON. A type inferred from one batch could clash with the next batch or run (a
    number here, a string there) and wedge the load; text never does, and SQL casts it."""
    return pa.array([_text(v) for v in values], pa.string())


@dataclass
class ConvertedPage:
    """One page as Arrow: the tasks, the rejects, and counts for the run summary."""

    tasks: pa.Table
    rejects: list[dict[str, Any]] = field(default_factory=list)
    flagged: int = 0


def tasks_to_arrow(
    raw_tasks: Sequence[Any], seen_at: datetime, page_num: int | Sequence[int]
) -> ConvertedPage:
    """Convert API records, keeping every record as a task or a reject. ``page_num`` is the
    page all records came from, or each record's page."""
    tasks = list(raw_tasks)
    page_nums = [page_num] * len(tasks) if isinstance(page_num, int) else page_num
    struct = _known_struct(tasks)
    rejects: list[dict[str, Any]] = []
    if struct is None or not _ids_usable(struct.field("TaskId")):
        tasks, rejects = _set_aside_rejects(tasks, seen_at, page_nums)
        struct = _known_struct(tasks)
    fields: dict[str, pa.Array | list[Any]] = (
        {name: [t.get(name) for t in tasks] for name in KNOWN_FIELDS}
        if struct is None
        else {name: struct.field(name) for name in KNOWN_FIELDS}
    )
    starts, parsed_starts, starts_out = _time_column(fields["StartTime"])
    ends, parsed_ends, ends_out = _time_column(fields["EndTime"])
    columns: dict[str, pa.Array] = {
        "task_id": _text_column(fields["TaskId"]),
        "start_time": starts,
        "end_time": ends,
    }
    for name in _TEXT_FIELDS:
        columns[name.lower()] = _text_column(fields[name])
    columns["status_code"] = status_codes(columns["status"])

    issues: list[str | None] = [None] * len(tasks)
    flagged = 0
    for row in _suspect_rows(columns):
        start = parsed_starts[row] if parsed_starts else _as_datetime(starts[row])
        end = parsed_ends[row] if parsed_ends else _as_datetime(ends[row])
        out = (bool(starts_out[row].as_py()), bool(ends_out[row].as_py()))
        issues[row] = _row_issues(tasks[row], start, end, out) or None
        flagged += issues[row] is not None
    for name in _TEXT_FIELDS:
        columns[name.lower()] = _without_nul(columns[name.lower()])
    columns["data_issues"] = (
        pa.array(issues, pa.string()) if flagged else pa.nulls(len(tasks), pa.string())
    )
    columns["seen_at"] = pa.repeat(pa.scalar(seen_at, TIMESTAMP_TYPE), len(tasks))

    extra_names = sorted(set().union(*tasks) - set(KNOWN_FIELDS))
    for name in extra_names:
        column = api_column(name)
        while column in columns:  # two added fields with one snake_case name: FooBar, foo_bar
            column += "_"
        columns[column] = _without_nul(_extra_column([t.get(name) for t in tasks]))
    # task_id is the merge key and never null here; saying so in the Arrow schema keeps it
    # in line with the resource's column hints.
    schema = pa.schema(
        [pa.field(name, array.type, nullable=name != "task_id") for name, array in columns.items()]
    )
    table = pa.Table.from_arrays(list(columns.values()), schema=schema)
    return ConvertedPage(tasks=table, rejects=rejects, flagged=flagged)


def _reject_reason(record: Any) -> str | None:
    if not isinstance(record, dict):
        return f"record is a {type(record).__name__}, not an object"
    task_id = record.get("TaskId")
    if task_id is None or task_id == "":
        return "TaskId missing"
    if not isinstance(task_id, str):
        return f"TaskId is a {type(task_id).__name__}, not a string"
    if "\x00" in task_id:
        # PostgreSQL refuses NUL in text, and a TaskId cannot be changed the way a Domain
        # can (U+FFFD) without perhaps meeting another task's key.
        return "TaskId holds a NUL byte"
    return None
