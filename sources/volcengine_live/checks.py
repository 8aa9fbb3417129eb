"""How one configured value is checked: each function takes a setting's name and its value
as configured (a TOML value, an environment string, a Python object) and returns it
converted, or raises :class:`ConfigurationError` naming the setting and where to fix it.

Below ``settings.py``, which holds the settings themselves (defaults, ranges, the API's
fixed facts) and passes the bounds in; this module knows only the section they live in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .errors import ConfigurationError
from .times import to_utc

SECTION = "sources.volcengine_live"


def where_to_fix(name: str) -> str:
    """Where a user sets ``name``: the config section and the environment variable."""
    variable = f"{SECTION}.{name}".upper().replace(".", "__")
    return f"Fix [{SECTION}] {name} in .dlt/config.toml, or the environment variable {variable}."


def refuse(name: str, value: Any, what: str) -> ConfigurationError:
    return ConfigurationError(f"{name} {value!r} is not {what}. {where_to_fix(name)}")


def out_of_range(name: str, value: Any, bound: str) -> ConfigurationError:
    return ConfigurationError(
        f"{name} {value!r} is out of range: it must be {bound}. {where_to_fix(name)}"
    )


def whole(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """A whole number (at least ``minimum``, at most ``maximum``): an int, an integral
    float, or such a string."""
    number = from_text(name, value, int, "a whole number")
    if isinstance(number, float) and number.is_integer():
        number = int(number)
    if not isinstance(number, int) or isinstance(number, bool):
        raise refuse(name, value, "a whole number")
    if minimum is not None and number < minimum:
        bound = f"at least {minimum}" if maximum is None else f"{minimum} to {maximum}"
        raise out_of_range(name, value, bound)
    if maximum is not None and number > maximum:
        bound = f"at most {maximum}" if minimum is None else f"{minimum} to {maximum}"
        raise out_of_range(name, value, bound)
    return number


def number(
    name: str, value: Any, minimum: float, above: bool = False, maximum: float | None = None
) -> float:
    """A finite number at least ``minimum`` (above it, with ``above``), at most
    ``maximum``."""
    number = from_text(name, value, float, "a number")
    if isinstance(number, bool) or not isinstance(number, (int, float)):
        raise refuse(name, value, "a number")
    if not math.isfinite(number):
        raise refuse(name, value, "a finite number")
    low = f"more than {minimum:g}" if above else f"at least {minimum:g}"
    bound = low if maximum is None else f"{low} and at most {maximum:g}"
    if number < minimum or (above and number == minimum):
        raise out_of_range(name, value, bound)
    if maximum is not None and number > maximum:
        raise out_of_range(name, value, bound)
    return float(number)


def optional_seconds(name: str, value: Any, maximum: float) -> float | None:
    """Seconds more than 0 and at most ``maximum``; ``None``, ``""`` or ``"none"``: no
    limit."""
    if is_none(value):
        return None
    return number(name, value, 0, above=True, maximum=maximum)


def from_text(name: str, value: Any, parse: Callable[[str], Any], what: str) -> Any:
    """``value`` as it is, or for a string (an environment variable) what ``parse`` reads."""
    if not isinstance(value, str):
        return value
    try:
        return parse(value.strip())
    except ValueError:
        raise refuse(name, value, what) from None


def rate(value: Any, name: str, minimum: float) -> float | None:
    """Requests per second, at least ``minimum``; ``None``, 0 or ``"none"`` mean no
    client-side cap."""
    if is_none(value):
        return None
    rate = number(name, value, 0)
    if rate and rate < minimum:
        # The limiter's window holds ceil(rate) requests, none at all for a rate within
        # 1e-9 of 0 (an IndexError); and one request in ten seconds is slower than any
        # account needs, so a smaller rate is a typo.
        raise out_of_range(
            name,
            value,
            f"at least {minimum:g} (one request every {1 / minimum:g} s), or 0 / none for no cap",
        )
    return rate or None


def is_none(value: Any) -> bool:
    """No value: ``None``, or an empty or ``"none"`` string (an environment variable)."""
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))


def page_size(name: str, value: Any, maximum: int) -> int:
    size = whole(name, value)
    if not 1 <= size <= maximum:
        raise ConfigurationError(
            f"{name} {value} is out of range: the API takes 1 to {maximum}. " + where_to_fix(name)
        )
    return size


def flag(name: str, value: Any) -> bool:
    """True or false, also as the text an environment variable holds (true/false, 1/0)."""
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.strip().lower() in ("true", "1", "yes")
    if not isinstance(value, bool):
        raise refuse(name, value, "true or false")
    return value


FILTER_VALUE = re.compile(r"[A-Za-z0-9_.\-]+")


def filters(values: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """The filters of ``names`` that are set: each a name of letters, digits, ``_ - .``
    (what the API allows in a Vhost, App or Stream); unset (None or empty) ones left out."""
    checked: dict[str, str] = {}
    for name in names:
        value = values.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if not isinstance(value, str) or not FILTER_VALUE.fullmatch(value.strip()):
            raise refuse(name, value, "a name of letters, digits, _, - and .")
        checked[name] = value.strip()
    return checked


def choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """One of ``choices``, as given or in another case, spaces around it ignored."""
    choice = value.strip().lower() if isinstance(value, str) else None
    if choice not in choices:
        raise refuse(name, value, "one of " + ", ".join(repr(c) for c in choices))
    return choice


def text(name: str, value: Any) -> str:
    """A non-empty string, without the spaces or line break a copy-paste brings along
    (a URL or region with them fails later with a message that hides the cause)."""
    if not isinstance(value, str) or not value.strip():
        raise refuse(name, value, "a non-empty string")
    return value.strip()


def time(name: str, value: Any) -> datetime | None:
    if value is not None and not isinstance(value, (str, datetime)):
        raise refuse(name, value, "an ISO 8601 time such as 2024-01-01T00:00:00+08:00")
    try:
        return to_utc(value)
    except ValueError:
        raise refuse(name, value, "an ISO 8601 time such as 2024-01-01T00:00:00+08:00") from None
