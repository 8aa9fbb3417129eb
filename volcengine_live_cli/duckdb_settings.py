"""The DuckDB destination of ``volcengine-live``: DuckDB's own defaults, as a plain dlt
pipeline gets them, unless dlt's configuration says otherwise.

Until issue 23 the command held DuckDB to ``memory_limit = 32MB`` and one thread, measured
on this source's eight API fields alone. Real accounts outgrew it: 30 new fields of 25
characters on 20,000 tasks ran out of memory in the merge on every run
(``tests/command/test_duckdb_settings.py``). DuckDB's defaults (80 % of the machine's memory, a
thread per core) cost more memory on a big first load (about 420 MB more at a million tasks,
``benchmarks/RESULTS.md``), and never fail such a load. A machine that must stay small sets
the limit itself, and DuckDB spills to a file beside the database beyond it::

    [destination.duckdb.credentials]
    global_config = {memory_limit = "256MB", threads = 1}

or ``DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG='{"memory_limit": "256MB"}'``. Keys not
set stay at DuckDB's defaults.
"""

from __future__ import annotations

import json
from typing import Any

import dlt
from dlt.destinations.impl.duckdb.configuration import DuckDbCredentials

from volcengine_live.errors import ConfigurationError

GLOBAL_CONFIG_KEY = "destination.duckdb.credentials.global_config"
GLOBAL_CONFIG_VARIABLE = "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG"


def duckdb_destination(database: str) -> Any:
    """``dlt.destinations.duckdb`` for the file ``database`` with the ``global_config`` dlt's
    configuration holds (none: DuckDB's defaults). A malformed value fails here, naming the
    setting, rather than deep inside the load."""
    credentials = DuckDbCredentials(database)
    configured = configured_global_config()
    if configured:
        credentials.global_config = configured
    return dlt.destinations.duckdb(credentials)


def configured_global_config() -> dict[str, Any]:
    """``destination.duckdb.credentials.global_config`` from dlt's configuration (a TOML
    table, or JSON in an environment variable), or nothing.

    Raises:
        ConfigurationError: the value is not a table / JSON object; the message names the
            environment variable and the TOML key, with an example.
    """
    value: Any = dlt.config.get(GLOBAL_CONFIG_KEY)
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except ValueError as error:
            raise ConfigurationError(_bad_global_config(f"is not valid JSON ({error})")) from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigurationError(_bad_global_config(f"is a {type(value).__name__}, not a table"))
    return dict(value)


def _bad_global_config(problem: str) -> str:
    return (
        f"DuckDB's global_config {problem}. Fix {GLOBAL_CONFIG_VARIABLE} (a JSON object such "
        """as '{"memory_limit": "2GB"}') or [destination.duckdb.credentials] global_config """
        """in .dlt/config.toml (a table such as {memory_limit = "2GB"}), or unset it to keep """
        "DuckDB's defaults."
    )
