"""The rows the destination holds for some tasks, read back through the running pipeline.

Used to find tasks that left the list (``deletions.py``): only a few slices of the table are
read, each a StartTime range or a list of TaskIds, never the whole table. SQL destinations
(DuckDB, Postgres, ...) and Parquet files are read through the pipeline's dataset
(``pipeline.dataset()``: for files dlt serves them to an in-memory DuckDB); Delta tables
with the ``deltalake`` package, whose filters read only the files that can match.

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
"""TaskIds in one ``IN (...)`` list: keeps each statement well under any destination's limit."""


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
            pieces = list(_dataset_pieces(pipeline, slices, columns))
    except Exception as error:
        if _missing_table(error):
            return None
        raise DestinationUnreadable(f"{type(error).__name__}: {error}") from error
    return latest_per_task([p for p in pieces if p is not None])


def _dataset_pieces(
    pipeline: dlt.Pipeline, slices: Slices, columns: tuple[str, ...] | None
) -> Iterator[pa.Table | None]:
    dataset = pipeline.dataset()
    if settings.TABLE_NAME not in dataset.tables:
        return
    relation = dataset.table(settings.TABLE_NAME)

    def arrow(part: Any) -> pa.Table | None:
        table: pa.Table | None = (part if columns is None else part.select(*columns)).arrow()
        return table

    if slices.account is not None:
        relation = relation.where("account", "eq", slices.account)
    for start, end in slices.ranges:
        part = relation.where("start_time", "gte", start)
        if end is not None:
            part = part.where("start_time", "lt", end)
        yield arrow(part)
    for chunk in _chunks(slices.task_ids):
        yield arrow(relation.where("task_id", "in", chunk))


def _delta_pieces(
    pipeline: dlt.Pipeline, slices: Slices, columns: tuple[str, ...] | None
) -> Iterator[pa.Table]:
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
    text = str(error).lower()
    return settings.TABLE_NAME in text and ("not exist" in text or "not found" in text)
