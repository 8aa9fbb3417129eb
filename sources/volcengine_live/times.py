"""Reading times: a setting or a state value (:func:`to_utc`), and an API timestamp
(:func:`parse_time`). The lowest layer but one (it imports nothing of the source), so that
settings, state, records and the file history read times alike.

Why not dlt's time helpers: they are internal and change between releases (the source used
``ensure_datetime_in_tz``, new in dlt 1.28), so the standard library reads the string, in
the narrower ISO form Python 3.10's ``fromisoformat`` knows.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any


def to_utc(value: datetime | str | None) -> datetime | None:
    """An aware UTC datetime from a datetime or an ISO 8601 string; naive means UTC.
    Raises ``ValueError`` for a string that is not a time."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        text = value.strip()
        if text[-1:] in ("Z", "z"):
            text = text[:-1] + "+00:00"
        value = datetime.fromisoformat(text)
    moment = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value
    moment = moment.astimezone(timezone.utc)
    # A datetime subclass (pendulum's, from dlt's state) compares and serialises its own way.
    return datetime(*moment.timetuple()[:6], moment.microsecond, tzinfo=timezone.utc)


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as an aware UTC datetime; ``None`` when it is not one.

    Both ``2023-06-30T15:04:05+08:00`` and ``2023-06-30T15:04:05Z`` are accepted; a time
    without an offset is refused rather than guessed. Out of range (``records.EARLIEST_TIME``)
    is the caller's business: this parses what Python can hold.
    """
    try:
        return _parse_aware(value)
    except (ValueError, OverflowError):  # OverflowError: 9999-12-31T23:59:59-08:00 in UTC
        return None


def _parse_aware(value: Any) -> datetime | None:
    """:func:`parse_time`, raising ``OverflowError`` for a time past what Python holds."""
    if not isinstance(value, str):
        return None
    parsed = datetime.fromisoformat(_as_python_310_iso(value.strip()))
    if parsed.tzinfo is None:
        return None
    return parsed.astimezone(timezone.utc)


def overflows(value: Any) -> bool:
    """Whether ``value`` is a time, but one past year 9999 once in UTC."""
    try:
        _parse_aware(value)
    except OverflowError:
        return True
    except ValueError:
        return False
    return False


_FRACTION = re.compile(r"(T\d{2}:\d{2}:\d{2})\.(\d{1,6})")


def _as_python_310_iso(value: str) -> str:
    """``value`` in the narrower ISO form Python 3.10's ``fromisoformat`` reads: ``Z`` as
    ``+00:00`` and fractions padded to 6 digits (3.11 reads both as they are)."""
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    return _FRACTION.sub(lambda m: f"{m.group(1)}.{m.group(2).ljust(6, '0')}", value, count=1)
