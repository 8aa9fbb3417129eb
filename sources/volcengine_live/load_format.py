"""The load file format, when Parquet cannot be loaded: a DuckDB pipeline whose working folder
has a ``'`` in its path (a home such as ``/home/o'brien``).

Why not always Parquet: dlt's DuckDB copy job loads a Parquet file with
``read_parquet('<path>')``, the path not escaped (``dlt/destinations/impl/duckdb/duck.py``),
so such a path fails every load. ``insert_values`` files are loaded as SQL text instead,
naming no path; they are slower to write and load than Parquet, so they are used only when
the path needs them. The pipeline that runs the source (the command's, or any dlt user's)
decides.
"""

from __future__ import annotations

from typing import Any

import dlt

QUOTE_SAFE_FILE_FORMAT: Any = "insert_values"
"""The load file format when the pipeline's folder has a ``'`` in its path (see below)."""


def quote_safe_hints() -> Any | None:
    """Hints that keep a DuckDB load working when the running pipeline's working folder has
    a ``'`` in its path; ``None`` when none are needed (see the module's note)."""
    try:
        pipeline = dlt.current.pipeline()
    except Exception:  # no active pipeline: the resource is iterated on its own
        return None
    destination = pipeline.destination
    if destination is None or "'" not in str(pipeline.working_dir):
        return None
    if not destination.destination_type.endswith((".duckdb", ".motherduck")):
        return None
    return dlt.mark.make_hints(file_format=QUOTE_SAFE_FILE_FORMAT)
