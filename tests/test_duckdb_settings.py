"""The source's DuckDB load settings: applied by default, and dlt's configuration wins."""

from __future__ import annotations

from pathlib import Path

import dlt
import pytest

from volcengine_live_cli.duckdb_settings import DUCKDB_LOAD_SETTINGS, duckdb_destination


def _settings(path: Path) -> tuple[str, int]:
    pipeline = dlt.pipeline(
        pipeline_name="duckdb_settings",
        destination=duckdb_destination(str(path / "settings.duckdb")),
        dataset_name="settings_dataset",
        pipelines_dir=str(path / "pipelines"),
    )
    pipeline.run([{"a": 1}], table_name="t")
    with pipeline.sql_client() as client:
        rows = client.execute_sql(
            "SELECT current_setting('memory_limit'), current_setting('threads')"
        )
    assert rows
    return str(rows[0][0]), int(rows[0][1])


def test_the_source_sets_memory_limit_and_threads(tmp_path: Path) -> None:
    assert DUCKDB_LOAD_SETTINGS == {"memory_limit": "32MB", "threads": 1}
    memory_limit, threads = _settings(tmp_path)
    assert memory_limit.endswith("MiB") and float(memory_limit.split()[0]) < 40
    assert threads == 1


def test_dlt_configuration_wins_key_by_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", '{"memory_limit": "1GB"}')
    memory_limit, threads = _settings(tmp_path)
    assert memory_limit.endswith("MiB") and float(memory_limit.split()[0]) > 900
    assert threads == 1
