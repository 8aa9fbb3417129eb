"""The open-task buffer: rows on disk, one per TaskId (the last added), less those excluded."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from volcengine_live.open_tasks import OpenTaskBuffer


def _rows(ids: list[str], status: str, **extra: list[str]) -> pa.Table:
    return pa.table({"task_id": ids, "status": [status] * len(ids), **extra})


def test_latest_row_per_task_wins_and_excluded_tasks_are_left_out(
    tmp_path: Path,
) -> None:
    with OpenTaskBuffer(str(tmp_path)) as buffer:
        buffer.add(_rows(["a", "b", "c"], "first"))
        buffer.add(_rows(["b", "d"], "second"))
        assert buffer.ids == {"a", "b", "c", "d"}
        rows = pa.concat_tables(list(buffer.latest(exclude={"c"})))
    assert sorted(
        zip(rows.column("task_id").to_pylist(), rows.column("status").to_pylist(), strict=True)
    ) == [
        ("a", "first"),
        ("b", "second"),
        ("d", "second"),
    ]
    assert not any(tmp_path.iterdir())


def test_batches_with_other_columns_are_kept_with_their_columns(tmp_path: Path) -> None:
    with OpenTaskBuffer(str(tmp_path)) as buffer:
        buffer.add(_rows(["a"], "x"))
        buffer.add(_rows(["b"], "y", new_field=["1"]))
        buffer.add(_rows([], "z"))
        tables = list(buffer.latest(exclude=set()))
    assert [t.column_names for t in tables] == [
        ["task_id", "status"],
        ["task_id", "status", "new_field"],
    ]
    assert buffer.ids == {"a", "b"}


def test_after_close_rows_are_not_kept_but_their_task_ids_are(tmp_path: Path) -> None:
    buffer = OpenTaskBuffer(str(tmp_path))
    buffer.add(_rows(["a"], "x"))
    buffer.close()
    buffer.add(_rows(["b"], "y"))
    assert buffer.ids == {"a", "b"}
    assert list(buffer.latest(exclude=set())) == []
    assert not any(tmp_path.iterdir())
