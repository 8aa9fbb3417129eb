"""How each kind of answer is classified: page, retryable fault, or permanent error."""

from __future__ import annotations

import json
from array import array

import pytest

from volcengine_live.client import validate_endpoint
from volcengine_live.errors import (
    ApiError,
    ConfigurationError,
    MalformedResponseError,
    TransientError,
)
from volcengine_live.responses import parse_page
from volcengine_live.scan import distinct_count


def envelope(code: str, code_n: int = 0) -> bytes:
    return json.dumps(
        {
            "ResponseMetadata": {
                "RequestId": "r-1",
                "Action": "ListPullRecordTask",
                "Error": {"Code": code, "CodeN": code_n, "Message": f"{code} happened"},
            }
        }
    ).encode()


def page_body(rows: list[object], total: int) -> bytes:
    return json.dumps(
        {
            "ResponseMetadata": {"RequestId": "r-2"},
            "Result": {
                "List": rows,
                "Pagination": {"PageCur": 1, "PageSize": 2, "PageTotal": 43, "TotalCount": total},
            },
        }
    ).encode()


def test_a_page() -> None:
    page = parse_page(200, {}, page_body([{"TaskId": "a"}], 86), 1, 2)
    assert page.total_count == 86 and page.tasks == [{"TaskId": "a"}]


def test_common_err_with_http_200_is_a_transient_error_not_an_empty_page() -> None:
    with pytest.raises(ApiError) as caught:
        parse_page(200, {}, envelope("CommonErr"), 1, 500)
    assert caught.value.transient and caught.value.http_status == 200


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (500, "InternalError"),
        (502, "InternalServiceError"),
        (504, "InternalServiceTimeout"),
        (429, "FlowLimitExceeded"),
        (503, "ServiceUnavailableTemp"),
    ],
)
def test_retryable_codes(status: int, code: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_page(status, {"Retry-After": "3"}, envelope(code), 1, 500)
    assert caught.value.transient
    assert caught.value.retry_after == 3.0


@pytest.mark.parametrize(
    ("status", "code", "advice"),
    [
        (401, "SignatureDoesNotMatch", "secret_access_key"),
        (401, "InvalidAccessKey", "access_key_id"),
        (401, "MissingAuthenticationToken", "VOLC_ACCESSKEY"),
        (400, "InvalidTimestamp", "clock"),
        (403, "AccessDenied", "live:ListPullRecordTask"),
        (403, "RequestForbidden.BillingStatus", "Enable the service"),
        (400, "InvalidParam", "page_size"),
        (404, "InvalidActionOrVersion", "endpoint"),
    ],
)
def test_permanent_codes_fail_with_advice(status: int, code: str, advice: str) -> None:
    with pytest.raises(ApiError) as caught:
        parse_page(status, {}, envelope(code), 1, 500)
    assert not caught.value.transient
    assert code in str(caught.value) and advice in str(caught.value)
    assert "r-1" in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [b"<html><body>502 Bad Gateway</body></html>", b'{"Result": {"List": [', b""],
)
def test_proxy_pages_and_truncated_bodies_are_transient(body: bytes) -> None:
    with pytest.raises(TransientError):
        parse_page(502, {}, body, 1, 500)
    with pytest.raises(MalformedResponseError):
        parse_page(200, {}, body, 1, 500)


@pytest.mark.parametrize(
    "document",
    [
        {"ResponseMetadata": {}},
        {"ResponseMetadata": {}, "Result": {"List": {"a": 1}, "Pagination": {"TotalCount": 1}}},
        {"ResponseMetadata": {}, "Result": {"List": []}},
        {"ResponseMetadata": {}, "Result": {"List": [], "Pagination": {"TotalCount": "9"}}},
    ],
)
def test_malformed_results_are_retryable_errors(document: dict[str, object]) -> None:
    with pytest.raises(MalformedResponseError):
        parse_page(200, {}, json.dumps(document).encode(), 1, 500)


def test_an_html_403_is_permanent() -> None:
    with pytest.raises(ApiError) as caught:
        parse_page(403, {}, b"<html>Forbidden</html>", 1, 500)
    assert not caught.value.transient and caught.value.code == "HTTP403"


@pytest.mark.parametrize(
    "endpoint", ["http://live.volcengineapi.com", "ftp://x", "live.volcengineapi.com"]
)
def test_only_https_leaves_this_machine(endpoint: str) -> None:
    with pytest.raises(ConfigurationError):
        validate_endpoint(endpoint)


def test_loopback_may_use_http() -> None:
    assert validate_endpoint("http://127.0.0.1:8080/") == "http://127.0.0.1:8080"
    assert validate_endpoint("https://live.volcengineapi.com") == "https://live.volcengineapi.com"


@pytest.mark.parametrize(
    "values", [[], [7], [1, 2, 3, 3, -5, 2**62], [4, 4, 4], list(range(1000)) * 2]
)
def test_distinct_count(values: list[int]) -> None:
    assert distinct_count(array("q", values)) == len(set(values))
