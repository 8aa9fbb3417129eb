"""A DuckDB destination sized for this source's load.

DuckDB's own default takes up to 80 % of the machine's memory and a thread per core. The
merge of a first load of a million tasks then grew the loading process by about 420 MB.
This source's load is a staging copy, a delete and a plain insert (its rows are
deduplicated already, see ``writer.py``), and each of those streams: with 32 MB and one
thread DuckDB spills to a file beside the database, and a million-task load grows the
process by about 55 MB, whether the table is empty or holds every task already, in the same
CPU time as with 2 GB (``benchmarks/RESULTS.md``). dlt's deduplicating insert, used only for
a run that read some TaskId twice, also runs in 32 MB, more slowly.

Anything set in dlt's configuration wins, key by key, e.g.::

    [destination.duckdb.credentials]
    global_config = {memory_limit = "2GB", threads = 4}

or ``DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG='{"memory_limit": "2GB"}'``.
"""

from __future__ import annotations

import json
from typing import Any

import dlt
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

DUCKDB_LOAD_SETTINGS: dict[str, Any] = {"memory_limit": "32MB", "threads": 1}
"""DuckDB settings this source's load needs, applied unless configured otherwise."""


def duckdb_destination(database: str) -> Any:
    """``dlt.destinations.duckdb`` for the file ``database``, with
    :data:`DUCKDB_LOAD_SETTINGS` under whatever ``global_config`` dlt's configuration holds."""
    credentials = DuckDbCredentials(database)
    credentials.global_config = {**DUCKDB_LOAD_SETTINGS, **configured_global_config()}
    return dlt.destinations.duckdb(credentials)


def configured_global_config() -> dict[str, Any]:
    """``destination.duckdb.credentials.global_config`` from dlt's configuration (a TOML
    table, or JSON in an environment variable), or nothing."""
    value: Any = dlt.config.get("destination.duckdb.credentials.global_config")
    if isinstance(value, str):
        value = json.loads(value) if value.strip() else {}
    return dict(value) if isinstance(value, dict) else {}
