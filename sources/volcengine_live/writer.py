"""What a run hands to dlt: each task and each reject at most once.

A destination that upserts (Delta) refuses a load holding two rows for one key, and a run
may read a task more than once (several passes, a late-day pass, and the API itself listing
one TaskId at two places of its list). So settled tasks are written when first read and
never again in the run; open tasks are held to the end and written once, with the status
the last pass saw, so that a task that finished between two passes is not left "recording".
The held rows wait on disk (see ``open_tasks.py``), so an account that schedules many tasks
ahead does not hold them in memory.

A TaskId that stands twice in one batch of records (10,000, see ``reader.BATCH_ROWS``)
keeps its later read, the page that arrived last. One already written in an earlier batch
of the run is not written again, whatever the later read says: that row is on its way to
the destination, and a second one for the key would wedge a Delta table for good (issue 23).

Why not tell the load the rows are deduplicated (dlt's merge option ``deduplicated``),
which they are, and skip dlt's numbering of the staging rows by key: a load resumed after a
crash can copy a staging file twice, since dlt empties staging only when a load starts
(``tests/integration/test_crash_resume.py`` caught it). The numbering removes that second
copy, at 2.8 s of DuckDB CPU for a million tasks in 32 MB and 3 MB more memory
(``benchmarks/RESULTS.md``; measured when the command held DuckDB to 32 MB).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dlt
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from . import settings
from .incremental import open_mask
from .open_tasks import OpenTaskBuffer
from .reader import EarlierPasses, found_in, hashes_of
from .records import REJECT_COLUMNS, TIMESTAMP_TYPE

TASK_COLUMN_HINTS: Any = {
    "task_id": {"data_type": "text", "nullable": False, "primary_key": True},
    "start_time": {"data_type": "timestamp", "timezone": True},
    "end_time": {"data_type": "timestamp", "timezone": True},
    "seen_at": {"data_type": "timestamp", "timezone": True, "dedup_sort": "desc"},
    "data_issues": {"data_type": "text", "nullable": True},
    "deleted_at": {"data_type": "timestamp", "timezone": True, "nullable": True},
    "_dlt_load_id": {"data_type": "text", "nullable": True},
}

REJECT_COLUMN_HINTS: Any = {
    "reject_id": {"data_type": "text", "nullable": False, "primary_key": True},
    "reason": {"data_type": "text", "nullable": False},
    "raw_record": {"data_type": "text", "nullable": True},
    "page_num": {"data_type": "bigint", "nullable": True},
    "seen_at": {"data_type": "timestamp", "timezone": True, "nullable": True},
    "_dlt_load_id": {"data_type": "text", "nullable": True},
}


class RunWriter:
    """Turns selected tasks and rejects into dlt items, once per task and run."""

    def __init__(
        self,
        deleted_tasks: str = settings.DEFAULT_DELETED_TASKS,
        spill_directory: str | None = None,
        account: str | None = None,
    ) -> None:
        self.account = account
        """With a label, every row gets an ``account`` column and a key with it."""
        self.deleted_tasks = deleted_tasks
        """``"delete"``: rows with ``deleted_at`` set are removed by the merge (hard_delete)."""
        self._rejects_written: set[str] = set()
        self._written = TaskIdHashes()
        """Every task row handed on in this run (held open ones once written)."""
        self._held = OpenTaskBuffer(spill_directory)
        self._settled_since_held: set[str] = set()
        """Open when read before, settled now: written then, and not at the end."""
        self.rows_written = 0
        """Task rows handed on so far."""

    def write(
        self,
        tasks: pa.Table,
        rejects: list[dict[str, Any]],
        earlier: EarlierPasses | None = None,
    ) -> Iterator[Any]:
        """Items for ``tasks`` that are settled (open ones are held) and for the rejects
        not written yet. With ``earlier``, tasks an earlier pass read are left out, unless
        they were held open: those are written once, at the end or when they settle. A
        TaskId twice in ``tasks`` keeps its last row; one written before is left out."""
        tasks = last_read_per_task(tasks)
        if self._written and tasks.num_rows:
            unwritten = ~self._written.contains(task_id_hashes(tasks))
            if not unwritten.all():
                tasks = tasks.filter(pa.array(unwritten, pa.bool_()))
        if earlier is not None and tasks.num_rows:
            ids = tasks.column("task_id").to_pylist()
            held = self._held.ids
            keep = [not read or i in held for i, read in zip(ids, earlier.read(ids), strict=True)]
            tasks = tasks.filter(pa.array(keep, pa.bool_()))
        still_open = open_mask(tasks)
        open_tasks = tasks.filter(still_open)
        self._held.add(open_tasks)
        settled = tasks.filter(pc.invert(still_open))
        if self._held.ids and settled.num_rows:
            settled_ids = settled.column("task_id").to_pylist()
            self._settled_since_held.update(self._held.ids.intersection(settled_ids))
        if settled.num_rows:
            yield self._tasks_item(settled)
        new_rejects = [r for r in rejects if r["reject_id"] not in self._rejects_written]
        if new_rejects:
            self._rejects_written.update(r["reject_id"] for r in new_rejects)
            yield rejects_item(new_rejects, self.account)

    def refresh(self, tasks: pa.Table | None) -> Iterator[Any]:
        """Tasks read again in the same pass (not written again): only a task held open
        matters, its newer read taking the place of the older one, or written now if it
        has settled since."""
        if tasks is None or not tasks.num_rows or not self._held.ids:
            return
        pending = self._held.ids - self._settled_since_held
        if not pending:
            return
        wanted = pc.is_in(tasks.column("task_id"), value_set=pa.array(list(pending), pa.string()))
        yield from self.write(tasks.filter(wanted), [])

    def write_held(self) -> Iterator[Any]:
        """The open tasks held so far, one row each (the last read), less those written
        settled since. Open tasks read after this are not written in this run."""
        for latest in self._held.latest(exclude=self._settled_since_held):
            yield self._tasks_item(latest)
        # The rows go; their TaskIds stay, so that later passes still leave them out.
        self._held.close()

    def write_deleted(self, rows: pa.Table) -> Iterator[Any]:
        """Rows of tasks that left the list, ``deleted_at`` set (see ``deletions.py``); none
        of them was read in this run, so none was written yet."""
        if rows.num_rows:
            yield self._tasks_item(rows)

    def _tasks_item(self, tasks: pa.Table) -> Any:
        """The item for ``tasks``, counted and remembered."""
        self.rows_written += tasks.num_rows
        self._written.add(task_id_hashes(tasks))
        return tasks_item(tasks, self.deleted_tasks, self.account)

    def close(self) -> None:
        """Remove the held rows' files."""
        self._held.close()


def last_read_per_task(tasks: pa.Table) -> pa.Table:
    """``tasks`` with one row per TaskId, the last one (rows come in the order they were
    read), in their order; the table itself when no TaskId repeats (the usual batch)."""
    ids = tasks.column("task_id")
    if tasks.num_rows < 2 or pc.count_distinct(ids).as_py() == tasks.num_rows:
        return tasks
    places = pa.array(np.arange(tasks.num_rows, dtype=np.int64))
    last = (
        pa.table({"task_id": ids, "place": places})
        .group_by("task_id", use_threads=False)
        .aggregate([("place", "max")])
        .column("place_max")
        .to_numpy()
    )
    return tasks.take(pa.array(np.sort(last)))


def task_id_hashes(tasks: pa.Table) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The in-process hashes of ``tasks``' TaskIds, as :class:`TaskIdHashes` keeps them."""
    return hashes_of(tasks.column("task_id").to_pylist())


class TaskIdHashes:
    """A set of TaskId hashes, 8 bytes a task, in a few sorted NumPy runs.

    A Python set of the TaskIds written would cost about 100 bytes a task (100 MB at a
    million). Runs of similar length are merged as they come (as in a log-structured
    merge), so a run holds at most about log2(tasks / batch) of them and a lookup is that
    many binary searches. Two TaskIds sharing a 64-bit hash (about 3 in 100 million at a
    million tasks) would leave the second unwritten in that run: ``reader.EarlierPasses``
    accepts the same odds.
    """

    def __init__(self) -> None:
        self._runs: list[np.ndarray[Any, np.dtype[np.int64]]] = []

    def __bool__(self) -> bool:
        return bool(self._runs)

    def contains(self, hashes: np.ndarray[Any, np.dtype[np.int64]]) -> np.ndarray[Any, Any]:
        """For each hash, whether it was added."""
        found = np.zeros(len(hashes), dtype=bool)
        for run in self._runs:
            found |= found_in(run, hashes)
        return found

    def add(self, hashes: np.ndarray[Any, np.dtype[np.int64]]) -> None:
        if not len(hashes):
            return
        self._runs.append(np.sort(hashes))
        while len(self._runs) > 1 and len(self._runs[-2]) <= 2 * len(self._runs[-1]):
            last = self._runs.pop()
            self._runs[-1] = np.sort(np.concatenate([self._runs[-1], last]))


def spill_directory() -> str | None:
    """Where open tasks wait for the end of the run: the pipeline's working directory
    (beside its load packages), or the system's temporary directory outside a pipeline."""
    try:
        return str(dlt.current.pipeline().working_dir)
    except Exception:  # no active pipeline: the resource is iterated on its own
        return None


ACCOUNT_COLUMN = "account"
ACCOUNT_COLUMN_HINT: Any = {"data_type": "text", "nullable": False, "primary_key": True}


def with_account(rows: pa.Table, account: str | None) -> pa.Table:
    """``rows`` with the account's label as first column, when there is one (rows read back
    from the destination have it already)."""
    if account is None:
        return rows
    if ACCOUNT_COLUMN in rows.column_names:
        rows = rows.drop_columns([ACCOUNT_COLUMN])
    labels = pa.array([account] * rows.num_rows, pa.string())
    # not nullable in Arrow as in the hints, or dlt warns that the two disagree
    return rows.add_column(0, pa.field(ACCOUNT_COLUMN, pa.string(), nullable=False), labels)


def _key_and_columns(key: str, columns: Any, account: str | None) -> tuple[Any, Any]:
    """Primary key and column hints: TaskIds (and reject hashes) are unique within one
    account only, so with a label the key is ``(account, <key>)``."""
    if account is None:
        return key, columns
    return [ACCOUNT_COLUMN, key], {ACCOUNT_COLUMN: ACCOUNT_COLUMN_HINT, **columns}


def tasks_item(
    tasks: pa.Table,
    deleted_tasks: str = settings.DEFAULT_DELETED_TASKS,
    account: str | None = None,
) -> Any:
    """Tasks for ``pull_record_tasks``, merged on task_id (and account, with one). Every
    row carries ``deleted_at`` (null while listed); with ``deleted_tasks="delete"`` it is
    the table's ``hard_delete`` column, so a merge removes the rows that have it set. When a
    key stands twice in a load, the latest read (``seen_at``) wins."""
    if "deleted_at" not in tasks.column_names:
        tasks = tasks.append_column("deleted_at", pa.nulls(tasks.num_rows, TIMESTAMP_TYPE))
    columns = dict(TASK_COLUMN_HINTS)
    columns["deleted_at"] = {**columns["deleted_at"], "hard_delete": deleted_tasks == "delete"}
    key, columns = _key_and_columns("task_id", columns, account)
    return _merged(with_account(tasks, account), settings.TABLE_NAME, key, columns)


def rejects_item(rejects: list[dict[str, Any]], account: str | None = None) -> Any:
    """Records set aside, with the reason, one row per distinct record (merged on its hash,
    and account, with one; :class:`RunWriter` writes each reject once a run)."""
    table = pa.Table.from_pylist(rejects, schema=pa.schema(REJECT_COLUMNS))
    key, columns = _key_and_columns("reject_id", REJECT_COLUMN_HINTS, account)
    return _merged(with_account(table, account), settings.REJECTS_TABLE_NAME, key, columns)


def _merged(table: pa.Table, table_name: str, primary_key: Any, columns: Any) -> Any:
    """``table`` as an item for ``table_name``, merged on ``primary_key``. Each table's
    hints ride on its items as a table variant: hints on the resource itself would be
    copied into every table it yields, and the rejects table has no task_id to be non-null."""
    return dlt.mark.with_hints(
        with_load_id(table),
        dlt.mark.make_hints(
            table_name=table_name,
            write_disposition="merge",
            primary_key=primary_key,
            columns=columns,
        ),
        create_table_variant=True,
    )


LOAD_ID_COLUMN = "_dlt_load_id"


def with_load_id(rows: pa.Table) -> pa.Table:
    """``rows`` with dlt's ``_dlt_load_id``: the package being extracted, the id dlt writes
    to ``_dlt_loads`` when it loads it.

    Why here: dlt adds ``_dlt_load_id`` to the rows it normalizes from Python objects, but
    leaves Arrow tables as they are unless the user sets
    ``normalize.parquet_normalizer.add_dlt_load_id`` (then dlt replaces this column with its
    own, the same id). Lineage should not depend on a setting users do not know about.
    """
    load_id = current_load_id()
    if load_id is None:
        return rows
    if LOAD_ID_COLUMN in rows.column_names:
        rows = rows.drop_columns([LOAD_ID_COLUMN])
    # one string and a byte per row: a million rows of a 17-character id would be 20 MB
    ids = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(rows.num_rows, np.int8)), pa.array([load_id], pa.string())
    )
    # nullable: a table loaded before this column existed gets it added, null in old rows
    return rows.append_column(pa.field(LOAD_ID_COLUMN, ids.type), ids)


def current_load_id() -> str | None:
    """The load id of the package dlt is extracting into, or ``None`` outside an extract.

    ``dlt.current.load_package_state`` in dlt 1.31; older releases call the same thing
    ``dlt.current.load_package``.
    """
    current: Any = dlt.current
    getter = getattr(current, "load_package_state", None) or getattr(current, "load_package", None)
    if getter is None:
        return None
    try:
        return str(getter()["load_id"])
    except Exception:  # not inside an extract (a writer used on its own, in a test)
        return None
