"""The open tasks of a run, kept on disk until the end of the run instead of in memory.

Open tasks are written once, at the end of the run, with the status the last pass saw (see
``pull_record_tasks``). Holding their Arrow rows in memory cost about 300 bytes a task, and
twice that again while they were gathered into one table at the end; an account that
schedules many tasks ahead (the emulator's default mix: 13 %) held a hundred megabytes at a
million tasks. Here the rows go to Arrow IPC files in a temporary directory (beside the
load package when a pipeline runs), and only their TaskIds stay in memory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

READ_ROWS = 10_000
"""Rows handed back at a time by :meth:`OpenTaskBuffer.latest`."""


class OpenTaskBuffer:
    """Open task rows in Arrow IPC files; their TaskIds in :attr:`ids`.

    Use it as a context manager, or call :meth:`close`: the files go with it.
    """

    def __init__(self, directory: str | None = None) -> None:
        self._directory = tempfile.mkdtemp(prefix="volcengine-live-open-", dir=directory)
        self._segments: list[str] = []
        self._writer: pa.ipc.RecordBatchStreamWriter | None = None
        self._sink: pa.NativeFile | None = None
        self._schema: pa.Schema | None = None
        self.ids: set[str] = set()
        """TaskIds of every open row added."""
        self.rows = 0
        self._repeated = False
        self._closed = False

    def __enter__(self) -> OpenTaskBuffer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, tasks: pa.Table) -> None:
        """Keep these rows (a later row of the same TaskId wins in :meth:`latest`); after
        :meth:`close`, only their TaskIds."""
        if tasks.num_rows == 0:
            return
        ids = tasks.column("task_id").to_pylist()
        before = len(self.ids)
        self.ids.update(ids)
        if self._closed:
            return
        if len(self.ids) - before != len(ids):
            self._repeated = True
        if self._writer is None or tasks.schema != self._schema:
            # A batch with other columns (a field the API added) starts a segment of its own.
            self._close_writer()
            path = os.path.join(self._directory, f"{len(self._segments):05d}.arrow")
            self._sink = pa.OSFile(path, "wb")
            self._writer = pa.ipc.new_stream(self._sink, tasks.schema)
            self._schema = tasks.schema
            self._segments.append(path)
        self._writer.write_table(tasks)
        self.rows += tasks.num_rows

    def latest(self, exclude: set[str]) -> Iterator[pa.Table]:
        """The rows kept, one per TaskId (the last added), less those in ``exclude``, read
        back from disk a batch at a time."""
        self._close_writer()
        keep = self._last_rows() if self._repeated else None
        excluded = pa.array(list(exclude), pa.string()) if exclude else None
        position = 0
        for batch in self._batches():
            rows = pa.Table.from_batches([batch])
            mask: pa.Array | None = None
            if keep is not None:
                mask = keep.slice(position, rows.num_rows)
            position += rows.num_rows
            if excluded is not None:
                other = pc.invert(pc.is_in(rows.column("task_id"), value_set=excluded))
                mask = other if mask is None else pc.and_(mask, other)
            if mask is not None:
                rows = rows.filter(mask)
            if rows.num_rows:
                yield rows

    def _batches(self) -> Iterator[pa.RecordBatch]:
        # Plain reads, not a memory map: the batches handed on may outlive the file.
        for path in self._segments:
            with pa.OSFile(path, "rb") as source:
                yield from pa.ipc.open_stream(source)

    def _last_rows(self) -> pa.Array:
        """A mask over all rows kept: true where a row is the last one of its TaskId."""
        ids = [batch.column("task_id") for batch in self._batches()]
        task_ids = pa.chunked_array(ids, pa.string())
        order = pa.array(range(len(task_ids)), pa.int64())
        last = (
            pa.table({"task_id": task_ids, "order": order})
            .group_by("task_id")
            .aggregate([("order", "max")])
            .column("order_max")
        )
        return pc.is_in(order, value_set=last)

    def _close_writer(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def close(self) -> None:
        """Remove the files; :attr:`ids` stays readable and goes on growing."""
        self._closed = True
        self._close_writer()
        self._segments.clear()
        shutil.rmtree(self._directory, ignore_errors=True)
