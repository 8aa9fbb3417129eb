"""Every setting is checked before any request: a value dlt cannot convert to the
argument's type is refused by dlt naming the setting; a value out of range or negative (or
of the wrong type, passed from Python) is refused by the source with a ConfigurationError
that names the setting and where to fix it; values written as environment strings are read
as numbers."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

import pytest
import tomllib
from dlt.common.configuration.exceptions import ConfigValueCannotBeCoercedException

from volcengine_live import ConfigurationError, volcengine_live_source
from volcengine_live.settings import SourceSettings

from helpers import credentials

ENDPOINT = "http://127.0.0.1:9"  # never contacted: sources are only built here
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("page_size", "abc"),
        ("page_size", "1.5"),
        ("lookback_hours", "abc"),
        ("requests_per_second", "fast"),
        ("max_attempts", "true"),
        ("initial_start_time", "yesterday"),
    ],
)
def test_a_value_of_the_wrong_type_in_the_environment_is_refused_by_dlt_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"SOURCES__VOLCENGINE_LIVE__{name.upper()}", value)
    with pytest.raises(ConfigValueCannotBeCoercedException) as refused:
        volcengine_live_source(credentials=credentials(), endpoint=ENDPOINT)
    assert refused.value.field_name == name and f"`{name}`" in str(refused.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("page_size", "0"),
        ("page_size", "501"),
        ("lookback_hours", "-1"),
        ("requests_per_second", "-5"),
        ("requests_per_second", "1e-9"),  # was an IndexError in the rate limiter mid-run
        ("lookback_hours", "1e9"),  # was an OverflowError computing the window mid-run
        ("request_timeout", "1e12"),  # was an OverflowError from the socket
        ("max_concurrency", "-1"),
        ("max_concurrency", "0"),
        ("request_timeout", "0"),
        ("max_attempts", "-1"),
        ("backoff_seconds", "-0.5"),
        ("max_rescans", "-1"),
        ("deleted_tasks", "purge"),
        ("region", ""),
    ],
)
def test_a_bad_value_in_the_environment_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    variable = f"SOURCES__VOLCENGINE_LIVE__{name.upper()}"
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as refused:
        volcengine_live_source(credentials=credentials(), endpoint=ENDPOINT)
    message = str(refused.value)
    assert name in message and variable in message and "[sources.volcengine_live]" in message


@pytest.mark.parametrize(
    ("name", "value"),
    [("page_size", "x"), ("max_concurrency", -3), ("max_attempts", 0), ("max_rescans", -1)],
)
def test_a_bad_value_passed_from_python_is_refused_by_name(name: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=name):
        volcengine_live_source(credentials=credentials(), endpoint=ENDPOINT, **{name: value})


def test_an_extreme_value_is_refused_with_the_range_it_must_be_in() -> None:
    with pytest.raises(ConfigurationError) as refused:
        volcengine_live_source(
            credentials=credentials(), endpoint=ENDPOINT, requests_per_second=1e-9
        )
    assert "requests_per_second" in str(refused.value) and "at least 0.1" in str(refused.value)
    with pytest.raises(ConfigurationError) as refused:
        volcengine_live_source(credentials=credentials(), endpoint=ENDPOINT, lookback_hours=1e9)
    assert "lookback_hours" in str(refused.value) and "at most 87600" in str(refused.value)


def checked_with(**values: Any) -> SourceSettings:
    """Settings checked from the defaults of the source, with ``values`` instead."""
    arguments: dict[str, Any] = {
        name: parameter.default
        for name, parameter in inspect.signature(SourceSettings.checked).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    arguments.update(
        endpoint=ENDPOINT, region="cn-north-1", page_size=500, lookback_hours=24,
        initial_start_time=None, end_start_time=None, requests_per_second=40,
        max_concurrency=8, request_timeout=30, max_attempts=6, backoff_seconds=0.5,
        max_rescans=2,
    )  # fmt: skip
    arguments.update(values)
    return SourceSettings.checked(**arguments)


def test_an_endpoint_and_region_pasted_with_spaces_around_them_are_used_without() -> None:
    checked = checked_with(endpoint=f"  {ENDPOINT}/ \n", region=" cn-north-1\t")
    assert checked.client.endpoint == f"{ENDPOINT}/" and checked.client.region == "cn-north-1"


@pytest.mark.parametrize(
    ("name", "value", "bound"),
    [
        ("run_timeout", "soon", "a number"),
        ("run_timeout", "0", "more than 0"),
        ("run_timeout", "1e9", "at most 604800"),
        ("max_response_bytes", "64MiB", "a whole number"),
        ("max_response_bytes", 1000, "1048576 to 1073741824"),
    ],
)
def test_a_bad_run_timeout_or_response_cap_is_refused_by_name(
    name: str, value: Any, bound: str
) -> None:
    with pytest.raises(ConfigurationError) as refused:
        checked_with(**{name: value})
    assert name in str(refused.value) and bound in str(refused.value)


def test_the_run_timeout_is_off_unless_set_and_read_from_a_string() -> None:
    assert checked_with().client.run_timeout is None
    assert checked_with(run_timeout="none").client.run_timeout is None
    assert checked_with(run_timeout="900").client.run_timeout == 900.0
    assert checked_with(max_response_bytes="2097152").client.max_response_bytes == 2097152


def test_numbers_written_as_strings_are_read_as_numbers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "PAGE_SIZE": "250",
        "MAX_CONCURRENCY": "3",
        "REQUESTS_PER_SECOND": "0",
        "BACKOFF_SECONDS": "0.25",
        "LOOKBACK_HOURS": "6",
    }.items():
        monkeypatch.setenv(f"SOURCES__VOLCENGINE_LIVE__{name}", value)
    source = volcengine_live_source(credentials=credentials(), endpoint=ENDPOINT)
    assert source.resources["pull_record_tasks"] is not None


def test_checked_settings_carry_the_converted_values() -> None:
    checked = SourceSettings.checked(
        endpoint=ENDPOINT,
        region="cn-north-1",
        page_size="250",
        lookback_hours=6,
        initial_start_time="2024-01-01T00:00:00+08:00",
        end_start_time=None,
        requests_per_second=0,
        max_concurrency=3.0,
        request_timeout="12.5",
        max_attempts=2,
        backoff_seconds=0,
        max_rescans="0",
    )
    assert checked.page_size == 250 and checked.max_rescans == 0
    assert checked.lookback_hours == 6.0
    assert checked.initial_start_time is not None
    assert checked.initial_start_time.isoformat() == "2023-12-31T16:00:00+00:00"
    client = checked.client
    assert client.requests_per_second is None and client.max_concurrency == 3
    assert client.request_timeout == 12.5 and client.max_attempts == 2


def documented_defaults(text: str) -> dict[str, str]:
    """``setting -> default`` from the settings table of a README."""
    rows = re.findall(r"^\| `(\w+)` \| (`[^`]*`|none) \|", text, flags=re.MULTILINE)
    return {name: default.strip("`") for name, default in rows}


def as_documented(default: Any) -> str:
    if default is None:
        return "none"
    return f"{default:g}" if isinstance(default, float) else str(default)


def test_the_readme_and_config_toml_show_the_defaults_of_settings_py() -> None:
    """settings.py is the one home of each default; the docs only repeat it, checked here."""
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(volcengine_live_source).parameters.items()
        if name != "credentials" and parameter.kind is not inspect.Parameter.VAR_KEYWORD
    }
    documented = documented_defaults((ROOT / "sources/volcengine_live/README.md").read_text())
    assert documented.keys() == defaults.keys()
    for name, default in defaults.items():
        assert documented[name] == as_documented(default), name
    examples = tomllib.loads(
        re.sub(r"^# (\w+ = )", r"\1", (ROOT / ".dlt/config.toml").read_text(), flags=re.M)
    )["sources"]["volcengine_live"]
    assert examples.keys() == defaults.keys()
    for name, default in defaults.items():
        if default is not None:  # the two times show an example instead
            assert examples[name] == default, name
