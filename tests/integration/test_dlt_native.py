"""The source as a dlt user runs it: a plain script (``import dlt``, the source, three lines)
in its own process, credentials in the environment the way the official SDKs read them, no
project helper in between; loaded twice into a real DuckDB file against the emulator.

The edge check (``scripts/edge-check.sh``) runs this file in venvs a user builds (``pip
install "dlt[duckdb]"`` then the package), at the newest and the oldest dlt of the range.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import duckdb
import pytest

from volcengine_live_emulator import Emulator

from helpers import ACCESS_KEY_ID, SECRET_ACCESS_KEY, make_emulator, now

DATASET = "volcengine_live_dataset"

USER_SCRIPT = textwrap.dedent(
    """
    import dlt
    from volcengine_live import volcengine_live_source

    pipeline = dlt.pipeline("volcengine_live", destination="duckdb", dataset_name="{dataset}")
    print(pipeline.run(volcengine_live_source()))
    """
).format(dataset=DATASET)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with make_emulator(tasks=1200, seed=5) as emu:
        yield emu


def run_user_script(folder: Path, emulator: Emulator) -> subprocess.CompletedProcess[str]:
    """The script in ``folder``, as its own process: the SDKs' environment variables for the
    keys, dlt's for the endpoint, nothing of this suite's configuration."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SOURCES__", "VOLC", "DESTINATION__", "DLT_"))
    }
    env.update(
        VOLCENGINE_ACCESS_KEY=ACCESS_KEY_ID,
        VOLCENGINE_SECRET_KEY=SECRET_ACCESS_KEY,
        SOURCES__VOLCENGINE_LIVE__ENDPOINT=emulator.endpoint,
        SOURCES__VOLCENGINE_LIVE__MAX_ATTEMPTS="3",
        DLT_DATA_DIR=str(folder / "dlt-data"),  # pipelines out of the user's home
    )
    script = folder / "load.py"
    script.write_text(USER_SCRIPT)
    result = subprocess.run(
        [sys.executable, str(script)], cwd=folder, env=env, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def table(database: Path, sql: str) -> list[tuple[object, ...]]:
    with duckdb.connect(str(database), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_a_plain_dlt_script_loads_exactly_twice_and_flags_a_removed_task(
    emulator: Emulator, tmp_path: Path
) -> None:
    database = tmp_path / "volcengine_live.duckdb"  # dlt's default name for the pipeline
    run_user_script(tmp_path, emulator)
    listed = {task["TaskId"]: task["Status"] for task in emulator.store.all_tasks()}
    loaded = dict(table(database, f"SELECT task_id, status FROM {DATASET}.pull_record_tasks"))
    assert loaded == listed

    removed = next(iter(listed))
    emulator.store.remove_task(removed)
    start = now() - timedelta(hours=1)
    created = emulator.store.create_task(StartTime=start, EndTime=start + timedelta(hours=2))
    run_user_script(tmp_path, emulator)

    rows = table(
        database, f"SELECT task_id, deleted_at IS NOT NULL FROM {DATASET}.pull_record_tasks"
    )
    assert len(rows) == len({task_id for task_id, _ in rows}) == len(listed) + 1
    flagged = {task_id for task_id, deleted in rows if deleted}
    assert flagged == {removed}
    assert created["TaskId"] in {task_id for task_id, _ in rows}


def test_every_row_carries_a_load_id_found_in_dlt_loads(emulator: Emulator, tmp_path: Path) -> None:
    emulator.store.create_task({"StartTime": "not a time"}, raw=True)  # kept as a reject
    database = tmp_path / "volcengine_live.duckdb"
    run_user_script(tmp_path, emulator)
    start = now() - timedelta(minutes=30)
    emulator.store.create_task(StartTime=start, EndTime=start + timedelta(hours=1))
    run_user_script(tmp_path, emulator)

    loads = {row[0] for row in table(database, f"SELECT load_id FROM {DATASET}._dlt_loads")}
    assert len(loads) == 2
    for name in ("pull_record_tasks", "pull_record_task_rejects"):
        ids = table(database, f"SELECT _dlt_load_id, count(*) FROM {DATASET}.{name} GROUP BY 1")
        assert ids, f"{name} is empty"
        assert all(load_id in loads for load_id, _ in ids), (name, ids, loads)
    # the second run rewrote the new task (and the open ones): a second load id in the table
    per_load = dict(
        table(
            database, f"SELECT _dlt_load_id, count(*) FROM {DATASET}.pull_record_tasks GROUP BY 1"
        )
    )
    assert set(per_load) == loads
    assert sum(per_load.values()) == emulator.store.count - 1  # the reject is not a task
