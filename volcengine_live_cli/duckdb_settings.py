"""A DuckDB destination sized for this source's load.

DuckDB's own default takes up to 80 % of the machine's memory and a thread per core. The
merge of a first load of a million tasks then grew the loading process by about 420 MB.
With 32 MB and one thread DuckDB spills to a file beside the database: dlt's staging copy,
delete and deduplicating insert of a million tasks peaked at 107-108 MB in a DuckDB-alone
process, more slowly than with more memory (``benchmarks/RESULTS.md``).

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
