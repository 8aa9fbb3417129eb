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
from .records import REJECT_COLUMNS

TASK_COLUMN_HINTS: Any = {
    "task_id": {"data_type": "text", "nullable": False, "primary_key": True},
    "start_time": {"data_type": "timestamp", "timezone": True},
    "end_time": {"data_type": "timestamp", "timezone": True},
    "seen_at": {"data_type": "timestamp", "timezone": True, "dedup_sort": "desc"},
    "data_issues": {"data_type": "text", "nullable": True},
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

    def __init__(self, account: str | None = None) -> None:
        self.account = account
        """With a label, every row gets an ``account`` column and a key with it."""
        self.rows_written = 0
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
            yield tasks_item(settled, self.account)
        new_rejects = [r for r in rejects if r["reject_id"] not in self._rejects_written]
        if new_rejects:
            self._rejects_written.update(r["reject_id"] for r in new_rejects)
            yield rejects_item(new_rejects, self.account)

    def write_held(self) -> Iterator[Any]:
        """The open tasks held so far, one row each (the last read), less those written
        settled since. Open tasks read after this are not written in this run."""
        latest = _latest_per_task(self._held, exclude=self._settled_since_held)
        self._held.clear()
        if latest is not None:
            self.rows_written += latest.num_rows
            yield tasks_item(latest, self.account)


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


ACCOUNT_COLUMN = "account"
ACCOUNT_COLUMN_HINT: Any = {"data_type": "text", "nullable": False, "primary_key": True}


def with_account(rows: pa.Table, account: str | None) -> pa.Table:
    """``rows`` with the account's label as first column, when there is one."""
    if account is None:
        return rows
    labels = pa.array([account] * rows.num_rows, pa.string())
    # not nullable in Arrow as in the hints, or dlt warns that the two disagree
    return rows.add_column(0, pa.field(ACCOUNT_COLUMN, pa.string(), nullable=False), labels)


def _key_and_columns(key: str, columns: Any, account: str | None) -> tuple[Any, Any]:
    """Primary key and column hints: TaskIds (and reject hashes) are unique within one
    account only, so with a label the key is ``(account, <key>)``."""
    if account is None:
        return key, columns
    return [ACCOUNT_COLUMN, key], {ACCOUNT_COLUMN: ACCOUNT_COLUMN_HINT, **columns}


# Each table's hints ride on its items as a table variant: hints on the resource itself
# would be copied into every table it yields, and the rejects table has no task_id to be
# non-null.
def tasks_item(tasks: pa.Table, account: str | None = None) -> Any:
    """Tasks for ``pull_record_tasks``, merged on task_id (and account, with one); the
    latest read wins a tie."""
    key, columns = _key_and_columns("task_id", TASK_COLUMN_HINTS, account)
    return dlt.mark.with_hints(
        with_account(tasks, account),
        dlt.mark.make_hints(
            table_name=settings.TABLE_NAME,
            write_disposition="merge",
            primary_key=key,
            columns=columns,
        ),
        create_table_variant=True,
    )


def rejects_item(rejects: list[dict[str, Any]], account: str | None = None) -> Any:
    """Records set aside, with the reason, one row per distinct record (merged on its hash,
    and account, with one)."""
    key, columns = _key_and_columns("reject_id", REJECT_COLUMN_HINTS, account)
    return dlt.mark.with_hints(
        with_account(pa.Table.from_pylist(rejects, schema=pa.schema(REJECT_COLUMNS)), account),
        dlt.mark.make_hints(
            table_name=settings.REJECTS_TABLE_NAME,
            write_disposition="merge",
            primary_key=key,
            columns=columns,
        ),
        create_table_variant=True,
    )
