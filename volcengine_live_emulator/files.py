"""The emulated ``DescribeRecordTaskFileHistory``: the files that finished recordings left.

The files are derived from the task list, deterministically (a hash of the seed and the
TaskId decides each task's fate), so a test can ask :class:`RecordFiles` what a loader must
find and what a reconciliation must report:

* a task ``已结束`` (finished) at the store's clock leaves files; tasks not started,
  recording (ongoing recordings are not listed), stopped (停用) or of unknown status leave
  none, nor do tasks whose times do not parse;
* of the finished tasks, about 1 in 16 left **no file** (``missing``), about 1 in 10 a
  **short** one (the stream ended early: 30 % to 90 % of the scheduled time), about 1 in 10
  was **cut** for 181 to 900 s (a cut of over 180 s starts a new file, so two files with a
  gap); the rest recorded in full (``complete``);
* every recording is written in segments of at most :data:`SEGMENT_SECONDS` (segmented
  recording: one file per segment, end to end);
* **orphans**: recordings no task describes (a recording preset, say), one every
  :data:`ORPHAN_EVERY_SECONDS` over the generated time range, on streams ``preset-NN`` that
  no task records; :meth:`RecordFiles.add_orphan` adds more.

A file shows once it has ended at the store's clock (``TaskStore.advance`` moves it), so a
recording that finishes between two runs appears between them.

Which rows a window selects is not documented; by default the recording's start in
``[DateFrom, DateTo]`` (both ends included), or with ``selection="overlap"`` any file whose
recording overlaps it. Row fields follow the SDK models: every value a string,
``StartTime``/``EndTime`` in Beijing time (``+08:00``), ``StartTimeUTC``/``EndTimeUTC`` in
UTC, left out of 1 file in 8 as older models do; ``Duration`` whole seconds as text (1 in 5
with three decimals).

Why not keep a file table in the store: a million generated tasks would need it filled
ahead; deriving the files from the tasks when asked (and caching them per store version)
costs nothing until the action is called, and can never disagree with the task list.
"""

from __future__ import annotations

import hashlib
import re
import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Final

from .binding import json_object, optional_string, required_int
from .data import FINISHED, TaskGenerator, format_rfc3339, parse_rfc3339
from .errors import ApiFailure
from .store import TaskStore

FILE_ACTION: Final = "DescribeRecordTaskFileHistory"
DEFAULT_FILE_RATE_LIMIT: Final = 10.0
"""Requests per second per account, as the API documents (a limit of its own)."""
MAX_SPAN_SECONDS: Final = 7 * 86400
"""``DateTo`` at most 7 days after ``DateFrom`` (exactly 7 days is accepted here)."""
MAX_FILE_PAGE_SIZE: Final = 1000
"""Not documented for 2023-01-01; the legacy SDK's ``[1, 1000]``."""
FILE_TYPES: Final = ("tos", "vod")
SELECTIONS: Final = ("start", "overlap")
SEGMENT_SECONDS: Final = 4 * 3600
CUT_MIN_SECONDS: Final = 181
CUT_MAX_SECONDS: Final = 900
ORPHAN_EVERY_SECONDS: Final = 2 * 86400
BUCKET: Final = "emulator-record"
_NAME = re.compile(r"[A-Za-z0-9_.\-]+")
_TEXT_LIMITS: Final = {"Vhost": None, "App": 30, "Stream": 100}


@dataclass(frozen=True)
class Recording:
    """One file's recording: where, when (epoch seconds), and which task made it."""

    vhost: str
    app: str
    stream: str
    start: int
    end: int
    task_id: str | None
    """None: a recording no task describes (an orphan)."""
    part: int = 0

    def row(self, file_type: str, seed: int) -> dict[str, str]:
        """The file as the API lists it, for storage ``file_type``."""
        digest = _digest(seed, f"file/{self.vhost}/{self.app}/{self.stream}/{self.start}")
        file_format = ("hls", "hls", "flv", "mp4")[digest % 4]
        extension = {"hls": "m3u8"}.get(file_format, file_format)
        stamp = datetime.fromtimestamp(self.start, timezone.utc).strftime("%Y%m%d%H%M%S")
        name = f"{self.stream}-{stamp}.{extension}"
        seconds = self.end - self.start
        row = {
            "App": self.app,
            "Bucket": BUCKET if file_type == "tos" else "",
            "Duration": f"{seconds}.000" if (digest >> 8) % 5 == 0 else str(seconds),
            "EndTime": _beijing(self.end),
            "FileName": name,
            "Format": file_format,
            "Path": f"record/{self.app}/{self.stream}/{name}" if file_type == "tos" else "",
            "StartTime": _beijing(self.start),
            "Stream": self.stream,
            "Vhost": self.vhost,
            "Vid": f"v0{digest:016x}"[:18] if file_type == "vod" else "",
        }
        if (digest >> 16) % 8 != 0:
            row["StartTimeUTC"] = _utc(self.start)
            row["EndTimeUTC"] = _utc(self.end)
        return row


@dataclass(frozen=True)
class Outcome:
    """What became of one finished task's recording."""

    task_id: str
    kind: str
    """``complete``, ``short``, ``cut`` or ``missing``."""
    vhost: str
    app: str
    stream: str
    scheduled_seconds: int
    recordings: tuple[Recording, ...]

    @property
    def recorded_seconds(self) -> int:
        return sum(r.end - r.start for r in self.recordings)


@dataclass(frozen=True)
class FileQuery:
    """A checked request body."""

    date_from: float
    date_to: float
    page_num: int
    page_size: int
    vhost: str | None = None
    app: str | None = None
    stream: str | None = None
    file_type: str = "tos"


def parse_file_request(body: bytes) -> FileQuery:
    """A request body checked by every documented rule: ``DateFrom``, ``DateTo``,
    ``PageNum``, ``PageSize`` required; RFC 3339 dates with an offset, ``DateTo`` later
    than ``DateFrom`` and at most 7 days after it; ``Stream`` only with ``App``; ``Type``
    ``tos`` or ``vod``. Wrong JSON types are ``InvalidParam.BindError``, broken rules
    ``InvalidParam`` naming the parameter."""
    data = json_object(body)
    dates = [_date(data, name) for name in ("DateFrom", "DateTo")]
    page_num, page_size = (required_int(data, name) for name in ("PageNum", "PageSize"))
    if page_num < 1:
        raise ApiFailure("InvalidParam", f"PageNum must be a positive integer, got {page_num}")
    if not 1 <= page_size <= MAX_FILE_PAGE_SIZE:
        raise ApiFailure(
            "InvalidParam",
            f"PageSize must be between 1 and {MAX_FILE_PAGE_SIZE}, got {page_size}",
        )
    date_from, date_to = dates
    if date_to <= date_from:
        raise ApiFailure("InvalidParam", "DateTo must be later than DateFrom")
    if date_to - date_from > MAX_SPAN_SECONDS:
        raise ApiFailure(
            "InvalidParam", "the time range between DateFrom and DateTo must not exceed 7 days"
        )
    names = {name: _name(data, name) for name in _TEXT_LIMITS}
    if names["Stream"] is not None and names["App"] is None:
        raise ApiFailure("InvalidParam", "Stream requires App")
    file_type = optional_string(data, "Type") or "tos"
    if file_type not in FILE_TYPES:
        raise ApiFailure("InvalidParam", f"Type must be tos or vod, got {file_type!r}")
    return FileQuery(
        date_from,
        date_to,
        page_num,
        page_size,
        names["Vhost"],
        names["App"],
        names["Stream"],
        file_type,
    )


@dataclass
class _Snapshot:
    version: int
    outcomes: list[Outcome]
    recordings: list[Recording]
    starts: list[int]
    """Sorted with :attr:`recordings`: their start times, for bisecting a window."""


@dataclass
class RecordFiles:
    """The files of a store's finished tasks, plus orphans (see the module docstring)."""

    store: TaskStore
    seed: int
    selection: str = "start"
    extra_orphans: list[Recording] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _snapshot: _Snapshot | None = field(default=None, repr=False)

    def add_orphan(
        self, vhost: str, app: str, stream: str, start: datetime, end: datetime
    ) -> Recording:
        """A recording no task describes, listed once it has ended at the store's clock."""
        orphan = Recording(vhost, app, stream, _epoch(start), _epoch(end), None)
        with self._lock:
            self.extra_orphans.append(orphan)
            self._snapshot = None
        return orphan

    def outcomes(self) -> list[Outcome]:
        """What became of every task finished at the store's clock."""
        return list(self._current().outcomes)

    def listed(self) -> list[Recording]:
        """Every recording whose file the API lists now, oldest start first."""
        return list(self._current().recordings)

    def rows(self, file_type: str = "tos") -> list[dict[str, str]]:
        """Every file as the API lists it now."""
        return [r.row(file_type, self.seed) for r in self.listed()]

    def page(self, query: FileQuery) -> tuple[list[dict[str, str]], int]:
        """The rows of one page of ``query``'s window, and how many rows the window has."""
        snapshot = self._current()
        if self.selection == "overlap":  # a file longer than the span starts before it
            candidates = snapshot.recordings[: bisect_right(snapshot.starts, query.date_to)]
            chosen = [r for r in candidates if r.end >= query.date_from]
        else:
            low = bisect_left(snapshot.starts, query.date_from)
            high = bisect_right(snapshot.starts, query.date_to)
            chosen = snapshot.recordings[low:high]
        chosen = [r for r in chosen if _matches(r, query)]
        first = (query.page_num - 1) * query.page_size
        page = chosen[first : first + query.page_size]
        return [r.row(query.file_type, self.seed) for r in page], len(chosen)

    def _current(self) -> _Snapshot:
        version = self.store.version
        with self._lock:
            snapshot = self._snapshot
            if snapshot is None or snapshot.version != version:
                snapshot = self._snapshot = self._build(version)
            return snapshot

    def _build(self, version: int) -> _Snapshot:
        clock = self.store.clock
        outcomes = [
            outcome for task in self.store.all_tasks() if (outcome := self._outcome(task, clock))
        ]
        recordings = [r for outcome in outcomes for r in outcome.recordings]
        recordings += [r for r in self._orphans() if r.end <= clock]
        recordings.sort(key=lambda r: (r.start, r.vhost, r.app, r.stream, r.part))
        return _Snapshot(version, outcomes, recordings, [r.start for r in recordings])

    def _outcome(self, task: Mapping[str, Any], clock: float) -> Outcome | None:
        task_id, names = task.get("TaskId"), [task.get(k) for k in ("Vhost", "App", "Stream")]
        start, end = parse_rfc3339(task.get("StartTime")), parse_rfc3339(task.get("EndTime"))
        if task.get("Status") != FINISHED or start is None or end is None or end <= start:
            return None
        if not isinstance(task_id, str) or not all(isinstance(n, str) and n for n in names):
            return None
        vhost, app, stream = (str(n) for n in names)
        begin, finish = int(start), int(end)
        scheduled = finish - begin
        kind = self.fate(task_id, scheduled)
        draw = _digest(self.seed, f"task/{task_id}")
        pieces: list[tuple[int, int]] = []
        if kind == "short":
            share = 30 + (draw >> 8) % 61  # percent of the scheduled time
            pieces = [(begin, begin + max(60, scheduled * share // 100))]
        elif kind == "cut":
            gap = CUT_MIN_SECONDS + (draw >> 16) % (CUT_MAX_SECONDS - CUT_MIN_SECONDS + 1)
            at = begin + scheduled * (20 + (draw >> 32) % 51) // 100
            pieces = [(begin, at), (at + gap, finish)]
        elif kind == "complete":
            pieces = [(begin, finish)]
        recordings = tuple(
            Recording(vhost, app, stream, piece_start, piece_end, task_id, part)
            for part, (piece_start, piece_end) in enumerate(_segments(pieces))
            if piece_end <= clock
        )
        return Outcome(task_id, kind, vhost, app, stream, scheduled, recordings)

    def fate(self, task_id: str, scheduled_seconds: int) -> str:
        """What becomes of the recording of task ``task_id`` once it has finished:
        ``missing``, ``short``, ``cut`` or ``complete`` (a test picks a TaskId by it)."""
        roll = _digest(self.seed, f"task/{task_id}") % 160
        if roll < 10:
            return "missing"
        if roll < 26 and scheduled_seconds >= 120:
            return "short"
        if roll < 42 and scheduled_seconds >= 2 * CUT_MAX_SECONDS:
            return "cut"
        return "complete"

    def _orphans(self) -> Iterator[Recording]:
        generator: TaskGenerator = self.store.generator
        catalog = generator.catalog
        first = generator.anchor - 90 * 86400
        for number, start in enumerate(range(first, generator.anchor, ORPHAN_EVERY_SECONDS)):
            draw = _digest(self.seed, f"orphan/{number}")
            spec = catalog[draw % len(catalog)]
            begin = start + (draw >> 8) % 86400
            duration = 600 + (draw >> 32) % 7200
            yield Recording(
                spec.vhost, spec.app, f"preset-{number:02d}", begin, begin + duration, None
            )
        yield from self.extra_orphans


def _segments(pieces: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """Each piece of recording cut into files of at most ``SEGMENT_SECONDS``, end to end."""
    for start, end in pieces:
        while end - start > SEGMENT_SECONDS:
            yield start, start + SEGMENT_SECONDS
            start += SEGMENT_SECONDS
        yield start, end


def _matches(recording: Recording, query: FileQuery) -> bool:
    return (
        (query.vhost is None or recording.vhost == query.vhost)
        and (query.app is None or recording.app == query.app)
        and (query.stream is None or recording.stream == query.stream)
    )


def _digest(seed: int, text: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{seed}/{text}".encode(), digest_size=8).digest(), "big")


def _beijing(epoch: int) -> str:
    return format_rfc3339(datetime.fromtimestamp(epoch, timezone.utc), local=True)


def _utc(epoch: int) -> str:
    return format_rfc3339(datetime.fromtimestamp(epoch, timezone.utc))


def _epoch(moment: datetime) -> int:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def _date(data: Mapping[str, Any], name: str) -> float:
    value = optional_string(data, name)
    if value is None:
        raise ApiFailure("InvalidParam", f"{name} is required")
    moment = parse_rfc3339(value)
    if moment is None:
        raise ApiFailure(
            "InvalidParam", f"{name} must be an RFC 3339 time with an offset, got {value!r}"
        )
    return moment


def _name(data: Mapping[str, Any], name: str) -> str | None:
    value = optional_string(data, name)
    limit = _TEXT_LIMITS[name]
    if value is not None and (not _NAME.fullmatch(value) or (limit and len(value) > limit)):
        size = f"1 to {limit} " if limit else ""
        raise ApiFailure(
            "InvalidParam", f"{name} must be {size}characters from A-Z a-z 0-9 _ - ., got {value!r}"
        )
    return value
