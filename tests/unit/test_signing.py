"""The signer must produce the official SDK's signature, byte for byte."""

from __future__ import annotations

import random
from collections import OrderedDict
from datetime import datetime, timedelta, timezone

import pytest
import requests
from volcengine.auth.SignerV4 import SignerV4
from volcengine.auth.SignParam import SignParam
from volcengine.Credentials import Credentials

from volcengine_live.signing import VolcengineSigner, canonical_host, sign

AK = "AKLTexampleAccessKeyId"
SK = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="
TOKEN = "STS2eyJleGFtcGxlIjoidG9rZW4ifQ=="

QUERY_VALUES = ["ListPullRecordTask", "2023-01-01", "a b", "x+y", "中文", "a/b?c=d&e", "~-._", ""]
BODIES = [
    b"",
    b'{"PageNum": 1, "PageSize": 500}',
    '{"Stream": "直播流 #1", "Note": "a&b=c+d"}'.encode(),
    bytes(range(256)),
]


def sdk_authorization(
    method: str,
    host: str,
    query: list[tuple[str, str]],
    body: bytes,
    content_type: str | None,
    token: str,
    when: datetime,
    region: str,
    service: str,
) -> str:
    param = SignParam()
    param.set_method(method)
    param.set_host(host)
    param.set_path("/")
    param.set_body(body)
    grouped: OrderedDict[str, object] = OrderedDict()
    for key, value in query:
        if key in grouped:
            existing = grouped[key]
            grouped[key] = [*existing, value] if isinstance(existing, list) else [existing, value]
        else:
            grouped[key] = value
    param.set_query(grouped)
    headers: OrderedDict[str, str] = OrderedDict(Host=host)
    if content_type:
        headers["Content-Type"] = content_type
    param.set_header_list(headers)
    param.set_date(when.replace(tzinfo=None))
    creds = Credentials(AK, SK, service, region, token)
    return str(SignerV4.sign_only(param, creds).authorization)


def generated_cases(count: int) -> list[dict[str, object]]:
    rng = random.Random(20231023)
    cases = []
    for index in range(count):
        keys = rng.sample(
            ["Action", "Version", "Zeta", "alpha", "Mixed Key", "键"], rng.randint(0, 5)
        )
        query = [(key, rng.choice(QUERY_VALUES)) for key in keys]
        if index % 7 == 0 and query:
            query.append((query[0][0], "second value"))  # a repeated key keeps its order
        rng.shuffle(query)
        cases.append(
            {
                "method": rng.choice(["POST", "GET"]),
                "port": rng.choice([None, 80, 443, 8080]),
                "scheme": rng.choice(["http", "https"]),
                "query": query,
                "body": rng.choice(BODIES),
                "content_type": rng.choice(
                    [None, "application/json", "application/json; charset=utf-8"]
                ),
                "token": rng.choice(["", TOKEN]),
                "when": datetime(2023, 1, 1, tzinfo=timezone.utc)
                + timedelta(seconds=rng.randint(0, 4 * 365 * 86400)),
                "region": rng.choice(["cn-north-1", "ap-singapore-1"]),
                "service": rng.choice(["live", "iam"]),
            }
        )
    return cases


@pytest.mark.parametrize("case", generated_cases(300))
def test_prepared_request_signature_equals_official_sdk(case: dict[str, object]) -> None:
    port = case["port"]
    host = "live.volcengineapi.com" + (f":{port}" if port else "")
    query = case["query"]
    assert isinstance(query, list)
    headers = {"Content-Type": case["content_type"]} if case["content_type"] else {}
    when = case["when"]
    assert isinstance(when, datetime)
    signer = VolcengineSigner(
        AK,
        SK,
        str(case["token"]) or None,
        region=str(case["region"]),
        service=str(case["service"]),
        clock=lambda: when,
    )
    prepared = requests.Request(
        str(case["method"]),
        f"{case['scheme']}://{host}/",
        params=query,
        data=case["body"] or None,
        headers=headers,
        auth=signer,
    ).prepare()

    expected = sdk_authorization(
        str(case["method"]),
        host,
        query,
        case["body"],  # type: ignore[arg-type]
        headers.get("Content-Type"),
        str(case["token"]),
        when,
        str(case["region"]),
        str(case["service"]),
    )
    assert prepared.headers["Authorization"] == expected
    assert prepared.headers["X-Date"] == when.strftime("%Y%m%dT%H%M%SZ")
    if case["token"]:
        assert prepared.headers["X-Security-Token"] == TOKEN
    else:
        assert "X-Security-Token" not in prepared.headers


def test_body_hash_is_of_the_exact_bytes_sent() -> None:
    body = '{"PageNum": 1, "PageSize": 500, "Note": "é"}'.encode()
    headers = sign(
        method="POST",
        url="https://live.volcengineapi.com/?Action=ListPullRecordTask&Version=2023-01-01",
        headers={"Content-Type": "application/json"},
        body=body,
        access_key_id=AK,
        secret_access_key=SK,
        now=datetime(2024, 3, 27, 8, 0, tzinfo=timezone.utc),
    )
    import hashlib

    assert headers["X-Content-Sha256"] == hashlib.sha256(body).hexdigest()
    assert "SignedHeaders=content-type;host;x-content-sha256;x-date," in headers["Authorization"]


def test_each_preparation_is_signed_afresh() -> None:
    times = iter(
        [
            datetime(2024, 1, 1, 0, 0, tzinfo=timezone.utc),
            datetime(2024, 1, 1, 0, 20, tzinfo=timezone.utc),
        ]
    )
    signer = VolcengineSigner(AK, SK, clock=lambda: next(times))
    request = requests.Request("POST", "https://live.volcengineapi.com/", data=b"{}", auth=signer)
    first, second = request.prepare(), request.prepare()
    assert first.headers["X-Date"] == "20240101T000000Z"
    assert second.headers["X-Date"] == "20240101T002000Z"
    assert first.headers["Authorization"] != second.headers["Authorization"]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("example.com", "example.com"),
        ("example.com:80", "example.com"),
        ("example.com:443", "example.com"),
        ("example.com:8443", "example.com:8443"),
        ("127.0.0.1:80", "127.0.0.1"),
        ("[::1]:443", "[::1]"),
        ("[::1]:9000", "[::1]:9000"),
    ],
)
def test_default_ports_are_dropped_from_the_signed_host(host: str, expected: str) -> None:
    assert canonical_host(host) == expected


def test_repr_never_shows_the_secret() -> None:
    signer = VolcengineSigner(AK, SK, TOKEN)
    assert SK not in repr(signer) and TOKEN not in repr(signer)
    assert AK in repr(signer)
