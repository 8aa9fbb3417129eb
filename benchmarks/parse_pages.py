"""Two ways to turn page bytes into Arrow, one thread, in microseconds a row.

``python benchmarks/parse_pages.py --endpoint URL`` (a page server, ``pageserver.py``) reads
20 pages of 500 tasks, then times, best of 5: orjson to Python objects then ``pa.array`` of
the records (what the source does), and ``pyarrow.json`` parsing the bytes (which would run
without the GIL). Figures in ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable

import orjson
import pyarrow as pa
import pyarrow.json as pajson
import requests

from volcengine_live.records import KNOWN_FIELDS
from volcengine_live.signing import VolcengineSigner

PAGES, PAGE_SIZE = 20, 500
RECORD = pa.struct([(name, pa.string()) for name in KNOWN_FIELDS])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--endpoint", required=True)
    args = parser.parse_args()
    signer = VolcengineSigner(
        "AKBENCHMARK", "benchmark-secret", None, region="cn-north-1", service="live"
    )
    url = f"{args.endpoint}/?Action=ListPullRecordTask&Version=2023-01-01"
    with requests.Session() as session:
        bodies = [
            session.post(url, data=orjson.dumps({"PageNum": p, "PageSize": PAGE_SIZE}),
                         headers={"Content-Type": "application/json"}, auth=signer).content
            for p in range(1, PAGES + 1)
        ]  # fmt: skip
    schema = pa.schema([("Result", pa.struct([("List", pa.list_(RECORD))]))])
    options = pajson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    single = pajson.ReadOptions(use_threads=False)

    def orjson_then_arrow() -> None:
        for body in bodies:
            pa.array(orjson.loads(body)["Result"]["List"], type=RECORD)

    def pyarrow_json() -> None:
        for body in bodies:
            pajson.read_json(io.BytesIO(body), read_options=single, parse_options=options)

    for name, parse in (("orjson + pa.array", orjson_then_arrow), ("pyarrow.json", pyarrow_json)):
        print(f"{name:<18} {_best(parse) / (PAGES * PAGE_SIZE) * 1e6:.2f} µs a row")


def _best(parse: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        parse()
        best = min(best, time.perf_counter() - started)
    return best


if __name__ == "__main__":
    main()
