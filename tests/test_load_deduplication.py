"""The load is told its rows are deduplicated, and only when they are (``writer.py``).

The merge then copies the staging rows as they are instead of numbering every row by key
first; a run that handed some TaskId on twice takes the promise back, and dlt deduplicates
that load. Real pipelines into DuckDB files against the emulator on loopback.
"""

from __future__ import annotations

from datetime import timedelta

from conftest import Loader, assert_matches_emulator, list_a_task_twice, now

from volcengine_live.writer import DEDUPLICATED_HINT


def _merge_sql(loader: Loader) -> list[str]:
    """The merge statements of every load the pipeline completed, oldest first."""
    loaded = loader.workdir / "pipelines" / loader.name / "load" / "loaded"
    jobs = sorted(loaded.glob("*/completed_jobs/pull_record_tasks.*.sql"))
    return [job.read_text() for job in jobs]


def _tie_break(loader: Loader) -> object:
    columns = loader.pipeline().default_schema.tables["pull_record_tasks"]["columns"]
    return columns["seen_at"].get("dedup_sort")


def _declared_deduplicated(loader: Loader) -> object:
    table = loader.pipeline().default_schema.tables["pull_record_tasks"]
    return table.get(DEDUPLICATED_HINT)  # type: ignore[misc]


def test_a_run_declares_its_rows_deduplicated_and_the_merge_inserts_them_as_they_are(
    loader: Loader,
) -> None:
    loader.run(page_size=100)
    loader.run(page_size=100)  # the second run merges into rows that are there
    assert_matches_emulator(loader)
    # Never declared: a resumed load can copy a staging file twice (test_crash_resume.py).
    assert _declared_deduplicated(loader) is False
    assert _tie_break(loader) == "desc"
    merges = _merge_sql(loader)
    assert len(merges) == 2
    assert all("INSERT INTO" in sql and "ROW_NUMBER" in sql for sql in merges)


def test_a_task_the_api_lists_twice_takes_the_promise_back_and_one_row_is_loaded(
    loader: Loader,
) -> None:
    list_a_task_twice(loader.emulator, now() - timedelta(days=3))  # settled, written at once
    metrics = loader.run(page_size=100)
    assert_matches_emulator(loader)
    assert metrics["rows_written"] == len(list(loader.emulator.store.all_tasks()))
    assert _declared_deduplicated(loader) is False
    assert _tie_break(loader) == "desc"  # the last read wins
    assert "ROW_NUMBER" in _merge_sql(loader)[-1]


def test_a_clean_run_after_one_with_a_task_listed_twice_declares_the_promise_again(
    loader: Loader,
) -> None:
    task_id = list_a_task_twice(loader.emulator, now() - timedelta(hours=2))
    loader.run(page_size=100)
    assert _declared_deduplicated(loader) is False
    loader.emulator.store.delete_task(task_id)  # one of the two
    loader.run(page_size=100)
    assert _declared_deduplicated(loader) is False
    assert _tie_break(loader) == "desc"
    assert "ROW_NUMBER" in _merge_sql(loader)[-1]
    assert_matches_emulator(loader)
