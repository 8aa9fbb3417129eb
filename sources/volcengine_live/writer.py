"""What a run hands to dlt: each task and each reject at most once.

A destination that upserts (Delta) refuses a load holding two rows for one key, and a run
may read a task more than once (several passes, a late-day pass). So settled tasks are
written when first read and never again in the run; open tasks are held to the end and
written once, with the status the last pass saw, so that a task that finished between two
passes is not left "recording".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt
import pyarrow as pa
import pyarrow.compute as pc

from . import settings
from .incremental import open_mask
from .reader import EarlierPasses
from .records import REJECT_COLUMNS, TIMESTAMP_TYPE

TASK_COLUMN_HINTS: Any = {
    "task_id": {"data_type": "text", "nullable": False, "primary_key": True},
    "start_time": {"data_type": "timestamp", "timezone": True},
    "end_time": {"data_type": "timestamp", "timezone": True},
    "seen_at": {"data_type": "timestamp", "timezone": True, "dedup_sort": "desc"},
    "data_issues": {"data_type": "text", "nullable": True},
    "deleted_at": {"data_type": "timestamp", "timezone": True, "nullable": True},
}

REJECT_COLUMN_HINTS: Any = {
    "reject_id": {"data_type": "text", "nullable": False, "primary_key": True},
    "reason": {"data_type": "text", "nullable": False},
    "raw_record": {"data_type": "text", "nullable": True},
    "page_num": {"data_type": "bigint", "nullable": True},
    "seen_at": {"data_type": "timestamp", "timezone": True, "nullable": True},
}


class RunWriter:
    """Turns selected tasks and rejects into dlt items, once per task and run."""

    def __init__(self, deleted_tasks: str = settings.DEFAULT_DELETED_TASKS) -> None:
        self.rows_written = 0
        self.deleted_tasks = deleted_tasks
        """``"delete"``: rows with ``deleted_at`` set are removed by the merge (hard_delete)."""
        self._rejects_written: set[str] = set()
        self._held: list[pa.Table] = []
        self._held_ids: set[str] = set()
        self._settled_since_held: set[str] = set()
        """Open when read before, settled now: written then, and not at the end."""

    def write(
        self,
        tasks: pa.Table,
        rejects: list[dict[str, Any]],
        earlier: EarlierPasses | None = None,
    ) -> Iterator[Any]:
        """Items for ``tasks`` that are settled (open ones are held) and for the rejects
        not written yet. With ``earlier``, tasks an earlier pass read are left out, unless
        they were held open: those are written once, at the end or when they settle."""
        if earlier is not None and tasks.num_rows:
            ids = tasks.column("task_id").to_pylist()
            held = self._held_ids
            keep = [not read or i in held for i, read in zip(ids, earlier.read(ids), strict=True)]
            tasks = tasks.filter(pa.array(keep, pa.bool_()))
        still_open = open_mask(tasks)
        open_tasks = tasks.filter(still_open)
        if open_tasks.num_rows:
            self._held.append(open_tasks)
            self._held_ids.update(open_tasks.column("task_id").to_pylist())
        settled = tasks.filter(pc.invert(still_open))
        if self._held_ids and settled.num_rows:
            settled_ids = settled.column("task_id").to_pylist()
            self._settled_since_held.update(self._held_ids.intersection(settled_ids))
        if settled.num_rows:
            self.rows_written += settled.num_rows
            yield tasks_item(settled, self.deleted_tasks)
        new_rejects = [r for r in rejects if r["reject_id"] not in self._rejects_written]
        if new_rejects:
            self._rejects_written.update(r["reject_id"] for r in new_rejects)
            yield rejects_item(new_rejects)

    def write_held(self) -> Iterator[Any]:
        """The open tasks held so far, one row each (the last read), less those written
        settled since. Open tasks read after this are not written in this run."""
        latest = _latest_per_task(self._held, exclude=self._settled_since_held)
        self._held.clear()
        if latest is not None:
            self.rows_written += latest.num_rows
            yield tasks_item(latest, self.deleted_tasks)

    def write_deleted(self, rows: pa.Table) -> Iterator[Any]:
        """Rows of tasks that left the list, ``deleted_at`` set (see ``deletions.py``); none
        of them was read in this run, so none was written yet."""
        if rows.num_rows:
            self.rows_written += rows.num_rows
            yield tasks_item(rows, self.deleted_tasks)


def _latest_per_task(tables: list[pa.Table], exclude: set[str]) -> pa.Table | None:
    """One row per TaskId from ``tables`` (the last one read), less ``exclude``."""
    if not tables:
        return None
    rows = pa.concat_tables(tables, promote_options="default")
    if exclude:
        rows = rows.filter(
            pc.invert(pc.is_in(rows.column("task_id"), value_set=pa.array(list(exclude))))
        )
    if rows.num_rows == 0:
        return None
    order = pa.array(range(rows.num_rows), pa.int64())
    last = (
        pa.table({"task_id": rows.column("task_id"), "order": order})
        .group_by("task_id")
        .aggregate([("order", "max")])
        .column("order_max")
    )
    return rows.take(last)


# Each table's hints ride on its items as a table variant: hints on the resource itself
# would be copied into every table it yields, and the rejects table has no task_id to be
# non-null.
def tasks_item(tasks: pa.Table, deleted_tasks: str = settings.DEFAULT_DELETED_TASKS) -> Any:
    """Tasks for ``pull_record_tasks``, merged on task_id; the latest read wins a tie. Every
    row carries ``deleted_at`` (null while listed); with ``deleted_tasks="delete"`` it is the
    table's ``hard_delete`` column, so a merge removes the rows that have it set."""
    if "deleted_at" not in tasks.column_names:
        tasks = tasks.append_column("deleted_at", pa.nulls(tasks.num_rows, TIMESTAMP_TYPE))
    columns = dict(TASK_COLUMN_HINTS)
    columns["deleted_at"] = {**columns["deleted_at"], "hard_delete": deleted_tasks == "delete"}
    return dlt.mark.with_hints(
        tasks,
        dlt.mark.make_hints(
            table_name=settings.TABLE_NAME,
            write_disposition="merge",
            primary_key="task_id",
            columns=columns,
        ),
        create_table_variant=True,
    )


def rejects_item(rejects: list[dict[str, Any]]) -> Any:
    """Records set aside, with the reason, one row per distinct record (merged on its hash)."""
    return dlt.mark.with_hints(
        pa.Table.from_pylist(rejects, schema=pa.schema(REJECT_COLUMNS)),
        dlt.mark.make_hints(
            table_name=settings.REJECTS_TABLE_NAME,
            write_disposition="merge",
            primary_key="reject_id",
            columns=REJECT_COLUMN_HINTS,
        ),
        create_table_variant=True,
    )
