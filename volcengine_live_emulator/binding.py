"""Go-like binding of a JSON request body, as the real service's: keys match
case-insensitively, null or absent means unset (or the default), a wrong JSON type is
``InvalidParam.BindError``; the rules of each action (ranges, required fields) are its own.

One copy for every action, so ``ListPullRecordTask``, its filters and
``DescribeRecordTaskFileHistory`` bind a body the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .errors import ApiFailure


def json_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object (an empty body is ``{}``)."""
    try:
        data = json.loads(body) if body.strip() else {}
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiFailure(
            "InvalidParam.BindError",
            f"Request parameter error, please check input data: body is not JSON ({exc})",
        ) from None
    if not isinstance(data, dict):
        raise ApiFailure(
            "InvalidParam.BindError",
            "Request parameter error, please check input data: body must be a JSON object",
        )
    return data


def field_value(data: Mapping[str, Any], name: str) -> Any:
    """``data[name]``, its key matched case-insensitively as Go's JSON binding does."""
    if name in data:
        return data[name]
    matches = [value for key, value in data.items() if key.lower() == name.lower()]
    return matches[-1] if matches else None


def bind_error(name: str, what: str, value: Any) -> ApiFailure:
    """``InvalidParam.BindError`` for a field of the wrong JSON type."""
    return ApiFailure(
        "InvalidParam.BindError",
        f"Request parameter error, please check input data: {name} must be {what}, "
        f"got {json.dumps(value, ensure_ascii=False)}",
    )


def required_int(data: Mapping[str, Any], name: str) -> int:
    """An integer field that must be there."""
    value = field_value(data, name)
    if value is None:
        raise ApiFailure("InvalidParam", f"{name} is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise bind_error(name, "an integer", value)
    return value


def optional_string(data: Mapping[str, Any], name: str) -> str | None:
    """A string field; absent, null or empty mean unset."""
    value = field_value(data, name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise bind_error(name, "a string", value)
    return value
