"""Peak RSS and CPU of each step of one run of the source: where the memory of a run goes.

``python benchmarks/steps.py --endpoint URL --workdir DIR`` (a page server:
``python benchmarks/pageserver.py --tasks 1000000``) imports dlt and the source, then runs
``extract``, ``normalize`` and ``load`` one after the other in this process, and prints for
each its wall and CPU seconds, the RSS after it and its own peak RSS (Linux: the kernel's
high-water mark, reset between steps through ``/proc/self/clear_refs``). Run it twice with
the same ``--workdir`` to see an incremental run.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _memory() -> dict[str, int]:
    """VmRSS and VmHWM of this process, in MB."""
    found: dict[str, int] = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) // 1024
    return found


class Steps:
    """Prints one line a step, then starts the next step's peak afresh."""

    def __init__(self) -> None:
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def done(self, name: str) -> None:
        memory = _memory()
        print(
            f"{name:<12} wall {time.perf_counter() - self._wall:6.2f} s  "
            f"cpu {time.process_time() - self._cpu:6.2f} s  "
            f"rss {memory['VmRSS']:5d} MB  peak {memory['VmHWM']:5d} MB",
            flush=True,
        )
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # resets VmHWM to the current RSS
        self._wall, self._cpu = time.perf_counter(), time.process_time()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    args = parser.parse_args()
    steps = Steps()
    import dlt

    steps.done("import dlt")
    from volcengine_live import VolcengineCredentials, volcengine_live_source
    from volcengine_live_cli.duckdb_settings import duckdb_destination

    steps.done("import source")
    credentials = VolcengineCredentials()
    credentials.access_key_id = "AKBENCHMARK"
    credentials.secret_access_key = "benchmark-secret"
    args.workdir.mkdir(parents=True, exist_ok=True)
    pipeline = dlt.pipeline(
        pipeline_name="bench_steps",
        destination=duckdb_destination(str(args.workdir / "steps.duckdb")),
        dataset_name="volcengine_live_dataset",
        pipelines_dir=str(args.workdir / "pipelines"),
    )
    source = volcengine_live_source(
        credentials=credentials,
        endpoint=args.endpoint,
        page_size=500,
        requests_per_second=None,
        max_concurrency=8,
    )
    steps.done("set-up")
    pipeline.extract(source)
    steps.done("extract")
    pipeline.normalize()
    steps.done("normalize")
    pipeline.load()
    steps.done("load")


if __name__ == "__main__":
    main()
