"""``EarlierPasses``: which TaskIds earlier passes of a run read, by sorted hashes."""

from __future__ import annotations

from volcengine_live.reader import EarlierPasses
from volcengine_live.scan import ScanReport


def _report(ids: list[str]) -> ScanReport:
    report = ScanReport()
    report.task_id_hashes.extend(map(hash, ids))
    return report


def test_earlier_passes_tell_each_task_id_read_before_and_none_other() -> None:
    first = [f"task-{i}" for i in range(0, 3000, 3)]
    second = [f"task-{i}" for i in range(1, 3000, 3)] + first[:10]  # some read twice
    earlier = EarlierPasses([_report(first), _report(second)])
    asked = [f"task-{i}" for i in range(3000)] + ["task-never", "zzz"]
    expected = [not i.endswith(("never", "zzz")) and int(i[5:]) % 3 != 2 for i in asked]
    assert earlier.read(asked) == expected


def test_no_earlier_pass_read_anything() -> None:
    assert EarlierPasses([]).read(["a", "b"]) == [False, False]
    assert EarlierPasses([_report([])]).read(["a"]) == [False]
    assert EarlierPasses([_report(["a"])]).read([]) == []
