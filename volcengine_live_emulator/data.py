"""Seeded, lazily generated recording tasks, serialised straight to JSON bytes.

A generated task is a pure function of ``(seed, index, anchor)`` plus the status clock, so a
million tasks cost nothing until a page asks for them, and the same seed always yields the
same tasks. Index ``0`` is the oldest-created task, ``count - 1`` the newest.

Rows are built as UTF-8 JSON fragments with the keys in alphabetical order, the way the real
service (a Go ``map`` marshalled to JSON) writes them in the documented example.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

STOPPED = "停用"
NOT_STARTED = "未开始"
RECORDING = "生效中"
FINISHED = "已结束"
STATUSES = (STOPPED, NOT_STARTED, RECORDING, FINISHED)

# Forward order of the life cycle; 停用 is terminal and never re-derived from times.
LIFECYCLE_RANK = {NOT_STARTED: 0, RECORDING: 1, FINISHED: 2}

APPS = ("live", "edu", "game", "sports")
DOMAIN_COUNT = 4
STREAM_COUNT = 320

PAST_SECONDS = 90 * 86400
"""Generated StartTimes begin this long before the anchor..."""
FUTURE_SECONDS = 14 * 86400
"""...and end this long after it."""
START_JITTER_SECONDS = 6 * 3600
"""Creation order and StartTime agree only roughly, as they do for real schedules."""

STOPPED_PER_MILLE = 40
LOCAL_STYLE_PER_TEN = 7
"""7 in 10 tasks write ``+08:00`` (Beijing time), the others ``Z`` (UTC)."""

BEIJING = timezone(timedelta(hours=8))
_MASK64 = (1 << 64) - 1
_ID_MIX = 0x9E3779B97F4A7C15
_STREAM_TABLE_SIZE = 4096  # a power of two: the hot loop masks instead of dividing
_DIGEST_FIELDS = struct.Struct("<Q4I")
"""How a task's 32-byte digest is used: id bits, then stream, duration, start, flag draws."""


@dataclass(frozen=True)
class StreamSpec:
    """One recorded stream: where it is pushed or pulled, under which app."""

    vhost: str
    domain: str
    app: str
    stream: str


def build_catalog(seed: int) -> list[StreamSpec]:
    """A few hundred streams over ``DOMAIN_COUNT`` domain spaces, deterministic in ``seed``.

    Most streams use the vhost's own domain (Vhost == Domain); a minority are recorded from a
    separate push or pull domain of the same vhost.
    """
    rng = random.Random(f"catalog-{seed}")
    streams: list[StreamSpec] = []
    names = {
        "live": ("livestream", "room", "channel"),
        "edu": ("class-math", "class-english", "lecture", "course"),
        "game": ("match", "esports", "gameplay"),
        "sports": ("football", "basketball", "tennis", "marathon"),
    }
    for number in range(STREAM_COUNT):
        n = rng.randint(1, DOMAIN_COUNT)
        vhost = f"live.example-{n}.com"
        roll = rng.random()
        if roll < 0.80:
            domain = vhost
        elif roll < 0.90:
            domain = f"push.example-{n}.com"
        else:
            domain = f"pull.example-{n}.com"
        app = rng.choices(APPS, weights=(5, 3, 2, 2))[0]
        stream = f"{rng.choice(names[app])}{number:03d}"
        streams.append(StreamSpec(vhost, domain, app, stream))
    return streams


def _stream_table(seed: int, count: int) -> list[int]:
    """Maps a uniform draw to a stream index with a Zipf-like skew: a few streams are
    recorded very often, most now and then."""
    rng = random.Random(f"popularity-{seed}")
    order = list(range(count))
    rng.shuffle(order)
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(count)]
    total = sum(weights)
    cumulative: list[float] = []
    acc = 0.0
    for weight in weights:
        acc += weight / total
        cumulative.append(acc)
    table = []
    for slot in range(_STREAM_TABLE_SIZE):
        rank = min(bisect_right(cumulative, (slot + 0.5) / _STREAM_TABLE_SIZE), count - 1)
        table.append(order[rank])
    return table


_HMS: list[str] = []


def _hms_table() -> list[str]:
    # 86,400 short strings (a few MB) make formatting a timestamp two lookups.
    if not _HMS:
        _HMS.extend(
            f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)
        )
    return _HMS


class TimestampFormatter:
    """RFC 3339 at one-second precision, in ``Z`` or ``+08:00`` style, from epoch seconds."""

    def __init__(self) -> None:
        self._days: dict[int, str] = {}
        self._hms = _hms_table()

    def _day(self, day: int) -> str:
        text = self._days.get(day)
        if text is None:
            text = (datetime(1970, 1, 1) + timedelta(days=day)).strftime("%Y-%m-%dT")
            self._days[day] = text
        return text

    def utc(self, epoch: int) -> str:
        day, second = divmod(epoch, 86400)
        return f"{self._day(day)}{self._hms[second]}Z"

    def beijing(self, epoch: int) -> str:
        day, second = divmod(epoch + 8 * 3600, 86400)
        return f"{self._day(day)}{self._hms[second]}+08:00"


def format_rfc3339(moment: datetime, local: bool = False) -> str:
    """A datetime as the API writes it; naive datetimes are taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    if local:
        return moment.astimezone(BEIJING).strftime("%Y-%m-%dT%H:%M:%S+08:00")
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(value: object) -> float | None:
    """Epoch seconds of an RFC 3339 string, or None when it is not one (bad data is data)."""
    if not isinstance(value, str) or len(value) < 19:
        return None
    text = value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return moment.timestamp()


def status_at(start: float, end: float, clock: float) -> str:
    """The life-cycle status a task with these times has at ``clock``."""
    if clock < start:
        return NOT_STARTED
    if clock < end:
        return RECORDING
    return FINISHED


def dumps_row(record: Mapping[str, Any]) -> bytes:
    """A record as the API serialises it: compact UTF-8 JSON, keys sorted."""
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()


class TaskGenerator:
    """Generates task ``index`` of a seeded population on demand.

    ``anchor`` (epoch seconds) places the time range: StartTimes run from ``anchor - 90 days``
    to ``anchor + 14 days`` in creation order, jittered. ``clock`` decides statuses.
    """

    def __init__(self, seed: int, count: int, anchor: float) -> None:
        self.seed = seed
        self.count = count
        self.anchor = int(anchor)
        self.catalog = build_catalog(seed)
        self._stream_of = _stream_table(seed, len(self.catalog))
        self._key = hashlib.sha256(f"volcengine-live-emulator/{seed}".encode()).digest()[:32]
        self._hasher = hashlib.blake2b(key=self._key)
        self._fmt = TimestampFormatter()
        # Per stream, the constant JSON text around the varying fields (keys sorted).
        self._pieces = [
            (
                f'{{"App":"{s.app}","Domain":"{s.domain}","EndTime":"',
                f'","Stream":"{s.stream}","TaskId":"',
                f'","Vhost":"{s.vhost}"}}',
            )
            for s in self.catalog
        ]
        self._first = self.anchor - PAST_SECONDS
        self._span = PAST_SECONDS + FUTURE_SECONDS

    def _digest(self, index: int) -> bytes:
        h = self._hasher.copy()
        h.update(index.to_bytes(8, "little"))
        return h.digest()

    def task_id(self, index: int) -> str:
        """32 hex characters that look random yet encode ``index`` (see :meth:`index_of`)."""
        prefix = self._digest(index)[:8]
        return prefix.hex() + format(index ^ _id_mask(prefix), "016x")

    def index_of(self, task_id: str) -> int | None:
        """The index whose generated TaskId is ``task_id``, or None: an O(1) reverse lookup,
        so updating one task of a million needs no index of all ids."""
        if len(task_id) != 32:
            return None
        try:
            prefix = bytes.fromhex(task_id[:16])
            index = int(task_id[16:], 16) ^ _id_mask(prefix)
        except ValueError:
            return None
        if not 0 <= index < self.count or self.task_id(index) != task_id:
            return None
        return index

    def times(self, index: int) -> tuple[int, int, bool, bool]:
        """``(start, end, stopped, local_style)`` of task ``index``."""
        digest = self._digest(index)
        return self._times(index, digest)

    def _times(self, index: int, digest: bytes) -> tuple[int, int, bool, bool]:
        _, _, u_dur, u_start, u_flags = _DIGEST_FIELDS.unpack_from(digest)
        begin = self._first + (index * self._span) // max(self.count, 1)
        begin += (u_start % (2 * START_JITTER_SECONDS)) - START_JITTER_SECONDS
        if (u_start >> 20) % 10 < 4:
            begin -= begin % 300  # scheduled recordings like round times
        cls = u_dur % 1000
        spread = u_dur >> 10
        if cls < 550:
            duration = 300 + spread % (115 * 60)  # 5 min .. 2 h
        elif cls < 900:
            duration = 7200 + spread % (6 * 3600)  # 2 h .. 8 h
        elif cls < 975:
            duration = 8 * 3600 + spread % (16 * 3600)  # 8 h .. 24 h
        else:
            duration = 86400 + spread % (4 * 86400)  # 1 .. 5 days
        stopped = u_flags % 1000 < STOPPED_PER_MILLE
        local = (u_flags >> 10) % 10 < LOCAL_STYLE_PER_TEN
        return begin, begin + duration, stopped, local

    def fragment(self, index: int, clock: float) -> bytes:
        """Task ``index`` as the JSON bytes a page carries, its status taken at ``clock``."""
        return self.fragments(index, index + 1, clock)[0]

    def fragments(self, start: int, stop: int, clock: float) -> list[bytes]:
        """Fragments of tasks ``start .. stop - 1``, statuses taken at ``clock``.

        This loop is the emulator's hot path when pages are not cached, so it is written
        flat: the same arithmetic as :meth:`times`, with every lookup bound to a local.
        """
        out: list[bytes] = []
        append = out.append
        hasher = self._hasher
        first, span, count = self._first, self._span, max(self.count, 1)
        jitter2, jitter = 2 * START_JITTER_SECONDS, START_JITTER_SECONDS
        pieces, stream_of = self._pieces, self._stream_of
        utc, beijing = self._fmt.utc, self._fmt.beijing
        unpack = _DIGEST_FIELDS.unpack_from
        for index in range(start, stop):
            h = hasher.copy()
            h.update(index.to_bytes(8, "little"))
            digest = h.digest()
            id_bits, u_stream, u_dur, u_start, u_flags = unpack(digest)
            begin = first + (index * span) // count + (u_start % jitter2) - jitter
            if (u_start >> 20) % 10 < 4:
                begin -= begin % 300
            cls = u_dur % 1000
            spread = u_dur >> 10
            if cls < 550:
                finish = begin + 300 + spread % 6900
            elif cls < 900:
                finish = begin + 7200 + spread % 21600
            elif cls < 975:
                finish = begin + 28800 + spread % 57600
            else:
                finish = begin + 86400 + spread % 345600
            if u_flags % 1000 < STOPPED_PER_MILLE:
                status = STOPPED
            elif clock < begin:
                status = NOT_STARTED
            elif clock < finish:
                status = RECORDING
            else:
                status = FINISHED
            head, middle, tail = pieces[stream_of[u_stream & 4095]]
            fmt = beijing if (u_flags >> 10) % 10 < LOCAL_STYLE_PER_TEN else utc
            id_low = index ^ ((id_bits * _ID_MIX) & _MASK64)
            append(
                f'{head}{fmt(finish)}","StartTime":"{fmt(begin)}","Status":"{status}'
                f"{middle}{digest[:8].hex()}{id_low:016x}{tail}".encode()
            )
        return out

    def record(self, index: int, clock: float) -> dict[str, Any]:
        """Task ``index`` as a dict, exactly as a page would carry it."""
        value: dict[str, Any] = json.loads(self.fragment(index, clock))
        return value


def _id_mask(prefix: bytes) -> int:
    return (int.from_bytes(prefix, "little") * _ID_MIX) & _MASK64
