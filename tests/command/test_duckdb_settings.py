"""The DuckDB the command loads into: DuckDB's own defaults, as a plain dlt user gets, unless
dlt's configuration sets ``global_config``; and real data that outgrew the old fixed limit."""

from __future__ import annotations

import random
import string
from pathlib import Path

import dlt
import duckdb
import pytest

from volcengine_live_cli.command import main
from volcengine_live_cli.duckdb_settings import duckdb_destination

from helpers import configure_the_command, make_emulator


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


def _duckdb_defaults() -> tuple[str, int]:
    """What DuckDB itself picks on this machine, asked of a connection opened with nothing."""
    with duckdb.connect() as con:
        row = con.execute(
            "SELECT current_setting('memory_limit'), current_setting('threads')"
        ).fetchone()
    assert row is not None
    return str(row[0]), int(row[1])


def test_the_source_leaves_duckdb_at_its_own_defaults(tmp_path: Path) -> None:
    assert _settings(tmp_path) == _duckdb_defaults()


def test_dlt_configuration_sets_a_key_and_the_others_stay_at_duckdbs_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", '{"memory_limit": "1GB"}')
    memory_limit, threads = _settings(tmp_path)
    assert memory_limit.endswith("MiB") and 900 < float(memory_limit.split()[0]) < 1000
    assert threads == _duckdb_defaults()[1]


def test_a_small_machine_can_still_hold_duckdb_to_a_limit_and_one_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", '{"memory_limit": "64MB", "threads": 1}'
    )
    memory_limit, threads = _settings(tmp_path)
    assert memory_limit.endswith("MiB") and float(memory_limit.split()[0]) < 70
    assert threads == 1


EXTRA_FIELDS = 30
WIDE_TASKS = 20_000


def test_twenty_thousand_tasks_with_thirty_new_fields_load_with_the_commands_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The API grew 30 fields of 25 characters: with DuckDB held to 32 MB and one thread,
    the merge of 20,000 such tasks ran out of memory on every run."""
    monkeypatch.chdir(tmp_path)
    letters = random.Random(5)
    names = [f"NewField{i:02d}" for i in range(EXTRA_FIELDS)]
    with make_emulator(tasks=0, seed=3) as emulator:
        for _ in range(WIDE_TASKS):
            extra = {n: "".join(letters.choices(string.ascii_letters, k=25)) for n in names}
            emulator.store.create_task(extra)
        configure_the_command(monkeypatch, emulator)
        code = main(["--pipelines-dir", str(tmp_path / "pipelines"), "--progress", "none"])
    err = capsys.readouterr().err
    assert code == 0, err
    with duckdb.connect(str(tmp_path / "volcengine_live.duckdb"), read_only=True) as con:
        row = con.execute(
            "SELECT count(*), count(new_field29) FROM volcengine_live_dataset.pull_record_tasks"
        ).fetchone()
    assert row == (WIDE_TASKS, WIDE_TASKS)
