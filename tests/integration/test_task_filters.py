"""The task list's optional filters (``vhost``, ``domain``, ``app``, ``stream``): a filtered
run loads exactly the matching tasks, whether the server applies the filters or ignores
them, and never flags a task outside them as deleted. Real pipelines against the emulator
on loopback, into real DuckDB files."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from volcengine_live import ConfigurationError, volcengine_live_source

from helpers import Loader, credentials, make_emulator, now

INSIDE = {"Vhost": "v-in.example", "Domain": "d-in.example", "App": "live"}
OUTSIDE = {"Vhost": "v-out.example", "Domain": "d-out.example", "App": "live"}


def busiest_vhost_and_app(loader: Loader) -> dict[str, str]:
    """The Vhost and App that most generated tasks share: a filter that keeps many tasks
    and leaves out many more."""
    counts = Counter((t["Vhost"], t["App"]) for t in loader.emulator.store.all_tasks())
    (vhost, app), _ = counts.most_common(1)[0]
    return {"vhost": vhost, "app": app}


def matching(loader: Loader, filters: dict[str, str]) -> set[str]:
    return {
        t["TaskId"]
        for t in loader.emulator.store.all_tasks()
        if all(t.get(name.capitalize()) == value for name, value in filters.items())
    }


def loaded(loader: Loader) -> set[str]:
    return {row[0] for row in loader.query("SELECT task_id FROM pull_record_tasks")}


def flagged(loader: Loader) -> set[str]:
    rows = loader.query("SELECT task_id FROM pull_record_tasks WHERE deleted_at IS NOT NULL")
    return {row[0] for row in rows}


@pytest.fixture(params=[True, False], ids=["server_filters", "server_ignores_filters"])
def filtering(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Loader]:
    with make_emulator(tasks=800, filter_tasks=request.param) as emu:
        yield Loader(emu, tmp_path)


def test_a_filtered_run_loads_exactly_the_matching_tasks(filtering: Loader) -> None:
    filters = busiest_vhost_and_app(filtering)
    expected = matching(filtering, filters)
    assert 0 < len(expected) < filtering.emulator.store.count // 2
    metrics = filtering.run(**filters)
    assert loaded(filtering) == expected
    assert metrics["rows_written"] == len(expected)
    server_filters = filtering.emulator.filter_tasks
    assert (metrics["rows_read"] == len(expected)) == server_filters  # else it read them all
    filtering.run(**filters)  # a second run over the same part: nothing flagged, nothing new
    assert loaded(filtering) == expected and not flagged(filtering)


def test_every_filter_narrows_the_tasks_further(filtering: Loader) -> None:
    task = next(t for t in filtering.emulator.store.all_tasks() if t["Status"] == "已结束")
    filters = {name: task[name.capitalize()] for name in ("vhost", "domain", "app", "stream")}
    filtering.run(**filters)
    assert loaded(filtering) == matching(filtering, filters) and task["TaskId"] in loaded(filtering)


def test_a_task_outside_the_filter_is_never_flagged_deleted(filtering: Loader) -> None:
    emu, start = filtering.emulator, now() - timedelta(hours=3)
    ids: dict[str, str] = {}
    for name, fields in (("in", INSIDE), ("out", OUTSIDE), ("out_kept", OUTSIDE)):
        task = emu.store.create_task(
            StartTime=start, EndTime=start + timedelta(hours=1), Stream=f"s-{name}", **fields
        )
        ids[name] = str(task["TaskId"])
    filtering.run()  # everything, the filter's tasks among them
    filters = {"vhost": INSIDE["Vhost"], "app": INSIDE["App"]}
    filtering.run(**filters)
    assert not flagged(filtering)  # the whole rest of the list is outside: none of it flagged

    emu.store.remove_tasks([ids["in"], ids["out"]])
    metrics = filtering.run(**filters)
    assert flagged(filtering) == {ids["in"]} and metrics["deleted"] == 1

    filtering.run()  # unfiltered again: now the task outside is found gone, and flagged
    assert flagged(filtering) == {ids["in"], ids["out"]}


@pytest.mark.parametrize(
    ("name", "value"), [("vhost", "has space"), ("app", 7), ("stream", "a/b"), ("domain", "é")]
)
def test_a_filter_that_is_not_a_name_is_refused_by_name(name: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=name):
        volcengine_live_source(
            credentials=credentials(), endpoint="http://127.0.0.1:9", **{name: value}
        )
