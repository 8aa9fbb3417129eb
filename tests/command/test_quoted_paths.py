"""A ``'`` in the path of the pipelines folder (a home such as ``/home/o'brien``): dlt's
DuckDB loader writes ``read_parquet('<path>')`` unescaped, so every Parquet load failed. The
source then hands ``insert_values`` files, which name no path; elsewhere it keeps Parquet."""

from __future__ import annotations

from pathlib import Path

import pytest

from volcengine_live_cli.command import main
from volcengine_live_emulator import Emulator

from helpers import Loader, assert_matches_emulator, configure_the_command


def load_file_formats(pipelines: Path) -> set[str]:
    """The formats of the task files dlt loaded (``<table>.<id>.<n>.<format>[.gz]``)."""
    return {
        job.name.removesuffix(".gz").rsplit(".", 1)[-1]
        for job in pipelines.glob("*/load/loaded/*/completed_jobs/pull_record_tasks.*")
        if not job.name.endswith(".sql")
    }


def add_a_reject(emulator: Emulator) -> None:
    """A record without TaskId, so the rejects table is loaded too."""
    emulator.store.create_task({"StartTime": "2024-01-01T00:00:00Z", "Status": "已结束"}, raw=True)


def test_a_dlt_pipeline_in_a_folder_with_a_quote_loads_and_merges(
    emulator: Emulator, tmp_path: Path
) -> None:
    workdir = tmp_path / "home" / "o'brien"
    workdir.mkdir(parents=True)
    add_a_reject(emulator)
    loader = Loader(emulator, workdir)
    loader.run()
    emulator.store.create_task()
    loader.run()  # a second load merges into the tables of the first
    assert_matches_emulator(loader)
    assert loader.query("SELECT count(*) FROM pull_record_task_rejects") == [(1,)]
    assert load_file_formats(workdir / "pipelines") == {"insert_values"}


def test_without_a_quote_the_tasks_stay_parquet(emulator: Emulator, tmp_path: Path) -> None:
    loader = Loader(emulator, tmp_path)
    loader.run()
    assert load_file_formats(tmp_path / "pipelines") == {"parquet"}


def test_the_command_run_from_a_home_with_a_quote_loads(
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    home = tmp_path / "o'brien"
    home.mkdir()
    monkeypatch.chdir(home)
    configure_the_command(monkeypatch, emulator)
    pipelines = home / ".dlt" / "pipelines"
    for _ in range(2):
        code = main(["--pipelines-dir", str(pipelines), "--progress", "none"])
        out, err = capsys.readouterr()
        assert code == 0, err
    assert f"{emulator.store.count} in the table" in out
    assert load_file_formats(pipelines) == {"insert_values"}
