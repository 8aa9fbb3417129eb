"""The tools the benchmark compares, each run in its own process by ``run.py``.

``python benchmarks/tools.py TOOL --endpoint URL --workdir DIR [options]`` loads every task
of the emulator at URL into a DuckDB file under DIR and prints one JSON line: rows loaded.

Tools, each configured as its users would:

* ``source``: this project's ``volcengine_live_source`` (concurrent pages, Arrow, Parquet);
* ``rest_api``: dlt's generic ``rest_api`` source for the same endpoint, with this project's
  signer as its auth and a ``PageNumberPaginator`` that writes ``PageNum`` into the JSON
  body; DuckDB destination with its default settings;
* ``sdk``: the official SDK's ``LiveService.list_pull_record_task`` in a loop, the pages
  collected into a pandas DataFrame, then written to DuckDB;
* ``bare``: the physical limit of a Python client, not a loader: ``requests`` sessions, the
  official SDK's ``SignerV4`` and ``orjson``, 8 threads (page 1 first, then the rest), each
  page parsed and counted and nothing kept;
* ``extract``: this project's source, extract step only (no normalize, no load).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ACCESS_KEY_ID = "AKBENCHMARK"
SECRET_ACCESS_KEY = "benchmark-secret"
PAGE_SIZE = 500


def count_rows(pipeline: Any) -> int:
    with pipeline.sql_client() as client:
        found = client.execute_sql("SELECT count(*) FROM pull_record_tasks")
    return int(found[0][0]) if found else 0


def run_source(endpoint: str, workdir: Path, rps: float | None, refresh: bool) -> dict[str, Any]:
    import dlt

    from volcengine_live import VolcengineCredentials, volcengine_live_source

    credentials = VolcengineCredentials()
    credentials.access_key_id = ACCESS_KEY_ID
    credentials.secret_access_key = SECRET_ACCESS_KEY
    from volcengine_live_cli.duckdb_settings import duckdb_destination

    pipeline = dlt.pipeline(
        pipeline_name="bench_source",
        destination=duckdb_destination(str(workdir / "source.duckdb")),
        dataset_name="volcengine_live_dataset",
        pipelines_dir=str(workdir / "pipelines"),
    )
    source = volcengine_live_source(
        credentials=credentials,
        endpoint=endpoint,
        page_size=PAGE_SIZE,
        requests_per_second=rps,
        max_concurrency=8,
    )
    if refresh:
        pipeline.run(source, refresh="drop_sources")
    else:
        pipeline.run(source)
    metrics: dict[str, Any] = {}
    extract = pipeline.last_trace.last_extract_info if pipeline.last_trace else None
    for per_load in extract.metrics.values() if extract else []:
        for step in per_load:
            found = step["resource_metrics"].get("pull_record_tasks")
            if found is not None:
                metrics = dict(found.custom_metrics)
    return {
        "rows": count_rows(pipeline),
        "rows_read": metrics.get("rows_read"),
        "rows_written": metrics.get("rows_written"),
        "client_requests": metrics.get("requests"),
        "scan_seconds": metrics.get("elapsed_seconds"),
        "request_seconds": metrics.get("request_seconds"),
    }


def run_bare(endpoint: str, threads: int = 8) -> dict[str, Any]:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import orjson
    import requests
    from volcengine.auth.SignerV4 import SignerV4
    from volcengine.base.Request import Request
    from volcengine.Credentials import Credentials

    scheme, host = endpoint.split("://", 1)
    credentials = Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY, "live", "cn-north-1")
    local = threading.local()

    def fetch(page: int) -> tuple[int, int]:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
        request = Request()
        request.set_schema(scheme)
        request.set_method("POST")
        request.set_host(host)
        request.set_path("/")
        request.set_query({"Action": "ListPullRecordTask", "Version": "2023-01-01"})
        request.set_headers({"Host": host, "Content-Type": "application/json"})
        request.set_body(orjson.dumps({"PageNum": page, "PageSize": PAGE_SIZE}))
        SignerV4.sign(request, credentials)
        answer = session.post(request.build(), headers=request.headers, data=request.body)
        result = orjson.loads(answer.content)["Result"]
        return len(result["List"] or []), int(result["Pagination"]["TotalCount"])

    rows, total = fetch(1)
    pages = -(-total // PAGE_SIZE)
    with ThreadPoolExecutor(threads) as pool:
        rows += sum(found for found, _ in pool.map(fetch, range(2, pages + 1)))
    return {"rows": rows}


def run_extract(endpoint: str, workdir: Path) -> dict[str, Any]:
    import dlt

    from volcengine_live import VolcengineCredentials, volcengine_live_source

    credentials = VolcengineCredentials()
    credentials.access_key_id = ACCESS_KEY_ID
    credentials.secret_access_key = SECRET_ACCESS_KEY
    pipeline = dlt.pipeline(
        pipeline_name="bench_extract",
        destination=dlt.destinations.duckdb(str(workdir / "extract.duckdb")),
        dataset_name="volcengine_live_dataset",
        pipelines_dir=str(workdir / "pipelines"),
    )
    source = volcengine_live_source(
        credentials=credentials, endpoint=endpoint, page_size=PAGE_SIZE,
        requests_per_second=None, max_concurrency=8,
    )  # fmt: skip
    info = pipeline.extract(source)
    rows = 0
    for per_load in info.metrics.values():
        for step in per_load:
            found = step["resource_metrics"].get("pull_record_tasks")
            if found is not None:
                rows = int(found.custom_metrics.get("rows_read") or 0)
    return {"rows": rows}


def run_rest_api(endpoint: str, workdir: Path) -> dict[str, Any]:
    import dlt
    from dlt.sources.helpers.rest_client.paginators import PageNumberPaginator
    from dlt.sources.rest_api import rest_api_source

    from volcengine_live import VolcengineCredentials

    source = rest_api_source(
        {
            "client": {
                "base_url": endpoint + "/",
                "auth": VolcengineCredentials(
                    access_key_id=ACCESS_KEY_ID, secret_access_key=SECRET_ACCESS_KEY
                ),
            },
            "resources": [
                {
                    "name": "pull_record_tasks",
                    "primary_key": "TaskId",
                    "write_disposition": "merge",
                    "endpoint": {
                        "path": "",
                        "method": "POST",
                        "params": {"Action": "ListPullRecordTask", "Version": "2023-01-01"},
                        "json": {"PageNum": 1, "PageSize": PAGE_SIZE},
                        "data_selector": "Result.List",
                        "paginator": PageNumberPaginator(
                            base_page=1,
                            page_body_path="PageNum",
                            total_path="Result.Pagination.PageTotal",
                        ),
                    },
                }
            ],
        }
    )
    pipeline = dlt.pipeline(
        pipeline_name="bench_rest_api",
        destination=dlt.destinations.duckdb(str(workdir / "rest_api.duckdb")),
        dataset_name="rest_api_dataset",
        pipelines_dir=str(workdir / "pipelines"),
    )
    pipeline.run(source)
    return {"rows": count_rows(pipeline)}


def run_sdk(endpoint: str, workdir: Path) -> dict[str, Any]:
    import duckdb
    import pandas as pd
    from volcengine.live.v20230101.live_service import LiveService

    service = LiveService(host=endpoint.split("://", 1)[1], ak=ACCESS_KEY_ID, sk=SECRET_ACCESS_KEY)
    service.service_info.scheme = "http"
    rows: list[dict[str, Any]] = []
    page = 1
    while True:
        answer = service.list_pull_record_task({"PageNum": page, "PageSize": PAGE_SIZE})
        tasks = answer["Result"]["List"] or []
        rows.extend(tasks)
        if len(tasks) < PAGE_SIZE:
            break
        page += 1
    frame = pd.DataFrame(rows)
    with duckdb.connect(str(workdir / "sdk.duckdb")) as connection:
        connection.register("frame", frame)
        connection.execute("CREATE OR REPLACE TABLE pull_record_tasks AS SELECT * FROM frame")
        loaded = connection.execute("SELECT count(*) FROM pull_record_tasks").fetchone()
    return {"rows": loaded[0] if loaded else 0}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("tool", choices=["source", "extract", "bare", "rest_api", "sdk"])
    parser.add_argument("--endpoint", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--rps", type=float, default=None, help="source: requests_per_second")
    parser.add_argument("--refresh", action="store_true", help="source: full refresh")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    if args.tool == "source":
        result = run_source(args.endpoint, args.workdir, args.rps, args.refresh)
    elif args.tool == "extract":
        result = run_extract(args.endpoint, args.workdir)
    elif args.tool == "bare":
        result = run_bare(args.endpoint)
    elif args.tool == "rest_api":
        result = run_rest_api(args.endpoint, args.workdir)
    else:
        result = run_sdk(args.endpoint, args.workdir)
    result["seconds_in_process"] = round(time.perf_counter() - started, 3)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
