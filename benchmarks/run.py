"""Reproducible benchmark: this source against what users would use instead.

``make bench`` (or ``python benchmarks/run.py``) starts the emulator as its own process,
runs every tool in a fresh process against it (so peak RSS is the tool's own), and writes
``benchmarks/RESULTS.md``. Baselines run in the same command on the same emulator, so the
ratios hold on a noisy machine even when the absolute figures move.

Scenarios:

1. API-bound: 100,000 tasks, 100 ms per request, the account's 50 requests/s enforced.
2. Local-bound: 1,000,000 tasks, no latency, no limit (baselines at 100,000 tasks: at their
   speed and memory a million would take many minutes and gigabytes).
3. Incremental re-run of scenario 2's data with nothing changed, against a full refresh.
4. Limits: the bare client (``requests`` + the official signer + orjson, 8 threads, keeps
   nothing) against the source's extract step alone, alternated in one command.
5. Memory against size: the source end to end at 100,000, 300,000 and 1,000,000 tasks, with
   no task open and with the emulator's default mix (about 13 % open).

The source (and dlt's ``rest_api``) run in ``--runtime-python``: ``make bench`` gives it
``.venv-runtime``, the package as users install it (its dependencies pinned by the lock, no
extras). The SDK loop and the bare client need the SDK and pandas, and run in the
development environment, which has pandas for the notebook; pyarrow imports pandas there
on its first conversion whether used or not, and scenario 5 measures the source there once
too, to show what that costs.

Scenarios 2 to 5 read pages pre-rendered by ``pageserver.py`` (the emulator's data and
JSON, served from memory without signature checks), so that the server is not the bound;
scenario 1 runs against the emulator itself, with its latency and rate limit.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TOOLS = HERE / "tools.py"
ACCOUNT_RPS = 50.0
ROWS_CEILING = ACCOUNT_RPS * 500
KEPT = "## What the figures come from"
"""RESULTS.md from this heading on is written by hand (causes and how each was measured)
and kept when the benchmark rewrites the tables above it."""
SOURCE_RPS = 47.0
"""What the source is told in the API-bound scenario: just under the account's limit."""
RUNTIME_TOOLS = ("source", "extract", "rest_api")
"""Tools run with ``--runtime-python`` (what a user's install has); the others need the
development environment (the official SDK, pandas)."""
runtime_python = sys.executable


@dataclass
class Run:
    scenario: str
    tool: str
    tasks: int
    wall: float
    peak_rss_mb: float
    requests: int
    throttled: int
    output: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return int(self.output.get("rows", 0))

    @property
    def rows_per_second(self) -> float:
        return self.tasks / self.wall if self.wall else 0.0

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.wall if self.wall else 0.0


class EmulatorProcess:
    """The emulator's command line, started on a free loopback port."""

    def __init__(self, tasks: int, latency: float, rate_limit: float | None) -> None:
        command = [
            sys.executable, "-m", "volcengine_live_emulator", "--port", "0",
            "--tasks", str(tasks), "--seed", "2024",
            "--access-key-id", "AKBENCHMARK", "--secret-access-key", "benchmark-secret",
            "--latency", str(latency),
            "--rate-limit", "none" if rate_limit is None else str(rate_limit),
            "--cache-rows", str(tasks + 1000),
        ]  # fmt: skip
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.endpoint = self.process.stdout.readline().strip()
        if not self.endpoint.startswith("http"):
            raise RuntimeError(f"emulator did not start: {self.endpoint!r}")
        self.tasks = tasks

    def warm_up(self) -> None:
        """Read every page once, unmeasured, so that the emulator serves the measured runs
        from its cache of rendered rows: the API is not what this benchmark measures."""
        from volcengine_live.client import ClientConfig, LiveApiClient
        from volcengine_live.scan import Scan

        config = ClientConfig(endpoint=self.endpoint, requests_per_second=None)
        client = LiveApiClient("AKBENCHMARK", "benchmark-secret", config=config)
        try:
            for _ in Scan.of(client, 500):
                pass
        finally:
            client.close()

    def stats(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.endpoint}/_emulator/stats", timeout=10) as answer:
            result: dict[str, Any] = json.load(answer)
            return result

    def reset_stats(self) -> None:
        request = urllib.request.Request(f"{self.endpoint}/_emulator/stats", method="DELETE")
        urllib.request.urlopen(request, timeout=10).close()

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


class PageServerProcess(EmulatorProcess):
    """``pageserver.py``: every page rendered once, served from memory."""

    def __init__(self, tasks: int, open_mix: str = "default") -> None:
        command = [sys.executable, str(HERE / "pageserver.py"), "--tasks", str(tasks)]
        command += ["--seed", "2024", "--open-mix", open_mix]
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None
        self.endpoint = self.process.stdout.readline().strip()
        if not self.endpoint.startswith("http"):
            raise RuntimeError(f"page server did not start: {self.endpoint!r}")
        self.tasks = tasks
        self.open_mix = open_mix

    def warm_up(self) -> None:
        pass


def compile_bytecode() -> None:
    """Write the ``.pyc`` files that ``pip install`` writes, in case the environment was
    installed without them (``uv`` does not compile; ``PYTHONDONTWRITEBYTECODE`` stops
    Python writing them): otherwise every tool's process compiles dlt, pandas and pyarrow
    from source, seconds of start-up that users do not pay."""
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    paths.add(str(HERE.parent))
    for path in sorted(paths):
        compileall.compile_dir(path, quiet=2, workers=0, legacy=False)
    if runtime_python != sys.executable:
        script = (
            "import compileall, sysconfig\n"
            "for key in ('purelib', 'platlib'):\n"
            "    compileall.compile_dir(sysconfig.get_paths()[key], quiet=2, workers=0)"
        )
        subprocess.run([runtime_python, "-c", script], check=True)


def run_tool(
    scenario: str,
    tool: str,
    emulator: EmulatorProcess,
    workdir: Path,
    *extra: str,
    python: str | None = None,
) -> Run:
    """Run one tool in a child process; wall time and peak RSS are the child's own.
    ``python``: the interpreter, by default the runtime one for the tools a user's install
    runs, this one for the others."""
    emulator.reset_stats()
    python = python or (runtime_python if tool in RUNTIME_TOOLS else sys.executable)
    command = [python, str(TOOLS), tool, "--endpoint", emulator.endpoint]
    command += ["--workdir", str(workdir), *extra]
    started = time.perf_counter()
    child = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    printed = child.stdout.read()
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        raise RuntimeError(f"{tool} failed in scenario {scenario} (exit {child.returncode})")
    stats = emulator.stats()
    lines = [line for line in printed.splitlines() if line.startswith("{")]
    run = Run(
        scenario=scenario,
        tool=tool,
        tasks=emulator.tasks,
        wall=wall,
        peak_rss_mb=usage.ru_maxrss / 1024,
        requests=int(stats["requests"]),
        throttled=int(stats["throttled"]),
        output=json.loads(lines[-1]) if lines else {},
    )
    print(
        f"  {scenario:<14} {tool:<9} {run.tasks:>9,} tasks  {run.wall:7.1f} s  "
        f"{run.requests_per_second:6.1f} req/s  {run.rows_per_second:9,.0f} rows/s  "
        f"{run.peak_rss_mb:6.0f} MB  429s {run.throttled}",
        flush=True,
    )
    if run.rows != run.tasks and "rows_written" not in run.output and tool != "bare":
        raise RuntimeError(f"{tool} loaded {run.rows} of {run.tasks} tasks in {scenario}")
    return run


def scenario_api_bound(workdir: Path, tasks: int) -> list[Run]:
    emulator = EmulatorProcess(tasks, latency=0.1, rate_limit=ACCOUNT_RPS)
    try:
        rps = ("--rps", str(SOURCE_RPS))
        return [
            run_tool("1 api-bound", "source", emulator, workdir / "s1-source", *rps),
            run_tool("1 api-bound", "rest_api", emulator, workdir / "s1-rest_api"),
            run_tool("1 api-bound", "sdk", emulator, workdir / "s1-sdk"),
        ]
    finally:
        emulator.stop()


def scenario_local_bound(workdir: Path, big: int, small: int) -> list[Run]:
    runs = []
    emulator = PageServerProcess(small)
    try:
        runs.append(run_tool("2 local-bound", "source", emulator, workdir / "s2-small-source"))
        runs.append(run_tool("2 local-bound", "rest_api", emulator, workdir / "s2-rest_api"))
        runs.append(run_tool("2 local-bound", "sdk", emulator, workdir / "s2-sdk"))
    finally:
        emulator.stop()
    emulator = PageServerProcess(big)
    try:
        for turn in range(2):  # alternated, so that both see the same machine
            runs.append(run_tool("4 limits", "bare", emulator, workdir / f"s4-bare-{turn}"))
            runs.append(run_tool("4 limits", "extract", emulator, workdir / f"s4-ext-{turn}"))
        source_dir = workdir / "s2-source"
        runs.append(run_tool("2 local-bound", "source", emulator, source_dir))
        runs.append(run_tool("3 incremental", "source", emulator, source_dir))
        runs.append(run_tool("3 full refresh", "source", emulator, source_dir, "--refresh"))
    finally:
        emulator.stop()
    return runs


def scenario_memory(workdir: Path, sizes: list[int]) -> list[Run]:
    runs = []
    for open_mix in ("few", "default"):
        for tasks in sizes:
            server = PageServerProcess(tasks, open_mix)
            try:
                name = f"5 memory {'no open' if open_mix == 'few' else '13% open'}"
                run = run_tool(name, "source", server, workdir / f"s5-{open_mix}-{tasks}")
                run.output["open"] = server.stats().get("open")
                runs.append(run)
                if open_mix == "default" and tasks == max(sizes) and has_pandas_here():
                    run = run_tool(
                        "5 memory 13% open, pandas installed",
                        "source",
                        server,
                        workdir / f"s5-pandas-{tasks}",
                        python=sys.executable,
                    )
                    run.output["open"] = server.stats().get("open")
                    runs.append(run)
            finally:
                server.stop()
    return runs


def has_pandas_here() -> bool:
    """Whether this environment has pandas while the runtime one is another (and has not)."""
    if runtime_python == sys.executable:
        return False
    import importlib.util

    return importlib.util.find_spec("pandas") is not None


def render(runs: list[Run], command: str, elapsed: float) -> str:
    ours = {
        (run.scenario.split()[0], run.tasks): run
        for run in runs
        if run.tool == "source" and run.scenario[0] in "12"
    }
    lines = [
        "# Benchmark results",
        "",
        f"Written by `{command}` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC in "
        f"{elapsed:.0f} s; Python {platform.python_version()}, {os.cpu_count()} cores, "
        "emulator (scenario 1) or pre-rendered page server (scenarios 2-5) in its own "
        "process on loopback. Each tool runs in a fresh process: wall "
        "time includes start-up, extract, normalize and load into DuckDB; peak RSS is the "
        "tool's process alone. The source and `rest_api` run in the package's own install "
        f"({runtime_label()}), the SDK loop and the bare client in the development environment.",
        "",
        "Ceiling: the account's 50 requests/s x 500 rows = 25,000 rows/s. *x ours*: the "
        "tool's wall time divided by the source's on the same scenario and task count.",
        "",
        "| scenario | tool | tasks | wall s | requests/s | rows/s | peak RSS MB | 429s "
        "| of ceiling | x ours | rows written |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in (r for r in runs if r.scenario[0] in "123"):
        mine = ours.get((run.scenario.split()[0], run.tasks))
        versus = f"{run.wall / mine.wall:.1f}" if mine and run.scenario[0] in "12" else ""
        if run.scenario.startswith("1"):
            of_ceiling = f"{run.requests_per_second / ACCOUNT_RPS:.0%}"
        else:
            of_ceiling = f"{run.rows_per_second / ROWS_CEILING:.1f}x"
        written = run.output.get("rows_written", run.rows)
        lines.append(
            f"| {run.scenario} | {run.tool} | {run.tasks:,} | {run.wall:.1f} "
            f"| {run.requests_per_second:.1f} | {run.rows_per_second:,.0f} "
            f"| {run.peak_rss_mb:.0f} | {run.throttled} | {of_ceiling} | {versus} "
            f"| {written:,} |"
        )
    scan = [r for r in runs if r.scenario.startswith("1") and r.tool == "source"]
    if scan and scan[0].output.get("request_seconds"):
        run = scan[0]
        rate = run.requests / float(run.output["request_seconds"])
        lines += [
            "",
            f"Scenario 1, the source's API traffic: {run.requests} requests from the first "
            f"sent to the last answered in {run.output['request_seconds']:.2f} s = "
            f"**{rate:.1f} requests/s sustained** "
            f"({rate / ACCOUNT_RPS:.0%} of the account's limit, asked for {SOURCE_RPS:.0f}/s), "
            f"{run.throttled} answered 429.",
        ]
    lines += render_limits([r for r in runs if r.scenario.startswith("4")])
    lines += render_memory([r for r in runs if r.scenario.startswith("5")])
    return "\n".join(lines) + "\n"


def runtime_label() -> str:
    if runtime_python == sys.executable:
        return "here the development environment, pandas included"
    return "its dependencies from the lock, the cli extra, no pandas"


def render_limits(runs: list[Run]) -> list[str]:
    if not runs:
        return []
    lines = [
        "",
        "## Scenario 4: the bare client against the source's extract",
        "",
        "The bare client is `requests` + the official SDK's `SignerV4` + orjson in 8 threads, "
        "each page parsed and counted, nothing kept: no loader can read pages faster from "
        "Python. Alternated in one command (bare, extract, bare, extract); each is a whole "
        "process, start-up included.",
        "",
        "| tool | tasks | wall s | rows/s | peak RSS MB |",
        "|---|---:|---:|---:|---:|",
    ]
    for run in runs:
        lines.append(
            f"| {run.tool} | {run.tasks:,} | {run.wall:.1f} | {run.rows_per_second:,.0f} "
            f"| {run.peak_rss_mb:.0f} |"
        )
    bare = sum(r.wall for r in runs if r.tool == "bare")
    extract = sum(r.wall for r in runs if r.tool == "extract")
    if bare and extract:
        lines += ["", f"Extract speed as a share of the bare client's: **{bare / extract:.2f}**."]
    return lines


def render_memory(runs: list[Run]) -> list[str]:
    if not runs:
        return []
    lines = [
        "",
        "## Scenario 5: memory against size, end to end into DuckDB",
        "",
        "| open mix | tasks | open tasks | wall s | rows/s | peak RSS MB | vs the smallest |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    smallest: dict[str, float] = {}
    same_size: dict[tuple[str, int], float] = {}
    for run in runs:
        mix = run.scenario.split(" ", 2)[2]
        plain_mix, _, installed = mix.partition(", ")
        if installed:  # the same run with pandas beside it: against the run without
            base = same_size.get((plain_mix, run.tasks), run.peak_rss_mb)
            versus = f"{run.peak_rss_mb / base - 1:+.0%} vs without pandas"
        else:
            base = smallest.setdefault(mix, run.peak_rss_mb)
            same_size[(mix, run.tasks)] = run.peak_rss_mb
            versus = f"{run.peak_rss_mb / base - 1:+.0%}"
        lines.append(
            f"| {mix} | {run.tasks:,} | {int(run.output.get('open') or 0):,} | {run.wall:.1f} "
            f"| {run.rows_per_second:,.0f} | {run.peak_rss_mb:.0f} | {versus} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--big", type=int, default=1_000_000, help="tasks, scenarios 2 and 3")
    parser.add_argument("--small", type=int, default=100_000, help="tasks, baselines")
    parser.add_argument("--output", type=Path, default=HERE / "RESULTS.md")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument(
        "--sizes",
        default="100000,300000,1000000",
        help="tasks of scenario 5, comma-separated (empty: skip it)",
    )
    parser.add_argument("--only", default="12345", help="scenarios to run, e.g. 45 (default: all)")
    parser.add_argument(
        "--runtime-python",
        default=sys.executable,
        help="interpreter of the package as users install it, for the source and rest_api "
        "(make bench: .venv-runtime/bin/python); default: this one",
    )
    args = parser.parse_args(argv)
    global runtime_python
    runtime_python = args.runtime_python
    compile_bytecode()
    workdir = Path(tempfile.mkdtemp(prefix="volcengine-live-bench-"))
    started = time.perf_counter()
    try:
        runs = scenario_api_bound(workdir, args.small) if "1" in args.only else []
        if set("234") & set(args.only):
            runs += scenario_local_bound(workdir, args.big, args.small)
        sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
        if "5" in args.only and sizes:
            runs += scenario_memory(workdir, sizes)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    command = (
        "make bench"  # which passes --runtime-python only
        if argv is None and os.environ.get("MAKELEVEL")
        else "python benchmarks/run.py " + " ".join(sys.argv[1:])
    )
    kept = args.output.read_text() if args.output.exists() else ""
    kept = kept[kept.index(KEPT) :] if KEPT in kept else ""
    text = render(runs, command.strip(), time.perf_counter() - started)
    args.output.write_text(text + ("\n" + kept if kept else ""))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
