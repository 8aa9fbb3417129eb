"""Requests per run against the pages of one pass, on a busy and on a quiet account (issue 17).

``python benchmarks/busy_account.py [--quick] [--baseline REF]``

The busy account: 50,000 tasks, 50 ms per request, the account's 50 requests/s enforced,
the source told 45 requests/s, and new tasks created at 2 per second while it reads. The
quiet account: the same without new tasks. Each run of the source is a fresh process that
loads into one DuckDB file (the first run loads everything, later runs are incremental);
after each run the table is checked against the tasks the emulator held when the run
began: every one loaded once, with the status the emulator gives it now or a later one
(tasks created during the run may wait for the next run).

``--baseline REF`` also runs the same scenarios with the source as it is at git ``REF``
(``main``, say), from a temporary ``git worktree``, and prints both. ``--quick`` (CI):
10,000 tasks, fewer runs.

Measured on the project's 2-core machine (shared with other jobs), ``--baseline main``:

| account | code | requests per run (pages 101) | scans | late days |
|---|---|---|---|---|
| busy | main | 303, 404, 404 | 3, 4, 4 | 0, 8, 6 |
| busy | this change | 102, 102, 102 | 1, 1, 1 | 0, 0, 0 |
| quiet | both | 101, 101 | 1, 1 | 0, 0 |

Every run exact (no task of the run's start missing, none twice, no stale status).

*pages* is what one pass over the list as it stood at the run's start costs: its pages
(``TotalCount / 500`` rounded up) plus the empty page that shows the end when the last page
is full. *requests* are the page requests the emulator answered during the run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ACCESS_KEY_ID = "AKBENCHMARK"
SECRET_ACCESS_KEY = "benchmark-secret"
PAGE_SIZE = 500
SETTLED = ("已结束", "停用")


@dataclass(frozen=True)
class Scenario:
    name: str
    tasks: int
    grow_per_second: float
    runs: int
    latency: float = 0.05
    told_rps: float = 45.0
    account_rps: float = 50.0


@dataclass
class RunResult:
    scenario: str
    code: str
    run: int
    pages: int
    requests: int
    throttled: int
    scans: int
    late_days: int
    seconds: float
    missed: int
    duplicates: int
    stale: int

    @property
    def ratio(self) -> float:
        return self.requests / self.pages if self.pages else 0.0


def scenarios(quick: bool) -> list[Scenario]:
    tasks = 10_000 if quick else 50_000
    return [
        Scenario("busy", tasks, grow_per_second=2.0, runs=2 if quick else 3),
        Scenario("quiet", tasks, grow_per_second=0.0, runs=2),
    ]


def pages_of_one_pass(total: int) -> int:
    pages = max(1, math.ceil(total / PAGE_SIZE))
    return pages + 1 if total and total % PAGE_SIZE == 0 else pages


def run_scenario(scenario: Scenario, code: str, sources: Path, workdir: Path) -> list[RunResult]:
    sys.path.insert(0, str(ROOT))
    from volcengine_live_emulator import Emulator

    results: list[RunResult] = []
    with Emulator(
        tasks=scenario.tasks,
        seed=2024,
        access_key_id=ACCESS_KEY_ID,
        secret_access_key=SECRET_ACCESS_KEY,
        latency=scenario.latency,
        rate_limit=scenario.account_rps,
        cache_rows=scenario.tasks * 2 + 10_000,
    ) as emu:
        if scenario.grow_per_second:
            emu.store.grow(per_second=scenario.grow_per_second)
        for run in range(1, scenario.runs + 1):
            before = {task["TaskId"]: task["Status"] for task in emu.store.all_tasks()}
            emu.stats.reset()
            started = time.monotonic()
            metrics = _child_run(emu.endpoint, sources, workdir, scenario.told_rps)
            seconds = time.monotonic() - started
            snapshot = emu.stats.snapshot()
            now = {task["TaskId"]: task["Status"] for task in emu.store.all_tasks()}
            missed, duplicates, stale = _check(workdir, before, now)
            results.append(
                RunResult(
                    scenario=scenario.name,
                    code=code,
                    run=run,
                    pages=pages_of_one_pass(len(before)),
                    requests=int(snapshot.get("requests", 0)),
                    throttled=int(snapshot.get("throttled", 0)),
                    scans=int(metrics.get("scans", 0)),
                    late_days=int(metrics.get("late_days", 0)),
                    seconds=round(seconds, 1),
                    missed=missed,
                    duplicates=duplicates,
                    stale=stale,
                )
            )
            print(_row(results[-1]), flush=True)
    return results


def _check(workdir: Path, before: dict[str, str], now: dict[str, str]) -> tuple[int, int, int]:
    """Tasks of the run's start missing from the table, TaskIds in it more than once, and
    tasks whose loaded status is settled where the emulator's is not, or differs from a
    settled one (a status older than the run)."""
    import duckdb

    with duckdb.connect(str(workdir / "tasks.duckdb"), read_only=True) as con:
        rows = con.execute(
            "SELECT task_id, status FROM volcengine_live_dataset.pull_record_tasks"
        ).fetchall()
    loaded: dict[str, str] = {}
    duplicates = 0
    for task_id, status in rows:
        duplicates += task_id in loaded
        loaded[task_id] = status
    missed = sum(1 for task_id in before if task_id not in loaded)
    stale = 0
    for task_id, status in before.items():
        got = loaded.get(task_id)
        if got is None:
            continue
        # Loaded during the run: the status the task had at the start, or a later one.
        if got != status and got != now.get(task_id, got):
            stale += 1
    return missed, duplicates, stale


def _child_run(endpoint: str, sources: Path, workdir: Path, rps: float) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(sources), str(ROOT)]))
    command = [
        sys.executable, str(Path(__file__).resolve()), "--child",
        "--endpoint", endpoint, "--workdir", str(workdir), "--rps", str(rps),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"the source failed:\n{done.stderr[-3000:]}")
    line = done.stdout.strip().splitlines()[-1]
    metrics: dict[str, Any] = json.loads(line)
    return metrics


def child(endpoint: str, workdir: Path, rps: float) -> None:
    """One run of the source found on ``PYTHONPATH``; prints its metrics as JSON."""
    import dlt

    from volcengine_live import VolcengineCredentials, volcengine_live_source

    credentials = VolcengineCredentials()
    credentials.access_key_id = ACCESS_KEY_ID
    credentials.secret_access_key = SECRET_ACCESS_KEY
    pipeline = dlt.pipeline(
        pipeline_name="busy_account",
        destination=dlt.destinations.duckdb(str(workdir / "tasks.duckdb")),
        dataset_name="volcengine_live_dataset",
        pipelines_dir=str(workdir / "pipelines"),
    )
    pipeline.run(
        volcengine_live_source(
            credentials=credentials,
            endpoint=endpoint,
            page_size=PAGE_SIZE,
            requests_per_second=rps,
            max_concurrency=8,
        )
    )
    print(json.dumps(_metrics(pipeline), default=str))


def _metrics(pipeline: Any) -> dict[str, Any]:
    """The resource's custom metrics of the last extract (the same in every version)."""
    extract = pipeline.last_trace.last_extract_info
    for per_load in extract.metrics.values():
        for step in per_load:
            found = step["resource_metrics"].get("pull_record_tasks")
            if found is not None:
                return dict(found.custom_metrics)
    return {}


@contextmanager
def worktree(ref: str) -> Iterator[Path]:
    """A temporary, detached ``git worktree`` of ``ref``; removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="busy-account-baseline-") as parent:
        path = Path(parent) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(path), ref],
            check=True,
        )
        try:
            yield path
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                check=False,
            )


HEADER = (
    "| scenario | code | run | pages | requests | requests/pages | scans | late days "
    "| 429s | s | missed | duplicates | stale |\n|---|---|---:|---:|---:|---:|---:|---:|---:"
    "|---:|---:|---:|---:|"
)


def _row(result: RunResult) -> str:
    return (
        f"| {result.scenario} | {result.code} | {result.run} | {result.pages} | "
        f"{result.requests} | {result.ratio:.2f} | {result.scans} | {result.late_days} | "
        f"{result.throttled} | {result.seconds} | {result.missed} | {result.duplicates} | "
        f"{result.stale} |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10,000 tasks, fewer runs (CI)")
    parser.add_argument("--baseline", metavar="REF", help="also run the source of git REF")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--rps", type=float, default=45.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.endpoint, args.workdir, args.rps)
        return 0
    codes = [args.baseline, "this tree"] if args.baseline else ["this tree"]
    print(HEADER, flush=True)
    results: list[RunResult] = []
    for scenario in scenarios(args.quick):
        for code in codes:
            with tempfile.TemporaryDirectory(prefix="busy-account-") as work:
                if code == "this tree":
                    results += run_scenario(scenario, code, ROOT / "sources", Path(work))
                else:
                    with worktree(code) as tree:
                        results += run_scenario(scenario, code, tree / "sources", Path(work))
    bad = [r for r in results if r.missed or r.duplicates or r.stale]
    mine = [r for r in results if r.code == "this tree"]
    busy = [r.ratio for r in mine if r.scenario == "busy"]
    quiet = [r.requests - r.pages for r in mine if r.scenario == "quiet"]
    print(
        f"\nthis tree: busy account at most {max(busy):.2f} x the pages of one pass per run; "
        f"quiet account at most {max(quiet):+d} request(s) over its pages; "
        f"{'every run exact' if not bad else f'{len(bad)} run(s) NOT exact'}"
    )
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
