"""Where the time of a local-bound scan goes: ``make profile`` (or
``python benchmarks/profile_scan.py --tasks 1000000``).

Starts the emulator in its own process (cache warmed, so the API costs little), runs the
source's extract step under ``cProfile`` and prints the process's CPU time against wall
time, then the functions that take the most time. docs/performance.md reads these
figures: CPU close to wall means one core, held by the main thread, is the bound.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from run import EmulatorProcess  # noqa: E402 (benchmarks/ is not a package)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=300_000)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)

    import dlt

    from volcengine_live import VolcengineCredentials, volcengine_live_source

    emulator = EmulatorProcess(args.tasks, latency=0.0, rate_limit=None)
    workdir = Path(tempfile.mkdtemp(prefix="volcengine-live-profile-"))
    try:
        emulator.warm_up()
        credentials = VolcengineCredentials()
        credentials.access_key_id = "AKBENCHMARK"
        credentials.secret_access_key = "benchmark-secret"
        pipeline = dlt.pipeline(
            pipeline_name="profile",
            destination=dlt.destinations.duckdb(str(workdir / "profile.duckdb")),
            pipelines_dir=str(workdir / "pipelines"),
        )
        source = volcengine_live_source(
            credentials=credentials, endpoint=emulator.endpoint, requests_per_second=None
        )
        profiler = cProfile.Profile()
        cpu_before, wall_before = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        profiler.enable()
        pipeline.extract(source)
        profiler.disable()
        cpu_after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    finally:
        emulator.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    elapsed = wall - wall_before
    print(
        f"extract of {args.tasks:,} tasks under cProfile: {elapsed:.1f} s wall, {cpu:.1f} s CPU "
        f"({cpu / elapsed:.2f} cores); the profiler itself slows Python-level code"
    )
    for order in ("tottime", "cumulative"):
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats(order).print_stats(args.top)
        print(f"\n--- top {args.top} by {order} ---")
        print("\n".join(line for line in text.getvalue().splitlines() if line.strip())[:6000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
