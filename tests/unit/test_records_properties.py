"""Property-based tests of the record parsing (hypothesis): any JSON value in any field of
a record, and extra fields with any name, never crash the parse and never lose a task. A
record with a usable TaskId is kept as a row; any other record is set aside as a reject
with a reason; both are counted; the project's own columns keep their meaning."""

from __future__ import annotations

import io
from datetime import datetime, timezone
from typing import Any

import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from volcengine_live.records import KNOWN_FIELDS, PROJECT_COLUMNS, tasks_to_arrow

SEEN = datetime(2024, 3, 27, 8, 0, tzinfo=timezone.utc)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(
        [
            "2024-03-01T10:00:00+08:00",
            "2024-03-01T02:00:00Z",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59-08:00",
            "已结束",
            "生效中",
            "",
            "\x00",
        ]
    ),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=6,
)
field_names = (
    st.sampled_from(KNOWN_FIELDS)
    | st.text(max_size=12)
    | st.sampled_from(
        ["DeletedAt", "Account", "SeenAt", "DataIssues", "StatusCode", "task_id", "api_x"]
    )
)
records = st.one_of(
    st.dictionaries(field_names, json_values, max_size=12),
    st.fixed_dictionaries(
        {"TaskId": st.text(min_size=1, max_size=20)},
        optional={name: json_values for name in KNOWN_FIELDS if name != "TaskId"},
    ),
    json_values,  # not an object at all
)


def _usable(record: Any) -> bool:
    if not isinstance(record, dict):
        return False
    task_id = record.get("TaskId")
    return isinstance(task_id, str) and task_id != "" and "\x00" not in task_id


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(records, max_size=8))
def test_any_json_in_any_field_keeps_every_task_and_sets_aside_the_rest_with_a_reason(
    page: list[Any],
) -> None:
    converted = tasks_to_arrow(page, SEEN, 3)
    table = converted.tasks
    kept = [record["TaskId"] for record in page if _usable(record)]
    assert table.column("task_id").to_pylist() == kept  # every task, in order, once per record
    assert table.num_rows + len(converted.rejects) == len(page)  # every record counted
    assert all(reject["reason"] and reject["page_num"] == 3 for reject in converted.rejects)
    assert converted.flagged == table.num_rows - table.column("data_issues").null_count
    assert set(table.column("seen_at").to_pylist()) <= {SEEN}
    assert not {"deleted_at", "account"} & set(table.column_names)  # the writer's own
    extra = set(table.column_names) - PROJECT_COLUMNS
    assert not extra & {name.lower() for name in KNOWN_FIELDS}
    for name in ("start_time", "end_time"):  # a time is in range, or null and flagged
        for value, issues in zip(
            table.column(name).to_pylist(), table.column("data_issues").to_pylist(), strict=True
        ):
            assert (value is None and issues) or (value is not None and 2000 <= value.year < 2100)
    pq.write_table(table, io.BytesIO())  # and the table is one a destination can take
