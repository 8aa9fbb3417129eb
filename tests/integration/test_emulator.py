"""The emulator must behave like the documented ListPullRecordTask API and obey its controls.

Every test talks to a real emulator on 127.0.0.1 over HTTP, except the data-realism tests,
which read the store directly (the same bytes the pages carry).
"""

from __future__ import annotations

import http.client
import itertools
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests

from volcengine_live_emulator import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_SECRET_ACCESS_KEY,
    FAULT_KINDS,
    REMOVE,
    Emulator,
)
from volcengine_live_emulator.data import parse_rfc3339
from volcengine_live_emulator.ratelimit import SlidingWindowLimiter
from volcengine_live_emulator.signing import sha256_hex, sign

AK = DEFAULT_ACCESS_KEY_ID
SK = DEFAULT_SECRET_ACCESS_KEY
PATH = "/?Action=ListPullRecordTask&Version=2023-01-01"
NOW = datetime(2026, 3, 1, 4, 0, tzinfo=timezone.utc)
FIELDS = {"TaskId", "StartTime", "EndTime", "Vhost", "Domain", "App", "Stream", "Status"}
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(Z|\+08:00)$")


# --------------------------------------------------------------------------- helpers


def signed_json_headers(url: str, body: bytes) -> dict[str, str]:
    """Headers of a JSON POST to ``url`` signed with the suite's emulator key."""
    headers = {"Content-Type": "application/json"}
    headers.update(
        sign(
            method="POST",
            url=url,
            headers=headers,
            body=body,
            access_key_id=AK,
            secret_access_key=SK,
        )
    )
    return headers


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(tasks=1000, seed=7, now=NOW, rate_limit=None) as emulator:
        yield emulator


def post(
    endpoint: str,
    body: bytes | dict[str, Any] | None = None,
    *,
    ak: str = AK,
    sk: str = SK,
    token: str | None = None,
    path: str = PATH,
    when: datetime | None = None,
    session: requests.Session | None = None,
    timeout: float = 10.0,
    extra: dict[str, str] | None = None,
) -> requests.Response:
    """A request signed by the emulator's own signer (held to the SDK in test_emulator_signing)."""
    data = (
        json.dumps(body if body is not None else {}).encode()
        if not isinstance(body, bytes)
        else body
    )
    headers = {"Content-Type": "application/json"}
    headers.update(
        sign(
            method="POST",
            url=endpoint + path,
            headers=headers,
            body=data,
            access_key_id=ak,
            secret_access_key=sk,
            session_token=token,
            now=when,
        )
    )
    headers.update(extra or {})
    return (session or requests).post(endpoint + path, data=data, headers=headers, timeout=timeout)


def page(endpoint: str, num: int, size: int, **kwargs: Any) -> dict[str, Any]:
    response = post(endpoint, {"PageNum": num, "PageSize": size}, **kwargs)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


def error_of(response: requests.Response) -> dict[str, Any]:
    document = response.json()
    assert "Result" not in document
    error: dict[str, Any] = document["ResponseMetadata"]["Error"]
    return error


def scan(endpoint: str, size: int) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with requests.Session() as session:
        num = 1
        while True:
            items = page(endpoint, num, size, session=session)["Result"]["List"]
            if not items:
                return rows
            rows.extend(items)
            num += 1


# ------------------------------------------------------------------ 1. response


def test_page_has_the_documented_shape(emu: Emulator) -> None:
    document = page(emu.endpoint, 1, 2)
    metadata = document["ResponseMetadata"]
    assert list(metadata) == ["RequestId", "Action", "Version", "Service", "Region"]
    assert metadata["Action"] == "ListPullRecordTask" and metadata["Version"] == "2023-01-01"
    assert metadata["Service"] == "live" and metadata["Region"] == "cn-north-1"
    assert re.fullmatch(r"\d{14}[0-9A-F]{20}", metadata["RequestId"])
    result = document["Result"]
    assert len(result["List"]) == 2
    assert all(set(task) == FIELDS for task in result["List"])
    assert result["Pagination"] == {
        "PageCur": 1,
        "PageSize": 2,
        "PageTotal": 500,
        "TotalCount": 1000,
    }


def test_pagination_defaults_partial_last_page_and_empty_page_past_the_end(emu: Emulator) -> None:
    default = post(emu.endpoint, {}).json()["Result"]
    assert len(default["List"]) == 20 and default["Pagination"]["PageSize"] == 20
    last = page(emu.endpoint, 4, 300)["Result"]
    assert len(last["List"]) == 100
    assert last["Pagination"] == {"PageCur": 4, "PageSize": 300, "PageTotal": 4, "TotalCount": 1000}
    past = page(emu.endpoint, 5, 300)["Result"]
    assert past["List"] == [] and past["Pagination"]["TotalCount"] == 1000


def test_newest_created_first_and_a_full_scan_is_all_tasks(emu: Emulator) -> None:
    created = emu.store.create_task(Stream="brand-new")
    first = page(emu.endpoint, 1, 5)["Result"]["List"][0]
    assert first == created
    rows = scan(emu.endpoint, 500)
    assert rows == list(emu.store.all_tasks())
    assert len({row["TaskId"] for row in rows}) == len(rows) == emu.store.count == 1001


# ----------------------------------------------------------------- 2. signatures


def test_official_sdk_is_accepted_and_a_wrong_secret_is_refused(emu: Emulator) -> None:
    from volcengine.live.v20230101.live_service import LiveService

    service = LiveService(host=f"127.0.0.1:{emu.port}", ak=AK, sk=SK)
    service.service_info.scheme = "http"
    answer = service.list_pull_record_task({"PageNum": 1, "PageSize": 10})
    document = json.loads(answer) if isinstance(answer, str) else answer
    assert len(document["Result"]["List"]) == 10
    assert document["Result"]["Pagination"]["TotalCount"] == 1000

    wrong = LiveService(host=f"127.0.0.1:{emu.port}", ak=AK, sk="not-the-secret")
    wrong.service_info.scheme = "http"
    with pytest.raises(Exception, match="SignatureDoesNotMatch"):
        wrong.list_pull_record_task({"PageNum": 1, "PageSize": 10})


def test_a_content_type_with_charset_signed_through_requests_is_accepted(emu: Emulator) -> None:
    body = b'{"PageNum": 2, "PageSize": 3}'
    headers = {"Content-Type": "application/json; charset=utf-8"}
    headers.update(
        sign(
            method="POST",
            url=emu.endpoint + PATH,
            headers=headers,
            body=body,
            access_key_id=AK,
            secret_access_key=SK,
        )
    )
    response = requests.post(emu.endpoint + PATH, data=body, headers=headers, timeout=10)
    assert response.status_code == 200
    assert response.json()["Result"]["Pagination"]["PageCur"] == 2


def test_missing_authorization(emu: Emulator) -> None:
    response = requests.post(emu.endpoint + PATH, data=b"{}", timeout=10)
    assert response.status_code == 401
    assert error_of(response)["Code"] == "MissingAuthenticationToken"
    assert error_of(response)["CodeN"] == 100003


@pytest.mark.parametrize(
    ("ak", "sk", "status", "code", "code_n"),
    [
        ("AKUNKNOWN", SK, 401, "InvalidAccessKey", 100009),
        (AK, "wrong-secret", 401, "SignatureDoesNotMatch", 100010),
    ],
)
def test_wrong_credentials(
    emu: Emulator, ak: str, sk: str, status: int, code: str, code_n: int
) -> None:
    response = post(emu.endpoint, {"PageNum": 1}, ak=ak, sk=sk)
    assert response.status_code == status
    assert error_of(response)["Code"] == code and error_of(response)["CodeN"] == code_n
    assert response.json()["ResponseMetadata"]["Action"] == "ListPullRecordTask"


def test_body_must_match_its_signed_hash(emu: Emulator) -> None:
    signed_body = b'{"PageNum": 1, "PageSize": 5}'
    other_body = b'{"PageNum": 1, "PageSize": 6}'
    headers = signed_json_headers(emu.endpoint + PATH, signed_body)
    swapped = requests.post(emu.endpoint + PATH, data=other_body, headers=headers, timeout=10)
    assert swapped.status_code == 401
    assert error_of(swapped)["Code"] == "SignatureDoesNotMatch"
    assert "X-Content-Sha256" in error_of(swapped)["Message"]
    # The hash header patched to the new body: the hash matches, the signature does not.
    patched = dict(headers, **{"X-Content-Sha256": sha256_hex(other_body)})
    forged = requests.post(emu.endpoint + PATH, data=other_body, headers=patched, timeout=10)
    assert error_of(forged)["Code"] == "SignatureDoesNotMatch"


def test_x_date_more_than_15_minutes_off_is_refused(emu: Emulator) -> None:
    now = datetime.now(timezone.utc)
    for skew in (timedelta(minutes=-16), timedelta(minutes=16)):
        response = post(emu.endpoint, {}, when=now + skew)
        assert response.status_code == 400
        assert error_of(response)["Code"] == "InvalidTimestamp"
        assert error_of(response)["CodeN"] == 100006
    assert post(emu.endpoint, {}, when=now - timedelta(minutes=14)).status_code == 200


def test_host_default_port_is_dropped_as_the_signer_does(emu: Emulator) -> None:
    # Signed for https://live.example.com:443, sent with that Host header to the emulator.
    body = b"{}"
    headers = signed_json_headers("https://live.example.com:443" + PATH, body)
    headers["Host"] = "live.example.com:443"
    response = requests.post(emu.endpoint + PATH, data=body, headers=headers, timeout=10)
    assert response.status_code == 200, response.text


def test_several_access_keys_and_sts_session_tokens() -> None:
    with Emulator(
        tasks=10,
        now=NOW,
        credentials={"AKSECOND": "second-secret", "AKTPTEMP": "temp-secret"},
        session_tokens={"AKTPTEMP": "STS2-token"},
    ) as emu:
        assert post(emu.endpoint, {}).status_code == 200
        assert post(emu.endpoint, {}, ak="AKSECOND", sk="second-secret").status_code == 200
        sts = post(emu.endpoint, {}, ak="AKTPTEMP", sk="temp-secret", token="STS2-token")
        assert sts.status_code == 200
        for token in ("STS2-other", None):
            refused = post(emu.endpoint, {}, ak="AKTPTEMP", sk="temp-secret", token=token)
            assert refused.status_code == 401
            assert error_of(refused)["Code"] == "InvalidSecretToken"
        # A token sent with a long-term key is no better.
        stray = post(emu.endpoint, {}, ak="AKSECOND", sk="second-secret", token="STS2-token")
        assert error_of(stray)["Code"] == "InvalidSecretToken"
        emu.add_credentials("AKTHIRD", "third")
        assert post(emu.endpoint, {}, ak="AKTHIRD", sk="third").status_code == 200
        emu.remove_credentials("AKTHIRD")
        assert error_of(post(emu.endpoint, {}, ak="AKTHIRD", sk="third"))["Code"] == (
            "InvalidAccessKey"
        )


# ----------------------------------------------------------------- 3. validation


@pytest.mark.parametrize(
    ("body", "code", "names"),
    [
        ({"PageNum": 0}, "InvalidParam", "PageNum"),
        ({"PageNum": -3}, "InvalidParam", "PageNum"),
        ({"PageSize": 0}, "InvalidParam", "PageSize"),
        ({"PageSize": 501}, "InvalidParam", "PageSize"),
        ({"PageSize": "abc"}, "InvalidParam.BindError", "PageSize"),
        ({"PageNum": 1.5}, "InvalidParam.BindError", "PageNum"),
        ({"PageNum": True}, "InvalidParam.BindError", "PageNum"),
        (b"not json", "InvalidParam.BindError", ""),
        (b"[1, 2]", "InvalidParam.BindError", ""),
    ],
)
def test_invalid_parameters(emu: Emulator, body: Any, code: str, names: str) -> None:
    response = post(emu.endpoint, body)
    assert response.status_code == 400
    error = error_of(response)
    assert error["Code"] == code
    assert names in error["Message"]


def test_page_size_500_is_the_maximum_allowed(emu: Emulator) -> None:
    assert len(page(emu.endpoint, 1, 500)["Result"]["List"]) == 500


@pytest.mark.parametrize(
    "path",
    [
        "/?Action=ListPullRecordTasks&Version=2023-01-01",
        "/?Action=ListPullRecordTask&Version=2020-08-01",
        "/?Version=2023-01-01",
    ],
)
def test_other_action_or_version_is_not_found(emu: Emulator, path: str) -> None:
    response = post(emu.endpoint, {}, path=path)
    assert response.status_code == 404
    assert error_of(response)["Code"] == "InvalidActionOrVersion"
    assert error_of(response)["CodeN"] == 100008


# ----------------------------------------------------------------- 4. rate limit


def test_rate_limit_per_access_key_with_a_sliding_window() -> None:
    with Emulator(tasks=10, now=NOW, rate_limit=5, credentials={"AKOTHER": "other"}) as emu:
        with requests.Session() as session:
            answers = [post(emu.endpoint, {}, session=session) for _ in range(8)]
            other = post(emu.endpoint, {}, ak="AKOTHER", sk="other", session=session)
        assert [a.status_code for a in answers] == [200] * 5 + [429] * 3
        refused = answers[-1]
        assert error_of(refused) == {
            "Code": "FlowLimitExceeded",
            "CodeN": 100018,
            "Message": error_of(refused)["Message"],
        }
        assert "Retry-After" not in refused.headers
        assert other.status_code == 200  # another key has its own window
        assert emu.stats.throttled == 3
        time.sleep(1.05)
        assert post(emu.endpoint, {}).status_code == 200

        emu.retry_after = 2
        emu.rate_limit = 1
        emu.reset_rate_limit()
        post(emu.endpoint, {})
        limited = post(emu.endpoint, {})
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
        emu.rate_limit = None
        assert all(post(emu.endpoint, {}).status_code == 200 for _ in range(10))


def test_default_rate_limit_is_50_per_second(monkeypatch: pytest.MonkeyPatch) -> None:
    """Sixty requests over HTTP inside one window: exactly fifty pass. The limiter's clock is
    held still (its own ``now`` argument), so all sixty fall in one window however slowly
    this machine sends them, and the check no longer depends on the run taking under a
    second; moved on by a window, the limiter has room again."""
    clock = [1000.0]
    allow = SlidingWindowLimiter.allow

    def on_held_clock(self: SlidingWindowLimiter, key: str, now: float | None = None) -> bool:
        return allow(self, key, clock[0])

    monkeypatch.setattr(SlidingWindowLimiter, "allow", on_held_clock)
    with Emulator(tasks=10, now=NOW) as emu:
        assert emu.rate_limit == 50.0
        with requests.Session() as session:
            codes = Counter(post(emu.endpoint, {}, session=session).status_code for _ in range(60))
            assert codes[200] >= 50
            assert codes == {200: 50, 429: 10}
            clock[0] += 1.0
            assert post(emu.endpoint, {}, session=session).status_code == 200


# ----------------------------------------------------------------------- 5. data


def test_same_seed_same_tasks_other_seed_other_tasks() -> None:
    one = list(Emulator(tasks=300, seed=3, now=NOW).store.all_tasks())
    again = list(Emulator(tasks=300, seed=3, now=NOW).store.all_tasks())
    other = list(Emulator(tasks=300, seed=4, now=NOW).store.all_tasks())
    assert one == again
    assert {t["TaskId"] for t in one}.isdisjoint({t["TaskId"] for t in other})
    # The ids and catalogue depend on the seed alone; ``now`` only places the times.
    later = list(Emulator(tasks=300, seed=3, now=NOW + timedelta(days=3)).store.all_tasks())
    assert [t["TaskId"] for t in later] == [t["TaskId"] for t in one]


def test_generated_data_is_realistic() -> None:
    emu = Emulator(tasks=20_000, seed=7, now=NOW)
    tasks = list(emu.store.all_tasks())
    assert len(tasks) == 20_000
    now = NOW.timestamp()
    statuses = Counter(task["Status"] for task in tasks)
    assert set(statuses) == {"停用", "未开始", "生效中", "已结束"}
    assert 0.03 <= statuses["停用"] / len(tasks) <= 0.05
    assert 0.08 <= statuses["未开始"] / len(tasks) <= 0.18
    assert 1 <= statuses["生效中"] <= 0.01 * len(tasks)
    assert statuses["已结束"] / len(tasks) > 0.7

    ids = [task["TaskId"] for task in tasks]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{32}", task_id) for task_id in ids)

    local = 0
    durations = []
    for task in tasks:
        assert set(task) == FIELDS
        assert RFC3339.match(task["StartTime"]) and RFC3339.match(task["EndTime"])
        assert task["StartTime"][-1] == task["EndTime"][-1]  # one style per task
        local += task["StartTime"].endswith("+08:00")
        start, end = parse_rfc3339(task["StartTime"]), parse_rfc3339(task["EndTime"])
        assert start is not None and end is not None
        assert now - 91 * 86400 <= start <= now + 15 * 86400
        durations.append(end - start)
        if task["Status"] != "停用":
            expected = "未开始" if now < start else "生效中" if now < end else "已结束"
            assert task["Status"] == expected
        assert re.fullmatch(r"(live|push|pull)\.example-[1-4]\.com", task["Domain"])
        assert re.fullmatch(r"live\.example-[1-4]\.com", task["Vhost"])
        assert task["App"] in {"live", "edu", "game", "sports"}
    assert 0.65 <= local / len(tasks) <= 0.75
    assert min(durations) >= 300 and max(durations) > 86400
    assert 0.01 < sum(d > 86400 for d in durations) / len(durations) < 0.05
    assert 0.7 <= sum(t["Vhost"] == t["Domain"] for t in tasks) / len(tasks) <= 0.9
    streams = Counter((t["Domain"], t["App"], t["Stream"]) for t in tasks)
    assert 150 <= len(streams) <= 400
    # Creation order follows StartTime roughly, not exactly.
    starts = [parse_rfc3339(task["StartTime"]) or 0.0 for task in reversed(tasks)]
    assert starts[-1] > starts[0]
    assert any(later < earlier for earlier, later in itertools.pairwise(starts))


def test_a_million_tasks_start_fast_and_stay_small() -> None:
    psutil = pytest.importorskip("psutil")
    process = psutil.Process()
    rss_before = process.memory_info().rss
    started = time.perf_counter()
    with Emulator(tasks=1_000_000, seed=1, now=NOW, rate_limit=None) as big:
        assert time.perf_counter() - started < 3.0
        with requests.Session() as session:
            started = time.perf_counter()
            first = page(big.endpoint, 1, 500, session=session)["Result"]
            last = page(big.endpoint, 2000, 500, session=session)["Result"]
            elapsed = time.perf_counter() - started
        assert first["Pagination"]["TotalCount"] == 1_000_000
        assert first["Pagination"]["PageTotal"] == 2000
        assert len(first["List"]) == len(last["List"]) == 500
        assert elapsed < 2.0
        # The oldest-created task is the last row of the last page, and can be changed by id.
        oldest = last["List"][-1]
        assert big.store.update_task(oldest["TaskId"], Status="停用")["Status"] == "停用"
        assert big.store.get_task(oldest["TaskId"]) == {**oldest, "Status": "停用"}
        # An array of a million keys and two cached chunks, not a million records.
        assert process.memory_info().rss - rss_before < 80 * 1024 * 1024


def test_page_throughput_is_hundreds_of_pages_per_second() -> None:
    # A smoke figure in-process: client and server share one interpreter, so it is lower than
    # the figure of ``python -m volcengine_live_emulator.selfbench`` quoted in the README.
    with Emulator(tasks=50_000, seed=2, now=NOW, rate_limit=None) as emu:
        scan(emu.endpoint, 500)  # fill the row cache
        conn = http.client.HTTPConnection("127.0.0.1", emu.port)
        started = time.perf_counter()
        served = 0
        while time.perf_counter() - started < 1.0:
            body = json.dumps({"PageNum": served % 100 + 1, "PageSize": 500}).encode()
            headers = signed_json_headers(emu.endpoint + PATH, body)
            conn.request("POST", PATH, body=body, headers=headers)
            response = conn.getresponse()
            assert response.status == 200 and len(response.read()) > 100_000
            served += 1
        conn.close()
        rate = served / (time.perf_counter() - started)
        assert rate > 50, f"{rate:.0f} pages/s"


# ---------------------------------------------------------------------- 6. store


def test_raw_malformed_records_are_served_verbatim(emu: Emulator) -> None:
    bad: list[dict[str, Any]] = [
        {"StartTime": "2026-01-01T00:00:00Z", "Status": "已结束"},  # no TaskId
        {"TaskId": "bad-time", "StartTime": "yesterday", "EndTime": None, "Status": "已结束"},
        {"TaskId": "extra", "Status": "已暂停", "Unknown": {"nested": [1, 2]}, "App": None},
    ]
    for record in bad:
        emu.store.create_task(record, raw=True)
    rows = page(emu.endpoint, 1, 3)["Result"]["List"]
    assert rows == list(reversed(bad))
    assert emu.store.count == 1003


def test_create_update_delete_and_get(emu: Emulator) -> None:
    start = NOW + timedelta(hours=2)
    task = emu.store.create_task(StartTime=start, EndTime=start + timedelta(hours=1))
    assert set(task) == FIELDS and task["Status"] == "未开始"
    assert parse_rfc3339(task["StartTime"]) == start.timestamp()
    task_id = task["TaskId"]

    updated = emu.store.update_task(task_id, Status="停用", Stream="renamed", Vhost=REMOVE)
    assert updated["Status"] == "停用" and updated["Stream"] == "renamed"
    assert "Vhost" not in updated
    assert page(emu.endpoint, 1, 1)["Result"]["List"][0] == updated
    assert emu.store.get_task(task_id) == updated

    # A generated task changes in place: same position, new content.
    third = page(emu.endpoint, 1, 3)["Result"]["List"][2]
    emu.store.update_task(third["TaskId"], EndTime=None)
    assert page(emu.endpoint, 1, 3)["Result"]["List"][2] == {**third, "EndTime": None}

    removed = emu.store.delete_task(task_id)
    assert removed == updated and emu.store.count == 1000
    assert emu.store.get_task(task_id) is None
    with pytest.raises(KeyError):
        emu.store.delete_task(task_id)
    with pytest.raises(KeyError):
        emu.store.update_task("0" * 32, Status="停用")

    # Deleting a generated task pulls the later ones up a place.
    before = page(emu.endpoint, 1, 10)["Result"]["List"]
    emu.store.delete_task(before[4]["TaskId"])
    after = page(emu.endpoint, 1, 10)["Result"]
    assert after["List"][:9] == before[:4] + before[5:]
    assert after["Pagination"]["TotalCount"] == 999


def test_duplicate_task_ids_are_allowed_and_the_newest_wins(emu: Emulator) -> None:
    emu.store.create_task({"TaskId": "dup", "Stream": "old"}, raw=True)
    emu.store.create_task({"TaskId": "dup", "Stream": "new"}, raw=True)
    assert emu.store.get_task("dup") == {"TaskId": "dup", "Stream": "new"}
    emu.store.delete_task("dup")
    assert emu.store.get_task("dup") == {"TaskId": "dup", "Stream": "old"}


def test_advance_moves_tasks_along_their_life_cycle(emu: Emulator) -> None:
    base = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(days=1)
    store = emu.store
    planned = store.create_task(StartTime=base, EndTime=base + timedelta(hours=2))
    stopped = store.create_task(StartTime=base, EndTime=base + timedelta(hours=2), Status="停用")
    odd = store.create_task({"TaskId": "odd", "StartTime": "soon", "Status": "未开始"}, raw=True)
    assert planned["Status"] == "未开始"
    generated_waiting = sum(t["Status"] == "未开始" for t in store.all_tasks())

    store.advance(base + timedelta(hours=1))
    assert store.get_task(planned["TaskId"])["Status"] == "生效中"  # type: ignore[index]
    store.advance(base + timedelta(hours=3))
    assert store.get_task(planned["TaskId"])["Status"] == "已结束"  # type: ignore[index]
    store.advance(base)  # the clock never goes back
    assert store.get_task(planned["TaskId"])["Status"] == "已结束"  # type: ignore[index]
    assert store.get_task(stopped["TaskId"])["Status"] == "停用"  # type: ignore[index]
    assert store.get_task(odd["TaskId"]) == odd
    # Generated tasks follow the clock too: a day later fewer have not started.
    assert sum(t["Status"] == "未开始" for t in store.all_tasks()) < generated_waiting


def test_inserting_during_a_scan_shifts_later_pages(emu: Emulator) -> None:
    original = [task["TaskId"] for task in emu.store.all_tasks()]
    inserted: list[str] = []

    def insert_on_page_3(page_num: int) -> None:
        if page_num == 3 and not inserted:
            inserted.extend(emu.store.create_task()["TaskId"] for _ in range(4))

    remove = emu.on_request(insert_on_page_3)
    rows = scan(emu.endpoint, 100)
    remove()
    seen = [row["TaskId"] for row in rows]
    # The four new tasks went to page 1, already read: page 3 onwards repeats four rows
    # (a scan to the empty page reads 1004 rows, of which 1000 distinct).
    assert len(seen) == 1004 and set(seen) == set(original)
    assert seen[200:204] == original[196:200]
    assert seen[:200] == original[:200] and seen[204:] == original[200:]
    assert not set(inserted) & set(seen)
    assert emu.store.count == 1004


def test_store_is_thread_safe_under_concurrent_reads_and_writes(emu: Emulator) -> None:
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for n in range(200):
                task = emu.store.create_task(Stream=f"w{n}")
                if n % 2:
                    emu.store.delete_task(task["TaskId"])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    with requests.Session() as session:
        for num in range(1, 30):
            result = page(emu.endpoint, num % 5 + 1, 200, session=session)["Result"]
            assert len(result["List"]) == 200
    thread.join()
    assert not errors
    assert emu.store.count == 1100


# -------------------------------------------------------------------- 7. controls


ENVELOPES = [
    ("common_err", 200, "CommonErr", None),
    ("internal_error", 500, "InternalError", 100014),
    ("internal_service_error", 502, "InternalServiceError", None),
    ("bad_response", 502, "InternalServiceError.BadResponse", None),
    ("service_timeout", 504, "InternalServiceTimeout", 100016),
    ("unavailable", 503, "ServiceUnavailableTemp", 100019),
    ("flow_limit", 429, "FlowLimitExceeded", 100018),
    ("access_denied", 403, "AccessDenied", 100013),
    ("billing", 403, "RequestForbidden.BillingStatus", None),
]


@pytest.mark.parametrize(("kind", "status", "code", "code_n"), ENVELOPES)
def test_envelope_faults(
    emu: Emulator, kind: str, status: int, code: str, code_n: int | None
) -> None:
    emu.faults.add(kind, times=2)
    with requests.Session() as session:
        failed = [post(emu.endpoint, {}, session=session) for _ in range(2)]
        good = post(emu.endpoint, {}, session=session)
    for response in failed:
        assert response.status_code == status
        error = error_of(response)
        assert error["Code"] == code and error.get("CodeN") == code_n and error["Message"]
        assert "Retry-After" not in response.headers
    assert good.status_code == 200 and "Result" in good.json()
    assert emu.stats.faults == {kind: 2}


def test_arbitrary_error_envelope(emu: Emulator) -> None:
    emu.faults.add("error", code="RequestForbidden.AccountIDNotAllow")
    emu.faults.add("error", code="Teapot", status=418, code_n=4242, message="short and stout")
    first, second = post(emu.endpoint, {}), post(emu.endpoint, {})
    assert first.status_code == 403
    assert error_of(first)["Code"] == "RequestForbidden.AccountIDNotAllow"
    assert second.status_code == 418
    assert error_of(second) == {"Code": "Teapot", "CodeN": 4242, "Message": "short and stout"}
    with pytest.raises(ValueError, match="unknown fault kind"):
        emu.faults.add("gremlins")


def test_stall_outlasts_a_client_read_timeout(emu: Emulator) -> None:
    emu.faults.add("stall", seconds=1.0)
    started = time.perf_counter()
    with pytest.raises(requests.ReadTimeout):
        post(emu.endpoint, {}, timeout=0.3)
    assert time.perf_counter() - started < 0.9
    assert post(emu.endpoint, {}).status_code == 200  # other requests are not held up


def test_connection_reset_and_truncated_body(emu: Emulator) -> None:
    emu.faults.add("reset")
    with pytest.raises(requests.ConnectionError):
        post(emu.endpoint, {})
    emu.faults.add("truncated")
    with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.ConnectionError)):
        post(emu.endpoint, {"PageSize": 100})
    assert post(emu.endpoint, {}).status_code == 200
    assert emu.stats.faults == {"reset": 1, "truncated": 1}


def test_drip_sends_the_page_a_byte_at_a_time_so_no_read_times_out(emu: Emulator) -> None:
    emu.faults.add("drip", interval=0.002)
    response = post(emu.endpoint, {"PageSize": 1}, timeout=0.5)  # each read well within 0.5 s
    assert response.status_code == 200 and len(response.json()["Result"]["List"]) == 1
    assert emu.stats.faults == {"drip": 1}


def test_drip_stops_when_the_emulator_stops() -> None:
    with Emulator(tasks=10, rate_limit=None) as emulator:
        emulator.faults.add("drip", interval=30)
        errors: list[BaseException] = []

        def read() -> None:
            try:
                post(emulator.endpoint, {"PageSize": 10}, timeout=60)
            except requests.RequestException as error:
                errors.append(error)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        for _ in range(1000):  # until the drip has begun
            if emulator.stats.faults:
                break
            time.sleep(0.01)
    reader.join(timeout=10)
    assert not reader.is_alive() and errors  # cut short, not served for 30 s a byte


def test_bomb_is_a_small_gzip_body_that_inflates_to_the_page_plus_size(emu: Emulator) -> None:
    emu.faults.add("bomb", size=8 << 20)
    response = post(emu.endpoint, {"PageSize": 2}, extra={"Accept-Encoding": "identity"})
    assert response.headers["Content-Encoding"] == "gzip"  # whatever the client asked for
    assert int(response.headers["Content-Length"]) < 64 * 1024
    inflated = response.content  # requests inflates every gzip member
    assert len(inflated) > 8 << 20
    assert len(json.loads(inflated)["Result"]["List"]) == 2
    assert emu.stats.faults == {"bomb": 1}


def test_reset_is_a_tcp_reset(emu: Emulator) -> None:
    emu.faults.add("reset")
    body = b"{}"
    headers = signed_json_headers(emu.endpoint + PATH, body)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (
        f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{emu.port}\r\nContent-Length: {len(body)}\r\n"
        f"{head}\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", emu.port), timeout=5) as sock:
        sock.sendall(request)
        with pytest.raises(ConnectionResetError):
            while sock.recv(65536):
                pass
            raise AssertionError("closed with FIN, not RST")


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("html_502", lambda r: r.status_code == 502 and r.text.startswith("<html>")),
        ("non_json", lambda r: r.status_code == 200 and not r.text.startswith("{")),
        ("empty_body", lambda r: r.status_code == 200 and r.content == b""),
        ("missing_result", lambda r: set(r.json()) == {"ResponseMetadata"}),
        ("list_not_list", lambda r: r.json()["Result"]["List"] == {}),
        (
            "missing_pagination",
            lambda r: (
                "Pagination" not in r.json()["Result"] and len(r.json()["Result"]["List"]) == 20
            ),
        ),
    ],
)
def test_malformed_answers(emu: Emulator, kind: str, check: Any) -> None:
    emu.faults.add(kind)
    response = post(emu.endpoint, {})
    assert check(response), response.text[:300]
    if kind in ("missing_result", "list_not_list", "missing_pagination"):
        assert "Error" not in response.json()["ResponseMetadata"]
    assert post(emu.endpoint, {}).status_code == 200


def test_every_fault_kind_is_covered() -> None:
    covered = {kind for kind, *_ in ENVELOPES} | {
        "error",
        "stall",
        "reset",
        "truncated",
        "html_502",
        "non_json",
        "empty_body",
        "missing_result",
        "list_not_list",
        "missing_pagination",
        "drip",  # test_drip_sends_the_page_a_byte_at_a_time_so_no_read_times_out
        "bomb",  # test_bomb_is_a_small_gzip_body_that_inflates_to_the_page_plus_size
    }
    assert covered == set(FAULT_KINDS)


def test_faults_can_target_one_page(emu: Emulator) -> None:
    emu.faults.add("internal_error", page=2)
    with requests.Session() as session:
        codes = [
            post(emu.endpoint, {"PageNum": num}, session=session).status_code
            for num in (1, 2, 3, 2)
        ]
    assert codes == [200, 500, 200, 200]
    emu.faults.add("common_err", page=3, times=None)
    assert all(
        error_of(post(emu.endpoint, {"PageNum": 3}))["Code"] == "CommonErr" for _ in range(3)
    )
    assert len(emu.faults.pending()) == 1
    emu.faults.clear()
    assert post(emu.endpoint, {"PageNum": 3}).status_code == 200


def test_probabilistic_faults_are_seeded() -> None:
    def outcomes(seed: int) -> list[int]:
        with Emulator(tasks=10, now=NOW, rate_limit=None, fault_seed=seed) as emu:
            emu.faults.add("internal_error", probability=0.3, times=None)
            with requests.Session() as session:
                return [post(emu.endpoint, {}, session=session).status_code for _ in range(60)]

    first, again, other = outcomes(5), outcomes(5), outcomes(6)
    assert first == again and first != other
    assert 8 <= first.count(500) <= 30


def test_fault_specs_as_on_the_command_line(emu: Emulator) -> None:
    fault = emu.faults.add_spec("stall:seconds=2.5,page=4,times=none")
    assert (fault.kind, fault.seconds, fault.page, fault.remaining) == ("stall", 2.5, 4, None)
    error = emu.faults.add_spec("error:code=AccessDenied,probability=0.5")
    assert error.code == "AccessDenied" and error.probability == 0.5
    with pytest.raises(ValueError):
        emu.faults.add_spec("common_err:times")


def test_latency_with_jitter(emu: Emulator) -> None:
    emu.latency = 0.2
    started = time.perf_counter()
    assert post(emu.endpoint, {}).status_code == 200
    assert time.perf_counter() - started >= 0.2
    emu.latency, emu.latency_jitter = 0.0, 0.1
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        post(emu.endpoint, {})
        timings.append(time.perf_counter() - started)
    # Up to 0.1 s of jitter each; generous headroom for a loaded machine.
    assert max(timings) < 1.0 and max(timings) > min(timings)


def test_hook_sees_every_page_and_its_errors_do_not_break_serving(emu: Emulator) -> None:
    pages: list[int] = []
    emu.on_request(pages.append)

    def broken(page_num: int) -> None:
        raise RuntimeError("test hook failed")

    emu.on_request(broken)
    for num in (1, 5, 2):
        assert post(emu.endpoint, {"PageNum": num}).status_code == 200
    post(emu.endpoint, {"PageNum": 0})  # refused before the hook
    assert pages == [1, 5, 2]
    assert len(emu.hook_errors) == 3
    emu.on_request(None)
    post(emu.endpoint, {"PageNum": 9})
    assert pages == [1, 5, 2]


def test_stats_count_statuses_codes_and_throttling(emu: Emulator) -> None:
    emu.faults.add("flow_limit")
    post(emu.endpoint, {})
    post(emu.endpoint, {"PageSize": 7})
    post(emu.endpoint, {"PageSize": 0})
    requests.post(emu.endpoint + PATH, data=b"{}", timeout=10)
    stats = emu.stats
    assert stats.requests == 4 and stats.throttled == 1
    assert stats.by_status == {429: 1, 200: 1, 400: 1, 401: 1}
    assert stats.by_code == {
        "FlowLimitExceeded": 1,
        "InvalidParam": 1,
        "MissingAuthenticationToken": 1,
    }
    assert stats.pages == 1 and stats.rows == 7
    stats.reset()
    assert stats.snapshot()["requests"] == 0


def test_chunked_request_body_is_read(emu: Emulator) -> None:
    body = b'{"PageNum": 2, "PageSize": 4}'
    headers = signed_json_headers(emu.endpoint + PATH, body)
    response = requests.post(
        emu.endpoint + PATH, data=iter([body[:10], body[10:]]), headers=headers, timeout=10
    )
    assert response.status_code == 200, response.text
    assert response.json()["Result"]["Pagination"]["PageCur"] == 2


def test_keep_alive_serves_many_requests_on_one_connection(emu: Emulator) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=10)
    sockets = set()
    for num in range(1, 6):
        body = json.dumps({"PageNum": num, "PageSize": 50}).encode()
        headers = signed_json_headers(emu.endpoint + PATH, body)
        conn.request("POST", PATH, body=body, headers=headers)
        response = conn.getresponse()
        assert response.status == 200 and response.version == 11
        assert json.loads(response.read())["Result"]["Pagination"]["PageCur"] == num
        sockets.add(id(conn.sock))
    conn.close()
    assert len(sockets) == 1


def test_control_api_over_http(emu: Emulator) -> None:
    control = emu.endpoint + "/_emulator"
    assert requests.get(control + "/health", timeout=10).json() == {"ok": True}
    added = requests.post(control + "/faults", json={"kind": "common_err", "times": 2}, timeout=10)
    assert added.status_code == 201 and added.json()["remaining"] == 2
    assert error_of(post(emu.endpoint, {}))["Code"] == "CommonErr"
    assert requests.delete(control + "/faults", timeout=10).ok
    assert post(emu.endpoint, {}).status_code == 200

    created = requests.post(control + "/tasks", json={"Stream": "via-http"}, timeout=10).json()
    raw = requests.post(control + "/tasks?raw=1", json=[{"odd": 1}], timeout=10).json()
    assert raw == [{"odd": 1}]
    task_url = f"{control}/tasks/{created['TaskId']}"
    patched = requests.patch(
        task_url, json={"Status": "停用", "_remove": ["App"]}, timeout=10
    ).json()
    assert patched["Status"] == "停用" and "App" not in patched
    assert requests.get(task_url, timeout=10).json() == patched
    assert requests.delete(task_url, timeout=10).json() == patched
    assert requests.get(task_url, timeout=10).status_code == 404

    lines = requests.get(control + "/tasks", timeout=30).text.splitlines()
    assert [json.loads(line) for line in lines] == list(emu.store.all_tasks())

    config = requests.post(
        control + "/config", json={"latency": 0.05, "rate_limit": 7, "retry_after": 1}, timeout=10
    ).json()
    assert config["latency"] == 0.05 and config["rate_limit"] == 7 and emu.latency == 0.05
    requests.post(control + "/advance", json={"now": "2030-01-01T00:00:00Z"}, timeout=10)
    assert emu.store.clock == datetime(2030, 1, 1, tzinfo=timezone.utc).timestamp()
    stats = requests.get(control + "/stats", timeout=10).json()
    assert stats["count"] == emu.store.count and stats["by_status"]["200"] >= 1
    assert "CommonErr" in stats["by_code"]
    # Control requests are neither counted nor signed.
    assert stats["requests"] == emu.stats.requests


# ------------------------------------------------------------------------ 9. CLI


def _start_cli(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "volcengine_live_emulator",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    endpoint = process.stdout.readline().strip()
    return process, endpoint


def test_cli_serves_with_flags_and_stops_on_sigterm() -> None:
    process, endpoint = _start_cli(
        "--tasks", "1200", "--seed", "3", "--access-key-id", "AKCLI",
        "--secret-access-key", "cli-secret", "--rate-limit", "none",
        "--fault", "common_err:times=1", "--fault", "internal_error:page=2",
        "--now", "2026-03-01T04:00:00Z",
    )  # fmt: skip
    try:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", endpoint), endpoint
        creds: dict[str, Any] = {"ak": "AKCLI", "sk": "cli-secret"}
        assert error_of(post(endpoint, {}, **creds))["Code"] == "CommonErr"
        assert post(endpoint, {"PageNum": 2}, **creds).status_code == 500
        first = page(endpoint, 1, 500, **creds)["Result"]
        assert first["Pagination"]["TotalCount"] == 1200
        assert post(endpoint, {}).status_code == 401  # the default key is not configured
        # Same seed and anchor in-process: the same tasks.
        expected = Emulator(tasks=1200, seed=3, now=NOW).store.all_tasks()
        assert first["List"] == [next(expected) for _ in range(500)]

        control = endpoint + "/_emulator"
        requests.post(control + "/tasks", json={"TaskId": "cli-made"}, timeout=10)
        lines = requests.get(control + "/tasks", timeout=30).text.splitlines()
        assert len(lines) == 1201 and json.loads(lines[0])["TaskId"] == "cli-made"
        stats = requests.get(control + "/stats", timeout=10).json()
        assert stats["by_status"] == {"200": 2, "401": 1, "500": 1}  # CommonErr is an HTTP 200
        assert stats["by_code"]["CommonErr"] == 1
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


def test_cli_sigint_and_bad_fault_spec() -> None:
    process, endpoint = _start_cli("--tasks", "5", "--rate-limit", "3", "--latency", "0.01")
    try:
        with requests.Session() as session:
            codes = [post(endpoint, {}, session=session).status_code for _ in range(5)]
        assert codes.count(429) >= 1
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    bad = subprocess.run(
        [sys.executable, "-m", "volcengine_live_emulator", "--fault", "nonsense"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "unknown fault kind" in bad.stderr


def test_console_script_entry_point_is_main() -> None:
    from volcengine_live_emulator.__main__ import build_parser, main

    assert callable(main)
    args = build_parser().parse_args(["--rate-limit", "none", "--fault", "reset"])
    assert args.rate_limit is None and args.fault == ["reset"]
    assert math.isclose(build_parser().parse_args([]).rate_limit, 50.0)
    assert os.path.basename(sys.executable)  # the subprocess tests use this interpreter
