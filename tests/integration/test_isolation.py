"""The suite never touches the dlt data of the machine it runs on: every pipeline, in this
process and in subprocesses, keeps its state in the session's temporary data folder, and
nothing is written under dlt's real default folder (``/var/dlt`` as root, else ``~/.dlt``).
The session fixture in conftest.py fails the run if anything was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dlt
from dlt.common.pipeline import get_dlt_pipelines_dir

from helpers import REAL_DLT_DIR, _audit_writes, is_under_real_dlt_dir, writes_to_real_dlt_dir


def test_dlt_keeps_pipelines_in_the_sessions_temporary_folder(dlt_data_dir: Path) -> None:
    pipelines = Path(get_dlt_pipelines_dir())
    assert pipelines.is_relative_to(dlt_data_dir)
    assert not is_under_real_dlt_dir(pipelines)


def test_a_pipeline_without_a_pipelines_dir_writes_only_into_the_temporary_folder(
    dlt_data_dir: Path, tmp_path: Path
) -> None:
    before = list(writes_to_real_dlt_dir)
    pipeline = dlt.pipeline(
        pipeline_name="isolation_probe",
        destination=dlt.destinations.duckdb(str(tmp_path / "probe.duckdb")),
    )
    pipeline.run([{"id": 1}], table_name="probe")
    assert Path(pipeline.working_dir).is_relative_to(dlt_data_dir)
    assert (dlt_data_dir / "pipelines" / "isolation_probe").is_dir()
    assert writes_to_real_dlt_dir == before


def test_a_subprocess_inherits_the_temporary_folder(dlt_data_dir: Path) -> None:
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "from dlt.common.pipeline import get_dlt_pipelines_dir; print(get_dlt_pipelines_dir())",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.strip()
    assert Path(found).is_relative_to(dlt_data_dir)
    assert not is_under_real_dlt_dir(found)


def test_a_write_under_the_real_folder_would_be_caught() -> None:
    """The watch itself, fed an event by hand (nothing is written)."""
    before = len(writes_to_real_dlt_dir)
    _audit_writes("open", (os.path.join(REAL_DLT_DIR, "pipelines", "x"), "w", os.O_WRONLY))
    _audit_writes("os.mkdir", (os.path.join(REAL_DLT_DIR, "pipelines", "y"), 0o777, None))
    _audit_writes("open", (os.path.join(REAL_DLT_DIR, "secrets.toml"), "r", os.O_RDONLY))
    caught = writes_to_real_dlt_dir[before:]
    del writes_to_real_dlt_dir[before:]
    assert len(caught) == 2


def test_paths_outside_the_real_folder_are_not_flagged(tmp_path: Path) -> None:
    for path in (tmp_path / ".dlt", "relative/dir", REAL_DLT_DIR + "-other"):
        assert not is_under_real_dlt_dir(path)
