"""The emulator's hostile data (``volcengine_live_emulator.hostile``): TaskIds listed twice
on two pages, extra fields named like the loader's own columns, times no database holds,
NUL bytes in TaskIds; in-process and from the ``volcengine-live-emulator`` command."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter

import pytest
import requests

from volcengine_live_emulator.hostile import ODD_TIMES, HostileData, make_hostile

from helpers import make_emulator

SPEC = "listed_twice=2,extra_fields=4,odd_times=2,nul_task_ids=1,seed=5"


def test_the_spec_names_how_many_tasks_get_each_kind_and_refuses_what_it_does_not_know() -> None:
    assert HostileData.parse(SPEC) == HostileData(2, 4, 2, 1, 5)
    assert HostileData.parse("odd-times") == HostileData(odd_times=1)
    for bad in ("sideways=1", "listed_twice=many", "odd_times=-1"):
        with pytest.raises(ValueError):
            HostileData.parse(bad)


def test_hostile_data_is_served_as_asked_each_kind_on_its_own_tasks() -> None:
    with make_emulator(tasks=1000) as emu:
        before = emu.store.count
        touched = make_hostile(emu.store, HostileData.parse(SPEC))
        listed = list(emu.store.all_tasks())
    assert len(listed) == before + 2 + 1  # two copies and one NUL TaskId
    places: dict[str, list[int]] = {}
    for place, task in enumerate(listed):
        places.setdefault(task["TaskId"], []).append(place)
    for task_id in touched["listed_twice"]:
        first, second = places[task_id]
        assert first // 100 != second // 100  # on two pages of 100, not side by side
    assert Counter(len(p) for p in places.values()) == Counter({1: before - 1, 2: 2})
    by_id = {task["TaskId"]: task for task in listed}
    extra = [set(by_id[task_id]) - {"TaskId", "StartTime", "EndTime", "Vhost", "Domain",
             "App", "Stream", "Status"} for task_id in touched["extra_fields"]]  # fmt: skip
    assert {"DeletedAt", "Account", "SeenAt", "DataIssues", "StatusCode"} <= set().union(*extra)
    odd = {(name, by_id[task_id][name]) for task_id, (name, _) in zip(
        touched["odd_times"], ODD_TIMES, strict=False)}  # fmt: skip
    assert odd == set(ODD_TIMES[:2])
    (nul_id,) = touched["nul_task_ids"]
    assert "\x00" in nul_id and nul_id in by_id


def test_the_same_seed_makes_the_same_hostile_list() -> None:
    lists = []
    for _ in range(2):
        with make_emulator(tasks=300) as emu:
            make_hostile(emu.store, HostileData.parse(SPEC))
            lists.append([task["TaskId"] for task in emu.store.all_tasks()])
    assert lists[0] == lists[1]


def test_the_command_serves_hostile_data_and_refuses_a_bad_spec() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "volcengine_live_emulator", "--port", "0", "--tasks", "300",
         "--hostile-data", SPEC],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        endpoint = process.stdout.readline().strip()
        lines = requests.get(endpoint + "/_emulator/tasks", timeout=30).text.splitlines()
        ids = Counter(json.loads(line)["TaskId"] for line in lines)
        assert len(lines) == 303 and sorted(ids.values())[-2:] == [2, 2]
        assert any("\x00" in task_id for task_id in ids)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    bad = subprocess.run(
        [sys.executable, "-m", "volcengine_live_emulator", "--hostile-data", "sideways"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "unknown hostile data" in bad.stderr
