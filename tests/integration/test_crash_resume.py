"""A pipeline process killed with SIGKILL mid-extract or mid-load, then run again: the data
ends exact (every task once, every status current) and no run advances the incremental
state without its data.

The pipeline runs in a child process (a script written to tmp_path) against an emulator in
this process. The child is held where it is to be killed, by handshakes rather than time:
mid-extract, the emulator's request hook holds a page request until the kill; mid-load,
the child's patched load job says where it is on stdout and waits on its stdin, which the
test never answers. So the kill lands at the same point on a fast or a loaded machine. The
re-run happens here, on the same pipelines dir and DuckDB file.
"""

from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from volcengine_live_emulator import Emulator

from helpers import (
    ACCESS_KEY_ID,
    DATASET,
    SECRET_ACCESS_KEY,
    Loader,
    assert_matches_emulator,
    make_emulator,
    now,
)

CHILD = """
import os, sys
import dlt
from volcengine_live import VolcengineCredentials, volcengine_live_source

endpoint, name, dataset, pipelines_dir, database, mode = sys.argv[1:7]
credentials = VolcengineCredentials()
credentials.access_key_id = os.environ["CRASH_TEST_ACCESS_KEY_ID"]
credentials.secret_access_key = os.environ["CRASH_TEST_SECRET_ACCESS_KEY"]
pipeline = dlt.pipeline(
    pipeline_name=name,
    destination=dlt.destinations.duckdb(database),
    dataset_name=dataset,
    pipelines_dir=pipelines_dir,
)
source = volcengine_live_source(
    credentials=credentials,
    endpoint=endpoint,
    page_size=50,
    max_concurrency=2,
    requests_per_second=None,
    max_attempts=3,
    backoff_seconds=0.05,
)
if mode == "run":
    print("extracting", flush=True)
    pipeline.run(source)
else:
    from dlt.destinations.impl.duckdb.duck import DuckDbCopyJob
    from dlt.destinations.job_client_impl import SqlLoadJob

    # mode "copy" holds the load in its first Parquet copy, "merge" in the merge statement
    # (every copy done): the job says so and waits on stdin, which the test never answers.
    job_class = DuckDbCopyJob if mode == "copy" else SqlLoadJob
    run_job = job_class.run

    def held(job):
        print(f"holding {mode}", flush=True)
        sys.stdin.readline()
        run_job(job)

    job_class.run = held
    pipeline.extract(source)
    pipeline.normalize()
    print("loading", flush=True)
    pipeline.load()
print("done", flush=True)
"""

TASKS = 1500


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with make_emulator(TASKS, seed=37) as emu:
        yield emu


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.002)


@dataclass
class Hold:
    """Page requests held in the emulator: ``reached`` is set when one is held, and each
    stays held until ``release`` (two minutes at most, so a broken test cannot hang)."""

    reached: threading.Event
    release: threading.Event
    remove: Callable[[], None]


def hold_requests_after(emulator: Emulator, served: int) -> Hold:
    """Let ``served`` page requests through, then hold every later one."""
    reached, release = threading.Event(), threading.Event()
    seen: list[int] = []
    lock = threading.Lock()

    def hook(page_num: int) -> None:
        with lock:
            seen.append(page_num)
            holding = len(seen) > served
        if holding:
            reached.set()
            release.wait(120)

    return Hold(reached, release, emulator.on_request(hook))


def start_child(loader: Loader, mode: str) -> subprocess.Popen[str]:
    script = loader.workdir / "crash_child.py"
    script.write_text(CHILD)
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SOURCES__VOLCENGINE_LIVE__", "VOLC_"))
    }
    env["CRASH_TEST_ACCESS_KEY_ID"] = ACCESS_KEY_ID
    env["CRASH_TEST_SECRET_ACCESS_KEY"] = SECRET_ACCESS_KEY
    return subprocess.Popen(
        [
            sys.executable,
            str(script),
            loader.emulator.endpoint,
            loader.name,
            DATASET,
            str(loader.workdir / "pipelines"),
            str(loader.duckdb_path),
            mode,
        ],
        cwd=loader.workdir,  # no .dlt/ of the project: the child sees only what it is given
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_line(child: subprocess.Popen[str], expected: str) -> None:
    assert child.stdout is not None
    line = child.stdout.readline().strip()
    if line != expected:
        child.kill()
        _, err = child.communicate(timeout=30)
        raise AssertionError(f"child said {line!r}, not {expected!r}; stderr:\n{err[-3000:]}")


def kill(child: subprocess.Popen[str]) -> None:
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, "the child ended before it was killed"


def package_dirs(loader: Loader, stage: str) -> list[Path]:
    root = loader.workdir / "pipelines" / loader.name / "load" / stage
    return sorted(root.iterdir()) if root.is_dir() else []


def files_in(package: Path, folder: str) -> list[str]:
    where = package / folder
    return sorted(entry.name for entry in where.iterdir()) if where.is_dir() else []


def change_the_list(loader: Loader, old_open: str) -> set[str]:
    """Changes a run must pick up: new and back-dated tasks, an old recording task that
    finished, a scheduled task that started. Returns the TaskIds created."""
    store = loader.emulator.store
    created = set()
    for hours in (1, 30, 24 * 20):
        start = now() - timedelta(hours=hours)
        task = store.create_task(
            StartTime=start, EndTime=start + timedelta(minutes=30), Status="已结束"
        )
        created.add(task["TaskId"])
    store.set_status(old_open, "已结束")
    return created


def create_old_recording_task(loader: Loader) -> str:
    start = now() - timedelta(days=30)
    task = loader.emulator.store.create_task(
        StartTime=start, EndTime=start + timedelta(days=60), Status="生效中"
    )
    return str(task["TaskId"])


def finish_pending_then_run(loader: Loader, **settings: Any) -> dict[str, Any]:
    """What a scheduler's next run does: dlt's ``run`` first finishes a load package left
    by the killed run (and stops there), then the following run extracts afresh."""
    pipeline = loader.pipeline()
    if pipeline.has_pending_data:
        pipeline.run(loader.source(**settings))
        assert not loader.pipeline().has_pending_data
    return loader.run(**settings)


# ------------------------------------------------------------------------- mid-extract


@pytest.mark.parametrize("first_run", [False, True], ids=["first-run", "later-run"])
def test_killed_mid_extract_then_rerun_gives_exact_data(loader: Loader, first_run: bool) -> None:
    old_open = create_old_recording_task(loader)
    if first_run:
        created: set[str] = set()
    else:
        loader.run(page_size=100)
        created = change_the_list(loader, old_open)
    before = copy.deepcopy(loader.state()) if not first_run else None

    # 30 pages of 50: every request after the 6th is held until the child is dead.
    loader.emulator.stats.reset()
    hold = hold_requests_after(loader.emulator, 6)
    try:
        child = start_child(loader, "run")
        read_line(child, "extracting")
        assert hold.reached.wait(120), "the child never asked for a 7th page"
        kill(child)
    finally:
        hold.remove()
        hold.release.set()  # the held requests answer a dead client
    assert loader.emulator.stats.pages < TASKS // 50, "the extract finished before the kill"

    # A half-extracted package is never loaded: nothing is pending, the state did not move.
    assert not loader.pipeline().has_pending_data
    if before is not None:
        assert loader.state() == before

    finish_pending_then_run(loader, page_size=100)
    assert_matches_emulator(loader)
    rows = loader.rows()
    assert created <= rows.keys()
    assert rows[old_open]["status"] == loader.emulator.store.get_task(old_open)["Status"]


# ---------------------------------------------------------------------------- mid-load

# Where in the load step the child is killed: the job it is held in, and what the files of
# its load package show there (checked, or waited for, while the child is held).
KILL_POINTS: dict[str, tuple[str, Callable[[Path], bool]]] = {
    # the load has begun: the Parquet copy of the tasks was picked up and is running
    "job-started": ("copy", lambda package: bool(files_in(package, "started_jobs"))),
    # the state row is in the destination, the tasks are not merged yet
    "state-committed": (
        "merge",
        lambda package: any(
            name.startswith("_dlt_pipeline_state") for name in files_in(package, "completed_jobs")
        ),
    ),
    # the tasks are in the staging table, the merge statement is pending
    "merge-pending": (
        "merge",
        lambda package: any(
            name.endswith(".sql")
            for folder in ("new_jobs", "started_jobs")
            for name in files_in(package, folder)
        ),
    ),
}


def kill_mid_load(loader: Loader, point: str) -> None:
    held_in, reached = KILL_POINTS[point]
    child = start_child(loader, held_in)
    read_line(child, "loading")
    packages = package_dirs(loader, "normalized")
    assert len(packages) == 1
    package = packages[0]
    read_line(child, f"holding {held_in}")
    # The child cannot pass the held job; the other jobs of the package (the state row)
    # finish on their own, so this waits for an event, not for a moment.
    wait_until(lambda: reached(package), 120, f"kill point {point}")
    loaded = [done.name for done in package_dirs(loader, "loaded")]
    assert package.is_dir() and package.name not in loaded
    kill(child)


@pytest.mark.parametrize(
    ("point", "first_run"),
    [
        pytest.param("job-started", True, id="first-run-job-started"),
        *(pytest.param(point, False, id=f"later-run-{point}") for point in KILL_POINTS),
    ],
)
def test_killed_mid_load_then_rerun_gives_exact_data(
    loader: Loader, point: str, first_run: bool
) -> None:
    old_open = create_old_recording_task(loader)
    created: set[str] = set()
    if not first_run:
        loader.run(page_size=100)
        created = change_the_list(loader, old_open)

    kill_mid_load(loader, point)

    # The package the child normalized is still there: the next run finishes it first.
    assert loader.pipeline().has_pending_data
    finish_pending_then_run(loader, page_size=100)
    assert_matches_emulator(loader)
    rows = loader.rows()
    assert created <= rows.keys()
    assert rows[old_open]["status"] == loader.emulator.store.get_task(old_open)["Status"]
    assert not loader.pipeline().has_pending_data


@pytest.mark.parametrize("point", ["state-committed", "merge-pending"])
def test_killed_mid_load_on_a_machine_that_then_loses_its_pipelines_dir(
    loader: Loader, point: str
) -> None:
    """The next run starts with no local state (a fresh container), so dlt restores the
    state from the destination. The killed load had already written its state row; that row
    belongs to a load that never completed and must not be restored, or the old task that
    finished in the meantime would keep its stale status (it is below the window and no
    longer in the open set of the killed run's state)."""
    old_open = create_old_recording_task(loader)
    loader.run(page_size=100)
    created = change_the_list(loader, old_open)

    kill_mid_load(loader, point)
    # The danger is real: the destination holds the killed load's state row.
    orphans = loader.query(
        "SELECT count(*) FROM _dlt_pipeline_state "
        "WHERE _dlt_load_id NOT IN (SELECT load_id FROM _dlt_loads)"
    )
    assert orphans == [(1,)]
    shutil.rmtree(loader.workdir / "pipelines")

    loader.run(page_size=100)
    assert_matches_emulator(loader)
    rows = loader.rows()
    assert created <= rows.keys()
    assert rows[old_open]["status"] == "已结束"
