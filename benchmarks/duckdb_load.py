"""DuckDB alone doing what dlt's merge of one run does, with peak RSS per statement.

``python benchmarks/duckdb_load.py FILE.parquet [--memory-limit 32MB] [--dedup] [--again]``
(the Parquet file of a run: ``pipelines/<name>/load/loaded/*/completed_jobs/
pull_record_tasks.*.parquet``) copies the file into a staging table, deletes the matching
rows of the main table and inserts, plainly or numbering rows by key as dlt's deduplicating
insert does; ``--again`` merges the same rows a second time into the full table. Each
statement's wall and CPU seconds and its peak RSS (reset between statements, Linux) are
printed. The figures of ``benchmarks/RESULTS.md``'s "DuckDB alone" table come from here.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import duckdb
from steps import _memory

COLUMNS = (
    '"task_id", "start_time", "end_time", "vhost", "domain", "app", "stream", "status", '
    '"status_code", "data_issues", "seen_at", "deleted_at"'
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("parquet", type=Path)
    parser.add_argument("--memory-limit", default="32MB")
    parser.add_argument("--dedup", action="store_true", help="dlt's deduplicating insert")
    parser.add_argument("--again", action="store_true", help="merge the rows a second time")
    args = parser.parse_args()
    database = Path(tempfile.mkdtemp(prefix="duckdb-load-")) / "load.duckdb"
    connection = duckdb.connect(
        str(database), config={"memory_limit": args.memory_limit, "threads": 1}
    )
    print(f"start        rss {_memory()['VmRSS']} MB", flush=True)

    def step(name: str, sql: str) -> None:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
        wall, cpu = time.perf_counter(), time.process_time()
        connection.execute(sql)
        memory = _memory()
        print(
            f"{name:<12} wall {time.perf_counter() - wall:5.2f} s  "
            f"cpu {time.process_time() - cpu:5.2f} s  peak {memory['VmHWM']} MB",
            flush=True,
        )

    source = f"read_parquet('{args.parquet}')"
    connection.execute("CREATE SCHEMA d; CREATE SCHEMA s")
    connection.execute(f"CREATE TABLE d.t AS SELECT * FROM {source} LIMIT 0")
    if args.dedup:
        insert = (
            f"INSERT INTO d.t({COLUMNS}) SELECT {COLUMNS} FROM (SELECT ROW_NUMBER() OVER "
            f'(PARTITION BY "task_id" ORDER BY "seen_at" DESC) AS rn, {COLUMNS} FROM s.t) '
            "WHERE rn = 1"
        )
    else:
        insert = f"INSERT INTO d.t({COLUMNS}) SELECT {COLUMNS} FROM s.t"
    for round_ in range(2 if args.again else 1):
        connection.execute("DROP TABLE IF EXISTS s.t")
        step(f"copy {round_ + 1}", f"CREATE TABLE s.t AS SELECT * FROM {source}")
        step(
            f"delete {round_ + 1}",
            "DELETE FROM d.t AS d WHERE EXISTS "
            '(SELECT 1 FROM s.t AS s WHERE d."task_id" = s."task_id")',
        )
        step(f"insert {round_ + 1}", insert)
    connection.close()


if __name__ == "__main__":
    main()
