"""The task list's optional filters (``vhost``, ``domain``, ``app``, ``stream``): sent to the
API, and checked on every row all the same.

Nothing documents how the API matches them (exactly? case?) or whether an older server
reads them at all, so a row is kept only if each filter set equals its field exactly,
whatever the server did. A run with a filter is a run over the tasks it keeps: their
cursor, open tasks and day fingerprints; deletion detection looks only at rows within the
filter (``deletions.py``), so a task outside it is never flagged deleted. Rejects (records
without a usable TaskId) are kept whatever their fields: they cannot be trusted to say.

Why not leave the filtering to the server: a server that ignores a filter would then load
every task, and flag as deleted nothing more, yet change what the run writes; a filter
checked here changes nothing whether the server applied it or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .reader import Batch

REQUEST_FIELDS = {"vhost": "Vhost", "domain": "Domain", "app": "App", "stream": "Stream"}
"""Setting (and column) -> the field of the request body and of a task."""


@dataclass(frozen=True)
class TaskFilter:
    """The filters set, by setting name (an empty mapping keeps every task)."""

    values: Mapping[str, str] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.values)

    def body_fields(self) -> dict[str, str]:
        """What the request carries: ``{"Vhost": ..., ...}`` for the filters set."""
        return {REQUEST_FIELDS[name]: value for name, value in self.values.items()}

    def mask(self, rows: pa.Table) -> Any:
        """For each row (tasks as converted, or rows read back), whether every filter holds;
        a row without the column (or null in it) is outside."""
        keep = pa.array([True] * rows.num_rows, pa.bool_())
        for name, value in self.values.items():
            if name not in rows.column_names:
                return pa.array([False] * rows.num_rows, pa.bool_())
            keep = pc.and_(keep, pc.fill_null(pc.equal(rows.column(name), value), False))
        return keep

    def rows(self, rows: pa.Table) -> pa.Table:
        """``rows`` within the filters."""
        return rows.filter(self.mask(rows)) if self.values and rows.num_rows else rows

    def batch(self, batch: Batch) -> Batch:
        """``batch`` with its tasks (and tasks read again) within the filters."""
        if not self.values:
            return batch
        repeated = None if batch.repeated is None else self.rows(batch.repeated)
        return replace(batch, tasks=self.rows(batch.tasks), repeated=repeated)
