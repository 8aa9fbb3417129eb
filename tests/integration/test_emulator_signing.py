"""The emulator's signature check is held to the official SDK's signer, and the emulator stands
alone: it starts and serves the SDK with ``volcengine_live`` and ``dlt`` blocked from import.

Every request goes over real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import subprocess
import sys
import textwrap
from collections import OrderedDict
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, urlencode

import pytest

from volcengine_live_emulator import DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY, Emulator
from volcengine_live_emulator.signing import sign

AK = DEFAULT_ACCESS_KEY_ID
SK = DEFAULT_SECRET_ACCESS_KEY
STS_AK, STS_SK, STS_TOKEN = "AKTPSTS", "sts-secret", "STS2eyJ0b2tlbiI6InRlc3QifQ=="
NOW = datetime(2026, 3, 1, 4, 0, tzinfo=timezone.utc)

EXTRA_QUERY_VALUES = ["", "a b", "直播", "x+y", "a/b", "~-._", "100%", "é&=?", "emoji 🎥"]
EXTRA_HEADER_VALUES = ["trace-1", "a b  c", "with:colon", "MiXeD"]


@pytest.fixture(scope="module")
def emu() -> Iterator[Emulator]:
    with Emulator(
        tasks=300,
        seed=11,
        now=NOW,
        rate_limit=None,
        credentials={STS_AK: STS_SK},
        session_tokens={STS_AK: STS_TOKEN},
    ) as emulator:
        yield emulator


def _sdk_sign(
    host: str,
    query: OrderedDict[str, Any],
    headers: dict[str, str],
    body: bytes,
    ak: str,
    sk: str,
    token: str = "",
) -> dict[str, str]:
    """Sign with ``volcengine.auth.SignerV4`` exactly as the SDK's services do; the headers
    it sets (X-Date, X-Content-Sha256, Authorization, X-Security-Token) come back."""
    from volcengine.auth.SignerV4 import SignerV4
    from volcengine.base.Request import Request
    from volcengine.Credentials import Credentials

    request = Request()
    request.set_method("POST")
    request.set_host(host)
    request.set_path("/")
    request.set_query(query)
    request.set_headers(OrderedDict(headers))
    request.set_body(body)
    SignerV4.sign(request, Credentials(ak, sk, "live", "cn-north-1", token))
    return dict(request.headers)


def _case(rng: random.Random, n: int) -> dict[str, Any]:
    """One generated request: extra query keys in a random order and encoding, maybe
    repeated keys, unicode, empty or unicode bodies, extra X- headers, STS or not."""
    pairs: list[tuple[str, Any]] = [("Action", "ListPullRecordTask"), ("Version", "2023-01-01")]
    for k in range(rng.randrange(0, 4)):
        key = rng.choice(["Trace", "a", "Z", "名字", "k k", f"p{k}"])
        if key in dict(pairs):
            continue
        if rng.random() < 0.2:
            pairs.append((key, rng.sample(EXTRA_QUERY_VALUES, 2)))  # a repeated key
        else:
            pairs.append((key, rng.choice(EXTRA_QUERY_VALUES)))
    rng.shuffle(pairs)
    body_kind = n % 4
    if body_kind == 0:
        body = b""
    elif body_kind == 1:
        body = json.dumps({"PageNum": 1 + n % 3, "PageSize": 1 + n % 7}).encode()
    elif body_kind == 2:
        body = json.dumps(
            {"PageSize": 2, "备注": "直播 录制", "PageNum": 2}, ensure_ascii=False
        ).encode()
    else:
        body = b' {\n "PageNum" : 3 ,"PageSize":4 }\n'
    headers = {
        "Host": "",
        "Content-Type": rng.choice(
            ["application/json", "application/json; charset=utf-8", "text/plain"]
        ),
    }
    if rng.random() < 0.3:
        headers["X-Custom-Trace"] = rng.choice(EXTRA_HEADER_VALUES)
    sts = rng.random() < 0.3
    return {
        "query": OrderedDict(pairs),
        "body": body,
        "headers": headers,
        "plus": rng.random() < 0.5,  # send spaces as '+' or as %20
        "ak": STS_AK if sts else AK,
        "sk": STS_SK if sts else SK,
        "token": STS_TOKEN if sts else "",
    }


def _send(
    emu: Emulator, case: dict[str, Any], signed: dict[str, str], *, body: bytes | None = None
) -> tuple[int, dict[str, Any]]:
    pairs = list(case["query"].items())
    if case["plus"]:
        query = urlencode(pairs, doseq=True)
    else:
        query = urlencode(pairs, doseq=True, quote_via=quote)
    headers = {**case["headers"], **signed}
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    try:
        conn.request("POST", "/?" + query, body=case["body"] if body is None else body,
                     headers=headers)  # fmt: skip
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def _signed(emu: Emulator, case: dict[str, Any], **overrides: Any) -> dict[str, str]:
    host = f"127.0.0.1:{emu.port}"
    case["headers"]["Host"] = host
    values = {"ak": case["ak"], "sk": case["sk"], "token": case["token"], **overrides}
    signed = _sdk_sign(
        host,
        case["query"],
        dict(case["headers"]),
        case["body"],
        values["ak"],
        values["sk"],
        values["token"],
    )
    return {k: v for k, v in signed.items() if k not in case["headers"]}


CASES = [_case(random.Random(f"signing-{n}"), n) for n in range(160)]


def test_every_request_the_official_sdk_signs_is_accepted(emu: Emulator) -> None:
    expected_tasks = list(emu.store.all_tasks())
    for number, case in enumerate(CASES):
        status, document = _send(emu, case, _signed(emu, case))
        assert status == 200, (number, case, document)
        body = json.loads(case["body"]) if case["body"].strip() else {}
        num, size = body.get("PageNum", 1), body.get("PageSize", 20)
        assert document["Result"]["List"] == expected_tasks[(num - 1) * size : num * size]


def test_a_wrong_secret_a_changed_body_or_query_or_token_is_refused(emu: Emulator) -> None:
    for number, case in enumerate(CASES[:60]):
        wrong_secret = _signed(emu, case, sk=case["sk"] + "x")
        status, document = _send(emu, case, wrong_secret)
        assert status == 401, number
        assert document["ResponseMetadata"]["Error"]["Code"] == "SignatureDoesNotMatch"

        good = _signed(emu, case)
        tampered = case["body"] + b" " if case["body"] else b"{}"
        status, document = _send(emu, case, good, body=tampered)
        assert status == 401, number
        assert document["ResponseMetadata"]["Error"]["Code"] == "SignatureDoesNotMatch"

        # The body hash header patched to match the new body: the signature still fails.
        patched = dict(good, **{"X-Content-Sha256": hashlib.sha256(tampered).hexdigest()})
        status, document = _send(emu, case, patched, body=tampered)
        assert document["ResponseMetadata"]["Error"]["Code"] == "SignatureDoesNotMatch"

        changed_query = dict(case, query=OrderedDict([*case["query"].items(), ("Extra", "1")]))
        status, document = _send(emu, changed_query, good)
        assert status == 401, number
        assert document["ResponseMetadata"]["Error"]["Code"] == "SignatureDoesNotMatch"

        if case["token"]:
            other_token = _signed(emu, case, token=case["token"] + "x")
            status, document = _send(emu, case, other_token)
            assert document["ResponseMetadata"]["Error"]["Code"] == "InvalidSecretToken"


def test_the_emulators_signer_is_byte_identical_to_the_sdk(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from volcengine.auth.SignerV4 import SignerV4

    moment = datetime(2026, 3, 1, 4, 5, 6, tzinfo=timezone.utc)
    monkeypatch.setattr(SignerV4, "get_current_format_date", lambda: "20260301T040506Z")
    for case in CASES:
        host = "live.volcengineapi.com"
        case_headers = dict(case["headers"], Host=host)
        theirs = _sdk_sign(
            host,
            case["query"],
            case_headers,
            case["body"],
            case["ak"],
            case["sk"],
            case["token"],
        )
        query = urlencode(list(case["query"].items()), doseq=True, quote_via=quote)
        ours = sign(
            method="POST",
            url=f"https://{host}/?{query}",
            headers={k: v for k, v in case_headers.items() if k != "Host"},
            body=case["body"],
            access_key_id=case["ak"],
            secret_access_key=case["sk"],
            session_token=case["token"] or None,
            now=moment,
        )
        assert ours["Authorization"] == theirs["Authorization"], case
        assert ours["X-Content-Sha256"] == theirs["X-Content-Sha256"]


# --------------------------------------------------------------- standing alone

_BLOCKED_RUNNER = textwrap.dedent(
    """
    import importlib.abc, runpy, sys

    BLOCKED = ("volcengine_live", "dlt", "pyarrow", "volcengine")

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                sys.stderr.write("BLOCKED IMPORT " + name + "\\n")
                sys.stderr.flush()
                raise ImportError("blocked for this test: " + name)
            return None

    sys.meta_path.insert(0, Block())
    for name in list(sys.modules):
        if name.split(".")[0] in BLOCKED:
            del sys.modules[name]
    sys.argv = ["volcengine-live-emulator", *sys.argv[1:]]
    runpy.run_module("volcengine_live_emulator", run_name="__main__", alter_sys=True)
    """
)


def test_the_emulator_serves_the_sdk_with_volcengine_live_and_dlt_blocked() -> None:
    from volcengine.live.v20230101.live_service import LiveService

    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            _BLOCKED_RUNNER,
            "--tasks",
            "1200",
            "--seed",
            "5",
            "--now",
            "2026-03-01T04:00:00Z",
            "--rate-limit",
            "none",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        endpoint = process.stdout.readline().strip()
        assert endpoint.startswith("http://127.0.0.1:"), process.communicate(timeout=10)
        port = endpoint.rsplit(":", 1)[1]
        service = LiveService(host=f"127.0.0.1:{port}", ak=AK, sk=SK)
        service.service_info.scheme = "http"
        rows: list[dict[str, Any]] = []
        for num in (1, 2, 3):
            answer = service.list_pull_record_task({"PageNum": num, "PageSize": 500})
            document = json.loads(answer) if isinstance(answer, str) else answer
            assert document["Result"]["Pagination"]["TotalCount"] == 1200
            rows.extend(document["Result"]["List"])
        expected = list(Emulator(tasks=1200, seed=5, now=NOW).store.all_tasks())
        assert rows == expected
        wrong = LiveService(host=f"127.0.0.1:{port}", ak=AK, sk="not-the-secret")
        wrong.service_info.scheme = "http"
        with pytest.raises(Exception, match="SignatureDoesNotMatch"):
            wrong.list_pull_record_task({"PageNum": 1, "PageSize": 10})
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0, stderr
    assert "BLOCKED IMPORT" not in stderr, stderr


def test_selfbench_runs_without_the_source_package() -> None:
    # selfbench's client is the emulator's own (standard library): a short run, blocked imports.
    runner = _BLOCKED_RUNNER.replace(
        '"volcengine_live_emulator"', '"volcengine_live_emulator.selfbench"'
    )
    done = subprocess.run(
        [sys.executable, "-c", runner, "--tasks", "2000", "--seconds", "0.3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "pages/s" in done.stdout
    assert "BLOCKED IMPORT" not in done.stderr, done.stderr
