"""The emulator's moving list: task removal and restoring, list orders, a list that grows,
shrinks and reorders during a scan, per-key rate limits and the pre-rendered fast mode.

Every test reads pages over real HTTP on 127.0.0.1; nothing asserts on timing.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import requests

from volcengine_live_emulator import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_SECRET_ACCESS_KEY,
    LIST_ORDERS,
    Emulator,
)
from volcengine_live_emulator.data import parse_rfc3339
from volcengine_live_emulator.signing import sign

AK = DEFAULT_ACCESS_KEY_ID
SK = DEFAULT_SECRET_ACCESS_KEY
PATH = "/?Action=ListPullRecordTask&Version=2023-01-01"
NOW = datetime(2026, 3, 1, 4, 0, tzinfo=timezone.utc)


def post(
    endpoint: str,
    body: dict[str, Any],
    *,
    ak: str = AK,
    sk: str = SK,
    session: requests.Session | None = None,
) -> requests.Response:
    data = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    headers.update(
        sign(
            method="POST",
            url=endpoint + PATH,
            headers=headers,
            body=data,
            access_key_id=ak,
            secret_access_key=sk,
        )
    )
    return (session or requests).post(endpoint + PATH, data=data, headers=headers, timeout=10)


def page(endpoint: str, num: int, size: int, **kwargs: Any) -> dict[str, Any]:
    response = post(endpoint, {"PageNum": num, "PageSize": size}, **kwargs)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["Result"]
    return result


def scan(endpoint: str, size: int) -> list[dict[str, Any]]:
    """Pages until an empty one, as a naive client reads."""
    rows: list[dict[str, Any]] = []
    with requests.Session() as session:
        num = 1
        while True:
            items = page(endpoint, num, size, session=session)["List"]
            if not items:
                return rows
            rows.extend(items)
            num += 1


def ids(rows: list[dict[str, Any]]) -> list[str]:
    return [row["TaskId"] for row in rows]


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(tasks=1000, seed=7, now=NOW, rate_limit=None) as emulator:
        yield emulator


# ------------------------------------------------------------------- removal


def test_removed_tasks_vanish_and_come_back_with_their_fields(emu: Emulator) -> None:
    before = scan(emu.endpoint, 100)
    emu.store.update_task(before[3]["TaskId"], Stream="edited")
    before[3]["Stream"] = "edited"
    made = emu.store.create_task(Stream="made-here")
    before.insert(0, made)
    chosen = [before[0], before[3], before[150], before[-1]]  # created, edited, generated
    removed = emu.store.remove_tasks(row["TaskId"] for row in chosen)
    assert removed == chosen

    first = page(emu.endpoint, 1, 100)
    assert first["Pagination"]["TotalCount"] == 997
    after = scan(emu.endpoint, 100)
    gone = set(ids(chosen))
    assert after == [row for row in before if row["TaskId"] not in gone]  # pages shifted up
    assert all(emu.store.get_task(task_id) is None for task_id in gone)
    assert sorted(emu.store.removed_task_ids()) == sorted(gone)
    assert emu.store.removed_count == 4
    with pytest.raises(KeyError):
        emu.store.update_task(chosen[1]["TaskId"], Status="停用")
    with pytest.raises(KeyError):  # not in the list any more: nothing changes
        emu.store.remove_tasks([before[5]["TaskId"], chosen[0]["TaskId"]])
    assert emu.store.count == 997

    # The clock moves while they are away: they come back exactly as they left.
    emu.store.advance(NOW.timestamp() + 86400)
    now_listed = {row["TaskId"]: row for row in scan(emu.endpoint, 500)}
    assert emu.store.restore_tasks([chosen[2]["TaskId"]]) == [chosen[2]]
    assert emu.store.get_task(chosen[2]["TaskId"]) == chosen[2]
    restored = emu.store.restore_tasks()
    assert sorted(ids(restored)) == sorted(ids([chosen[0], chosen[1], chosen[3]]))
    assert emu.store.removed_task_ids() == []
    with pytest.raises(KeyError):
        emu.store.restore_tasks([chosen[0]["TaskId"]])
    final = scan(emu.endpoint, 100)
    assert ids(final) == ids(before)  # same TaskIds, same places
    assert {row["TaskId"]: row for row in final if row["TaskId"] not in gone} == now_listed
    assert [row for row in final if row["TaskId"] in gone] == chosen


def test_removal_over_the_control_api(emu: Emulator) -> None:
    control = emu.endpoint + "/_emulator"
    rows = scan(emu.endpoint, 500)
    answer = requests.post(
        control + "/remove", json={"task_ids": [rows[1]["TaskId"], rows[7]["TaskId"]]}, timeout=10
    )
    assert answer.status_code == 200 and answer.json()["count"] == 998
    assert ids(answer.json()["removed"]) == [rows[1]["TaskId"], rows[7]["TaskId"]]
    oldest = requests.post(control + "/remove", json={"oldest": 3}, timeout=10).json()
    assert ids(oldest["removed"]) == ids(rows[-3:])[::-1] and oldest["count"] == 995
    listed = requests.get(control + "/removed", timeout=10).json()
    assert listed["count"] == 5 and len(listed["task_ids"]) == 5
    assert page(emu.endpoint, 1, 10)["List"] == [rows[0], *rows[2:7], *rows[8:12]]
    missing = requests.post(control + "/remove", json={"task_ids": ["nope"]}, timeout=10)
    assert missing.status_code == 404
    one = requests.post(control + "/restore", json={"task_ids": [rows[7]["TaskId"]]}, timeout=10)
    assert one.json()["restored"] == [rows[7]] and one.json()["count"] == 996
    rest = requests.post(control + "/restore", json={}, timeout=10).json()
    assert len(rest["restored"]) == 4 and rest["count"] == 1000
    assert scan(emu.endpoint, 500) == rows


def test_removal_during_a_scan_through_the_request_hook(emu: Emulator) -> None:
    original = ids(list(emu.store.all_tasks()))
    removed: list[str] = []

    def remove_on_page_3(page_num: int) -> None:
        if page_num == 3 and not removed:
            # Five tasks of page 1 (already read) leave: every later row moves up five places.
            removed.extend(original[10:15])
            emu.store.remove_tasks(removed)

    unhook = emu.on_request(remove_on_page_3)
    seen = ids(scan(emu.endpoint, 100))
    unhook()
    assert seen[:200] == original[:200]
    # Rows 200..204 slid onto page 2, which was read before they got there: never seen.
    assert seen[200:] == original[205:]
    assert set(original) - set(seen) == set(original[200:205])
    emu.store.restore_tasks()
    assert ids(scan(emu.endpoint, 100)) == original


# --------------------------------------------------------------------- orders


def test_every_list_order_over_http() -> None:
    with Emulator(tasks=700, seed=3, now=NOW, rate_limit=None) as emu:
        newest = scan(emu.endpoint, 100)
        by_id = {row["TaskId"]: row for row in newest}
        assert newest == list(emu.store.all_tasks())
        scans: dict[str, list[dict[str, Any]]] = {}
        for order in LIST_ORDERS:
            emu.store.list_order = order
            scans[order] = scan(emu.endpoint, 100)
            if order != "unstable":
                assert scans[order] == list(emu.store.all_tasks()), order
        assert scans["newest_first"] == newest
        assert scans["oldest_first"] == newest[::-1]

        def start(row: dict[str, Any]) -> float:
            value = parse_rfc3339(row["StartTime"])
            assert value is not None
            return value

        desc = scans["start_time_desc"]
        assert [start(r) for r in desc] == sorted((start(r) for r in newest), reverse=True)
        assert [start(r) for r in scans["start_time_asc"]] == sorted(start(r) for r in newest)
        assert desc != newest  # creation and StartTime orders differ (jittered schedules)

        shuffled = scans["random"]
        assert sorted(ids(shuffled)) == sorted(by_id) and shuffled != newest
        emu.store.list_order = "random"
        assert scan(emu.endpoint, 100) == shuffled  # stable from request to request

        unstable = ids(scans["unstable"])
        assert len(unstable) == 700  # every page full...
        assert len(set(unstable)) < 700  # ...but pages overlap, so some tasks are missed
        emu.store.list_order = "unstable"
        assert page(emu.endpoint, 1, 50)["List"] != page(emu.endpoint, 1, 50)["List"]

        with pytest.raises(ValueError, match="unknown list order"):
            emu.store.list_order = "sideways"


def test_sorted_orders_follow_changes_as_a_full_sort_would() -> None:
    with Emulator(tasks=600, seed=4, now=NOW, rate_limit=None, list_order="random") as emu:
        store = emu.store
        before = ids(scan(emu.endpoint, 100))
        made = [store.create_task()["TaskId"] for _ in range(20)]
        store.remove_tasks(before[10:15])
        after = ids(scan(emu.endpoint, 100))
        # Old tasks keep their relative order; the new ones land anywhere, not all on page 1.
        assert [t for t in after if t not in made] == [t for t in before if t not in before[10:15]]
        assert set(made) <= set(after) and after[:20] != made[::-1]
        store.reshuffle(seed=4)  # the same permutation, sorted from scratch
        assert ids(scan(emu.endpoint, 100)) == after
        store.reshuffle(seed=99)
        reshuffled = ids(scan(emu.endpoint, 100))
        assert sorted(reshuffled) == sorted(after) and reshuffled != after

        store.set_list_order("start_time_desc")
        top = page(emu.endpoint, 1, 1)["List"][0]
        last = scan(emu.endpoint, 100)[-1]
        store.update_task(last["TaskId"], StartTime="2030-01-01T00:00:00Z")
        assert page(emu.endpoint, 1, 1)["List"][0]["TaskId"] == last["TaskId"]
        assert page(emu.endpoint, 1, 2)["List"][1] == top
        store.create_task({"TaskId": "no-time", "StartTime": "soon"}, raw=True)
        assert scan(emu.endpoint, 100)[-1]["TaskId"] == "no-time"  # unparseable: last


def test_reordering_during_a_scan(emu: Emulator) -> None:
    original = ids(list(emu.store.all_tasks()))

    def reorder_on_page_4(page_num: int) -> None:
        if page_num == 4:
            emu.store.list_order = "random"

    unhook = emu.on_request(reorder_on_page_4)
    seen = ids(scan(emu.endpoint, 100))
    unhook()
    assert seen[:300] == original[:300]
    assert len(seen) == 1000 and len(set(seen)) < 1000  # the rest came from another order


def test_list_order_from_the_control_api_and_the_cli() -> None:
    with Emulator(tasks=50, seed=1, now=NOW, rate_limit=None) as emu:
        newest = ids(scan(emu.endpoint, 20))
        control = emu.endpoint + "/_emulator"
        config = requests.post(
            control + "/config", json={"list_order": "oldest_first"}, timeout=10
        ).json()
        assert config["list_order"] == "oldest_first" == emu.store.list_order
        assert ids(scan(emu.endpoint, 20)) == newest[::-1]
        requests.post(
            control + "/config", json={"list_order": "random", "order_seed": 5}, timeout=10
        )
        first = ids(scan(emu.endpoint, 20))
        requests.post(control + "/reshuffle", json={"seed": 6}, timeout=10)
        assert ids(scan(emu.endpoint, 20)) != first
        bad = requests.post(control + "/config", json={"list_order": "sideways"}, timeout=10)
        assert bad.status_code == 400

    process, endpoint = _start_cli("--tasks", "50", "--seed", "1", "--now",
                                   "2026-03-01T04:00:00Z", "--rate-limit", "none",
                                   "--list-order", "oldest_first")  # fmt: skip
    try:
        assert ids(scan(endpoint, 20)) == newest[::-1]
    finally:
        _stop_cli(process)


# ---------------------------------------------------------- a moving list


def test_grow_per_request_shifts_every_page_and_schedules_new_tasks(emu: Emulator) -> None:
    original = ids(list(emu.store.all_tasks()))
    emu.store.grow(per_request=2)
    totals: list[int] = []
    rows: list[dict[str, Any]] = []
    with requests.Session() as session:
        for num in range(1, 11):
            result = page(emu.endpoint, num, 100, session=session)
            totals.append(result["Pagination"]["TotalCount"])
            rows.extend(result["List"])
    flows = emu.store.stop_flows()
    assert flows[0]["kind"] == "grow" and flows[0]["done"] == 20
    assert totals == [1002 + 2 * n for n in range(10)]
    seen = ids(rows)
    # Page n starts 2n rows later than it would have: the first pages repeat tasks...
    assert seen[:100] == ids(list(emu.store.all_tasks()))[18:118]
    # ...and the grown tasks are scheduled a minute after the store clock, not started.
    grown = [row for row in emu.store.all_tasks()][:20]
    assert all(row["Status"] == "未开始" for row in grown)
    assert all(parse_rfc3339(row["StartTime"]) == NOW.timestamp() + 60 for row in grown)
    assert all(parse_rfc3339(row["EndTime"]) == NOW.timestamp() + 60 + 3600 for row in grown)
    assert set(original) - set(seen)  # a naive scan misses old tasks pushed across pages
    before = emu.store.count
    page(emu.endpoint, 1, 10)
    assert emu.store.count == before  # stopped


def test_grow_by_wall_clock_until_its_limit(emu: Emulator) -> None:
    emu.store.grow(per_second=500, limit=40, start_ahead=120)
    deadline = time.monotonic() + 60
    while emu.store.count < 1040 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert emu.store.count == 1040
    assert page(emu.endpoint, 1, 1)["Pagination"]["TotalCount"] == 1040
    newest = page(emu.endpoint, 1, 40)["List"]
    starts = [parse_rfc3339(row["StartTime"]) for row in newest]
    assert all(s is not None and s >= NOW.timestamp() + 120 for s in starts)
    assert emu.store.flows()[0]["done"] == 40
    with pytest.raises(ValueError):
        emu.store.grow()


def test_shrink_removes_the_oldest_and_they_can_come_back(emu: Emulator) -> None:
    original = list(emu.store.all_tasks())
    emu.store.shrink(per_request=3)
    totals = [page(emu.endpoint, n, 100)["Pagination"]["TotalCount"] for n in range(1, 5)]
    emu.store.stop_flows()
    assert totals == [997, 994, 991, 988]
    assert ids(list(emu.store.all_tasks())) == ids(original[:988])
    assert sorted(emu.store.removed_task_ids()) == sorted(ids(original[988:]))
    emu.store.restore_tasks()
    assert list(emu.store.all_tasks()) == original


def test_grow_and_shrink_over_the_control_api_and_the_cli(emu: Emulator) -> None:
    control = emu.endpoint + "/_emulator"
    made = requests.post(control + "/grow", json={"per_request": 1, "start_ahead": 30}, timeout=10)
    assert made.status_code == 201 and made.json()[0]["per_request"] == 1
    requests.post(control + "/shrink", json={"per_request": 1}, timeout=10)
    assert page(emu.endpoint, 1, 10)["Pagination"]["TotalCount"] == 1000  # +1 -1
    flows = requests.get(control + "/flows", timeout=10).json()
    assert [(f["kind"], f["done"]) for f in flows] == [("grow", 1), ("shrink", 1)]
    assert requests.delete(control + "/flows", timeout=10).ok
    assert requests.get(control + "/flows", timeout=10).json() == []
    bad = requests.post(control + "/grow", json={"per_hour": 3}, timeout=10)
    assert bad.status_code == 400

    process, endpoint = _start_cli("--tasks", "100", "--rate-limit", "none",
                                   "--grow-per-request", "5")  # fmt: skip
    try:
        totals = [page(endpoint, 1, 10)["Pagination"]["TotalCount"] for _ in range(3)]
        assert totals == [105, 110, 115]
    finally:
        _stop_cli(process)
    bad_cli = subprocess.run(
        [sys.executable, "-m", "volcengine_live_emulator", "--grow-per-second", "-1"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad_cli.returncode == 2 and "must be positive" in bad_cli.stderr


# ------------------------------------------------------------ rate limits


def test_a_key_limited_below_the_account_default() -> None:
    with Emulator(
        tasks=10, now=NOW, rate_limit=50, credentials={"AKOTHER": "other", "AKTHIRD": "third"}
    ) as emu:
        emu.set_key_rate_limit(AK, 3)
        assert emu.key_rate_limits == {AK: 3}
        with requests.Session() as session:
            mine = [post(emu.endpoint, {}, session=session).status_code for _ in range(5)]
            other = [
                post(emu.endpoint, {}, ak="AKOTHER", sk="other", session=session).status_code
                for _ in range(5)
            ]
        assert mine == [200] * 3 + [429] * 2 and other == [200] * 5
        emu.clear_key_rate_limit(AK)
        emu.reset_rate_limit()
        assert [post(emu.endpoint, {}).status_code for _ in range(5)] == [200] * 5

        # Two keys of one account share its window.
        emu.reset_rate_limit()
        emu.set_account("AKTHIRD", "shared")
        emu.set_account("AKOTHER", "shared")
        emu.set_key_rate_limit("shared", 4)
        codes = [
            post(emu.endpoint, {}, ak=ak, sk=sk).status_code
            for ak, sk in [("AKOTHER", "other"), ("AKTHIRD", "third")] * 3
        ]
        assert codes == [200] * 4 + [429] * 2


def test_key_rate_limits_over_the_control_api_and_the_cli() -> None:
    with Emulator(tasks=10, now=NOW, rate_limit=50, credentials={"AKOTHER": "other"}) as emu:
        control = emu.endpoint + "/_emulator"
        config = requests.post(
            control + "/config",
            json={"key_rate_limits": {AK: 2, "AKOTHER": "none"}, "accounts": {}},
            timeout=10,
        ).json()
        assert config["key_rate_limits"] == {AK: 2.0, "AKOTHER": None}
        assert [post(emu.endpoint, {}).status_code for _ in range(3)] == [200, 200, 429]
        requests.post(control + "/config", json={"key_rate_limits": {AK: None}}, timeout=10)
        assert emu.key_rate_limits == {"AKOTHER": None}

    process, endpoint = _start_cli("--tasks", "5", "--rate-limit", "50",
                                   "--key-rate-limit", f"{AK}:2")  # fmt: skip
    try:
        with requests.Session() as session:
            codes = [post(endpoint, {}, session=session).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
    finally:
        _stop_cli(process)


# ---------------------------------------------------------------- fast mode


def test_prerendered_pages_are_the_same_bytes_and_follow_changes() -> None:
    plain = Emulator(tasks=2345, seed=9, now=NOW, rate_limit=None)
    with plain, Emulator(tasks=2345, seed=9, now=NOW, rate_limit=None, prerender=500) as fast:
        assert fast.store.prerender_size == 500
        assert scan(fast.endpoint, 500) == scan(plain.endpoint, 500)
        assert page(fast.endpoint, 2, 100) == page(plain.endpoint, 2, 100)  # other sizes too
        made = fast.store.create_task(Stream="after-render")
        plain.store.create_task(made, raw=True)
        assert page(fast.endpoint, 1, 500)["List"][0] == made
        assert page(fast.endpoint, 5, 500)["Pagination"]["TotalCount"] == 2346
        fast.store.advance(NOW.timestamp() + 7 * 86400)
        plain.store.advance(NOW.timestamp() + 7 * 86400)
        assert scan(fast.endpoint, 500) == scan(plain.endpoint, 500)
        # A status that moves without the clock moving still reaches the rendered pages.
        past = {"StartTime": "2026-03-01T00:00:00Z", "EndTime": "2030-01-01T00:00:00Z"}
        for emulator in (fast, plain):
            emulator.store.update_task(made["TaskId"], Status="未开始", **past)
        assert page(fast.endpoint, 1, 500)["List"][0]["Status"] == "未开始"
        for emulator in (fast, plain):
            emulator.store.advance(emulator.store.clock)
        assert page(fast.endpoint, 1, 500)["List"][0]["Status"] == "生效中"
        assert scan(fast.endpoint, 500) == scan(plain.endpoint, 500)


def test_signature_verification_can_be_turned_off_and_is_on_by_default() -> None:
    with Emulator(tasks=20, now=NOW, rate_limit=3) as emu:
        assert emu.verify_signatures
        unsigned = requests.post(emu.endpoint + PATH, data=b"{}", timeout=10)
        assert unsigned.status_code == 401
        emu.verify_signatures = False
        wrong = post(emu.endpoint, {}, sk="not-the-secret")
        assert wrong.status_code == 200  # accepted unchecked, counted for AKEMULATOR
        codes = [post(emu.endpoint, {}).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        requests.post(emu.endpoint + "/_emulator/config", json={"verify_signatures": True},
                      timeout=10)  # fmt: skip
        assert requests.post(emu.endpoint + PATH, data=b"{}", timeout=10).status_code == 401

    process, endpoint = _start_cli("--tasks", "1200", "--rate-limit", "none", "--prerender",
                                   "500", "--no-verify-signatures")  # fmt: skip
    try:
        answer = requests.post(endpoint + PATH, json={"PageNum": 3, "PageSize": 500}, timeout=10)
        assert answer.status_code == 200
        assert len(answer.json()["Result"]["List"]) == 200
        config = requests.get(endpoint + "/_emulator/config", timeout=10).json()
        assert config["prerender"] == 500 and config["verify_signatures"] is False
    finally:
        _stop_cli(process)


# ----------------------------------------------------------------- helpers


def _start_cli(*args: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "volcengine_live_emulator", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    endpoint = process.stdout.readline().strip()
    assert endpoint.startswith("http://"), process.communicate(timeout=10)
    return process, endpoint


def _stop_cli(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0
