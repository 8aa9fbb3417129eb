"""The merge keeps one row per task, the latest read, even when staging holds a task twice.

The writer hands each task on once a run, but the load is still not told so (dlt's merge
option ``deduplicated``): a load resumed after a crash can copy a staging file twice
(``test_crash_resume.py``), and the API can list one task at two places of one pass. Real
pipelines into DuckDB files against the emulator on loopback.
"""

from __future__ import annotations

from datetime import timedelta

from conftest import Loader, assert_matches_emulator, list_a_task_twice, now


def _merge_sql(loader: Loader) -> list[str]:
    """The merge statements of every load the pipeline completed, oldest first."""
    loaded = loader.workdir / "pipelines" / loader.name / "load" / "loaded"
    jobs = sorted(loaded.glob("*/completed_jobs/pull_record_tasks.*.sql"))
    return [job.read_text() for job in jobs]


def _table_hints(loader: Loader) -> dict[str, object]:
    return dict(loader.pipeline().default_schema.tables["pull_record_tasks"])


def test_every_merge_numbers_staging_rows_by_key_and_the_latest_read_wins(
    loader: Loader,
) -> None:
    loader.run(page_size=100)
    loader.run(page_size=100)  # the second run merges into rows that are there
    assert_matches_emulator(loader)
    table = _table_hints(loader)
    assert not table.get("x-stage-data-deduplicated")
    assert table["columns"]["seen_at"].get("dedup_sort") == "desc"  # type: ignore[index]
    merges = _merge_sql(loader)
    assert len(merges) == 2
    assert all("INSERT INTO" in sql and "ROW_NUMBER" in sql for sql in merges)


def test_a_task_the_api_lists_twice_is_loaded_once(loader: Loader) -> None:
    list_a_task_twice(loader.emulator, now() - timedelta(days=3))  # settled, written at once
    metrics = loader.run(page_size=100)
    assert_matches_emulator(loader)
    assert metrics["rows_written"] == len(list(loader.emulator.store.all_tasks()))


def test_a_task_listed_twice_then_deleted_once_leaves_one_current_row(loader: Loader) -> None:
    task_id = list_a_task_twice(loader.emulator, now() - timedelta(hours=2))
    loader.run(page_size=100)
    loader.emulator.store.delete_task(task_id)  # one of the two
    loader.run(page_size=100)
    assert "ROW_NUMBER" in _merge_sql(loader)[-1]
    assert_matches_emulator(loader)
