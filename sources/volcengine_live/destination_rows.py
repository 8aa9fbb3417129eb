"""The rows the destination holds for some tasks, read back through the running pipeline.

Used to find tasks that left the list (``deletions.py``): only a few slices of the table are
read, each a StartTime range or a list of TaskIds, never the whole table. SQL destinations
(DuckDB, Postgres, ...) and Parquet files are read with the pipeline's SQL client
(``pipeline.sql_client()``: for files dlt serves them to an in-memory DuckDB); Delta tables
with the ``deltalake`` package, whose filters read only the files that can match.

Every value (TaskId, account, StartTime) reaches the destination as a bound query parameter
or an Arrow filter, never as SQL text: a TaskId may hold any character the API's JSON can
carry (a NUL, quotes, a backslash), and one such TaskId must not make the statement unparsable
and so turn deletion detection off for the whole account (issue 23 item 6).

Why not ``pipeline.dataset()``: its relations render the filters into SQL text with sqlglot
(a NUL became a parser error), and dlt 1.31's dataset breaks with duckdb 2 (``Relation.arrow``)
and with sqlglot >= 30.22 (``qualify(infer_schema=...)``), the versions a user's ``pip install
"dlt[duckdb]"`` gets. The SQL client's ``execute_query`` with ``%s`` parameters is the API dlt
documents for the pipeline's destination, and it has kept its shape across dlt 1.x.

A table that holds several rows per task (Parquet files, which dlt appends to) is reduced
to the latest row of each task, by ``seen_at``: the documented way to read those files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from . import settings
from .records import TIMESTAMP_TYPE

logger = logging.getLogger(__name__)

IDS_PER_QUERY = 500
"""TaskIds in one ``IN (...)`` list, one bound parameter each: keeps each statement well
under any destination's limit (SQL Server allows 2,100 parameters, SQLite 999 before 3.32)."""

ROWS_PER_BATCH = 50_000
"""Rows fetched at a time. DuckDB hands over Arrow batches of its own; a driver without
Arrow (psycopg2) returns Python tuples, and this bounds how many are alive at once (a tuple
of the key columns is about 300 bytes: 15 MB a batch)."""


@dataclass(frozen=True)
class Slices:
    """Which rows to read: StartTime ranges ``[start, end)`` (``end`` None: no upper bound)
    and TaskIds, of one account when the rows have a label (the other accounts' rows in the
    same table are not this account's to flag)."""

    ranges: list[tuple[datetime, datetime | None]]
    task_ids: list[str]
    account: str | None = None


class DestinationUnreadable(Exception):
    """The destination's rows cannot be read back here (no destination, no SQL access)."""


KEY_COLUMNS = ("account", "task_id", "seen_at", "deleted_at")
"""Enough of a row to tell whether its task is listed as live: read for every task of the
slices, where whole rows are read only for the few that turn out to be missing (a window
of 250,000 whole rows held about 130 MB at the peak of a million-task run)."""


def read_rows(slices: Slices, columns: tuple[str, ...] | None = None) -> pa.Table | None:
    """The latest row of every task in ``slices`` that the destination holds, only
    ``columns`` of it (those the table has) if given; ``None`` when the table does not
    exist yet. Raises :class:`DestinationUnreadable`."""
    try:
        pipeline = dlt.current.pipeline()
    except Exception as error:  # not inside a running pipeline
        raise DestinationUnreadable(str(error)) from error
    if pipeline.destination is None:
        raise DestinationUnreadable("the pipeline has no destination")
    schema = pipeline.default_schema if pipeline.default_schema_name else None
    table = schema.tables.get(settings.TABLE_NAME) if schema is not None else None
    if not table or not table.get("columns"):
        return None
    if columns is not None:
        columns = tuple(name for name in columns if name in table["columns"])
    try:
        if table.get("table_format") == "delta":
            pieces = list(_delta_pieces(pipeline, slices, columns))
        else:
            pieces = list(_sql_pieces(pipeline, slices, columns))
    except Exception as error:
        if _missing_table(error):
            return None
        raise DestinationUnreadable(f"{type(error).__name__}: {error}") from error
    return latest_per_task(pieces)


def _sql_pieces(
    pipeline: dlt.Pipeline, slices: Slices, columns: tuple[str, ...] | None
) -> Iterator[pa.Table]:
    """The slices' rows, one statement per StartTime range and per chunk of TaskIds, every
    value a ``%s`` parameter (dlt's SQL clients all take that style: DuckDB's turns it
    into ``?``)."""
    with pipeline.sql_client() as client:
        selected = "*" if columns is None else ", ".join(map(client.escape_column_name, columns))
        head = f"SELECT {selected} FROM {client.make_qualified_table_name(settings.TABLE_NAME)}"
        mine: tuple[str, list[Any]] = ("", [])
        if slices.account is not None:
            mine = (f" AND {client.escape_column_name('account')} = %s", [slices.account])
        start_time = client.escape_column_name("start_time")
        task_id = client.escape_column_name("task_id")
        statements: list[tuple[str, list[Any]]] = []
        for start, end in slices.ranges:
            where, values = f"{start_time} >= %s", [start]
            if end is not None:
                where, values = f"{where} AND {start_time} < %s", [start, end]
            statements.append((where, values))
        for chunk in _chunks(slices.task_ids):
            statements.append((f"{task_id} IN ({', '.join(['%s'] * len(chunk))})", chunk))
        for where, values in statements:
            query = f"{head} WHERE {where}{mine[0]}"
            with client.execute_query(query, *values, *mine[1]) as cursor:
                yield from _batches(cursor)


def _batches(cursor: Any) -> Iterator[pa.Table]:
    """The cursor's rows as Arrow tables of at most :data:`ROWS_PER_BATCH` rows: dlt's own
    Arrow (DuckDB's native batches; for a driver without Arrow, dlt converts the rows a batch
    at a time), else the DB-API's ``fetchmany`` rows made into Arrow here.

    Why the fallback: dlt releases before 1.25 read DuckDB's batches with
    ``fetch_record_batch``, which duckdb 2 removed, and pip pairs those releases with duckdb
    2. Rows cost about 10 µs each (2 s for a 250,000-task window) where Arrow costs next to
    nothing, so the fallback serves only them."""
    given = 0
    try:
        for batch in cursor.iter_arrow(ROWS_PER_BATCH):
            given += 1
            yield batch
        return
    except AttributeError as error:
        if given:  # not the known incompatibility: rows were read already
            raise
        logger.debug("dlt cannot fetch Arrow from this cursor (%s): fetching rows", error)
    names = [column[0] for column in cursor.description]
    while rows := cursor.fetchmany(ROWS_PER_BATCH):
        values = zip(*rows, strict=True)
        # Types as Python's values give them: a column of nulls is typed ``null``, which the
        # merge with other pieces and dlt's normalizer (the table's own types) resolve.
        yield pa.table({name: pa.array(v) for name, v in zip(names, values, strict=True)})


def _delta_pieces(
    pipeline: dlt.Pipeline, slices: Slices, columns: tuple[str, ...] | None
) -> Iterator[pa.Table]:
    """Why ``get_delta_tables`` (from ``dlt.common.libs.deltalake``, not dlt's top level):
    it is the helper dlt's Delta documentation gives for a pipeline's ``DeltaTable``, with
    the destination's credentials applied; the SQL client would need DuckDB's ``delta``
    extension, downloaded on first use, which a machine without internet cannot get."""
    from dlt.common.libs.deltalake import get_delta_tables

    table = get_delta_tables(pipeline, settings.TABLE_NAME)[settings.TABLE_NAME]
    files = table.to_pyarrow_dataset()
    start_time = pads.field("start_time")
    mine = pads.scalar(True) if slices.account is None else pads.field("account") == slices.account
    wanted = None if columns is None else list(columns)
    for start, end in slices.ranges:
        condition = start_time >= pa.scalar(start, TIMESTAMP_TYPE)
        if end is not None:
            condition = condition & (start_time < pa.scalar(end, TIMESTAMP_TYPE))
        yield files.to_table(columns=wanted, filter=mine & condition)
    for chunk in _chunks(slices.task_ids):
        yield files.to_table(columns=wanted, filter=mine & pads.field("task_id").isin(chunk))


def latest_per_task(pieces: list[pa.Table]) -> pa.Table:
    """One row per TaskId, the one with the latest ``seen_at`` (a row of no ``seen_at`` comes
    last); timestamps as the source writes them (UTC, microseconds)."""
    if not pieces:
        return pa.table({"task_id": pa.array([], pa.string())})
    rows = pa.concat_tables([_normalised(p) for p in pieces], promote_options="permissive")
    if rows.num_rows == 0 or "seen_at" not in rows.column_names:
        return rows
    order = pc.sort_indices(
        rows, sort_keys=[("task_id", "ascending"), ("seen_at", "descending", "at_end")]
    )
    rows = rows.take(order)
    ids = rows.column("task_id")
    first = pc.not_equal(ids.slice(1), ids.slice(0, len(ids) - 1))
    keep = pa.concat_arrays([pa.array([True]), pc.fill_null(first, True).combine_chunks()])
    return rows.filter(keep)


def _normalised(piece: pa.Table) -> pa.Table:
    """Timestamps as UTC microseconds, dlt's own columns dropped: rows to write back."""
    columns: dict[str, Any] = {}
    for name, column in zip(piece.column_names, piece.columns, strict=True):
        if name.startswith("_dlt_"):
            continue
        if pa.types.is_timestamp(column.type):
            column = column.cast(TIMESTAMP_TYPE)
        columns[name] = column
    return pa.table(columns)


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), IDS_PER_QUERY):
        yield ids[start : start + IDS_PER_QUERY]


def _missing_table(error: Exception) -> bool:
    """The table is in the schema but not yet in the destination (the run that created it
    failed before its load): dlt's message names it, in words that vary by destination."""
    text = str(error).lower()
    return settings.TABLE_NAME in text and ("not exist" in text or "not found" in text)
