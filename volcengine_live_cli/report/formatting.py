"""How values read on the page and in the captions: times in the report's zone, durations,
counts, and cells cut short."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo


def local(value: datetime, time_zone: str) -> datetime:
    """An instant as the naive wall-clock time of ``time_zone``, for plotting."""
    if value.tzinfo is None:
        return value
    return value.astimezone(ZoneInfo(time_zone)).replace(tzinfo=None)


def when(value: Any, time_zone: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        try:
            return f"{local(value, time_zone):%Y-%m-%d %H:%M}"
        except OverflowError:  # 9999-12-31 UTC is year 10000 east of Greenwich
            return f"{value:%Y-%m-%d %H:%M %Z}"
    return str(value)


CELL_CHARS = 200
"""Longest text shown in a table cell of the page; the full text is in the database."""


def shorten(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, the cut marked with an ellipsis."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def duration(value: timedelta) -> str:
    """``1 d 2 h``, ``3 h 05 min``, ``12 min``, ``-2 h 00 min``."""
    if abs(value) < timedelta(minutes=1):
        return "0 min"  # also a load that finished while "now" was being read
    sign, seconds = ("-" if value < timedelta(0) else ""), abs(int(value.total_seconds()))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{sign}{days} d {hours} h"
    if hours:
        return f"{sign}{hours} h {minutes:02d} min"
    return f"{sign}{minutes} min"


def cell(value: Any, time_zone: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, datetime):
        return when(value, time_zone)
    if isinstance(value, timedelta):
        return duration(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    if isinstance(value, (list, tuple)):
        return shorten(", ".join(str(v) for v in value), CELL_CHARS)
    return shorten(str(value), CELL_CHARS)


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
