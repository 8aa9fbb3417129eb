"""Soak: many consecutive runs against one emulator whose list keeps changing (new tasks,
back-dated tasks, statuses moving through the life cycle, deletes, time passing, tasks
created while a pass is reading) while random transient faults hit random pages. After
every run the destination must equal the emulator's live list.

Deleted tasks are flagged (``deleted_at``, the default ``deleted_tasks = "flag"``; see
"Tasks that leave the list" in the source README): after every run each live task is
present once with its current status and no flag, and every other row is a deleted task
with ``deleted_at`` set. A task deleted before any run saw it has no row.

``test_soak`` runs ``SOAK_RUNS`` runs (default 8) on every ``make test``; ``test_soak_full``
(marker ``soak``) runs 30. Both are seeded: a failure repeats with the same seed.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from volcengine_live_emulator import FINISHED, NOT_STARTED, RECORDING, STOPPED, Emulator

from helpers import ACCESS_KEY_ID, SECRET_ACCESS_KEY, Loader
from reliability_support import assert_live_tasks_match

PAGE_SIZE = 100
TRANSIENT_KINDS = (
    "internal_error",
    "internal_service_error",
    "service_timeout",
    "unavailable",
    "common_err",
    "flow_limit",
    "reset",
    "truncated",
    "html_502",
    "non_json",
    "empty_body",
    "missing_result",
    "list_not_list",
    "missing_pagination",
)
NEXT_STATUSES = {NOT_STARTED: (RECORDING, STOPPED), RECORDING: (FINISHED, STOPPED)}
HOURS_PER_RUN = 1.5
"""The emulator's clock moves up to this much per run; it starts far enough in the past
(anchor) that it never overtakes the wall clock, which the source's cursor uses."""


def soak(tmp_path: Path, runs: int, seed: int) -> Counter[str]:
    rng = random.Random(seed)
    anchor = time.time() - (runs * HOURS_PER_RUN + 2) * 3600
    totals: Counter[str] = Counter()
    with Emulator(
        tasks=600,
        seed=seed,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        rate_limit=None,
        now=anchor,
        fault_seed=seed,
    ) as emu:
        loader = Loader(emu, tmp_path)
        deleted: set[str] = set()
        for run in range(runs):
            if run:  # the first run loads the list as it is
                change_the_list(emu, rng, deleted, totals)
            fired_before = sum(emu.faults.fired.values())
            add_faults(emu, rng, totals)
            remove_hook = move_the_list_during_the_pass(emu, rng, totals)
            try:
                metrics = loader.run(page_size=PAGE_SIZE, max_attempts=8, requests_per_second=None)
            finally:
                remove_hook()
            fired = sum(emu.faults.fired.values()) - fired_before
            context = f"run {run + 1} of {runs}, seed {seed}"
            assert not emu.faults.pending(), f"{context}: a fault did not fire"
            assert metrics["retries"] == fired, context
            assert not emu.hook_errors, context
            try:
                assert_live_tasks_match(loader, deleted)
            except AssertionError as failure:
                raise AssertionError(f"{context}: {failure}") from None
            totals["retries"] += metrics["retries"]
            totals["scans"] += metrics["scans"]
            totals["late_days"] += metrics["late_days"]
            totals["rows_written"] += metrics["rows_written"]
    return totals


def change_the_list(
    emu: Emulator, rng: random.Random, deleted: set[str], totals: Counter[str]
) -> None:
    store = emu.store
    clock = store.clock
    store.advance(clock + rng.uniform(0, HOURS_PER_RUN) * 3600)
    clock = store.clock
    for _ in range(rng.randint(0, 6)):  # new tasks around now; Status follows their times
        start = clock + rng.uniform(-3, 8) * 3600
        store.create_task(StartTime=_at(start), EndTime=_at(start + rng.uniform(0.1, 10) * 3600))
        totals["created"] += 1
    for _ in range(rng.randint(0, 2)):  # created late, with an old StartTime
        start = clock - rng.uniform(2, 80) * 86400
        store.create_task(
            StartTime=_at(start),
            EndTime=_at(start + rng.uniform(0.1, 5) * 3600),
            Status=rng.choice((FINISHED, STOPPED)),
        )
        totals["back_dated"] += 1
    live = [task for task in store.all_tasks() if task["Status"] in NEXT_STATUSES]
    for task in rng.sample(live, min(len(live), rng.randint(0, 5))):
        store.set_status(task["TaskId"], rng.choice(NEXT_STATUSES[task["Status"]]))
        totals["status_changes"] += 1
    for _ in range(rng.choice((0, 0, 1, 2))):
        task = store.delete_at(rng.randrange(store.count))
        deleted.add(task["TaskId"])
        totals["deleted"] += 1


def add_faults(emu: Emulator, rng: random.Random, totals: Counter[str]) -> None:
    pages = -(-emu.store.count // PAGE_SIZE)
    for _ in range(rng.randint(0, 4)):
        kind = rng.choice(TRANSIENT_KINDS)
        page = rng.choice((None, rng.randint(1, pages)))
        emu.faults.add(kind, times=rng.randint(1, 2), page=page)
        totals[f"fault:{kind}"] += 1


def move_the_list_during_the_pass(emu: Emulator, rng: random.Random, totals: Counter[str]) -> Any:
    """Sometimes create a task while the pass is reading (when page 2 is asked for), so
    that TotalCount moves under the scan and the source must read the list again."""
    if rng.random() >= 0.3:
        return lambda: None
    fired: list[int] = []

    def create_during_the_pass(page_num: int) -> None:
        if page_num == 2 and not fired:
            fired.append(page_num)
            start = emu.store.clock - 600
            emu.store.create_task(StartTime=_at(start), EndTime=_at(start + 3600))

    totals["created_during_a_pass"] += 1
    return emu.on_request(create_during_the_pass)


def _at(epoch: float) -> datetime:
    return datetime.fromtimestamp(int(epoch), timezone.utc)


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Iterator[dict[str, Any]]:
    found: dict[str, Any] = {}
    started = time.monotonic()
    yield found
    found["seconds"] = round(time.monotonic() - started, 1)
    print(f"\n{request.node.name}: {dict(sorted(found.items()))}")


def test_soak(tmp_path: Path, report: dict[str, Any]) -> None:
    runs = int(os.environ.get("SOAK_RUNS", "8"))
    totals = soak(tmp_path, runs, seed=int(os.environ.get("SOAK_SEED", "101")))
    report.update(runs=runs, **totals)
    assert totals["retries"] > 0 and totals["deleted"] > 0


@pytest.mark.soak
def test_soak_full(tmp_path: Path, report: dict[str, Any]) -> None:
    totals = soak(tmp_path, 30, seed=202)
    report.update(runs=30, **totals)
    assert totals["retries"] > 0 and totals["late_days"] > 0 and totals["scans"] > 30
    assert totals["deleted"] > 0
