"""Shared fixtures: a real emulator on loopback and real pipelines into DuckDB files, all
kept away from the dlt data of the machine the suite runs on. The helpers they use, and that
test modules import, live in ``helpers.py``."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from dlt.common.known_env import DLT_DATA_DIR

from volcengine_live_emulator import Emulator

from helpers import REAL_DLT_DIR, Loader, _audit_writes, make_emulator, writes_to_real_dlt_dir

sys.addaudithook(_audit_writes)  # cannot be removed; costs a check per file opened


@pytest.fixture(scope="session", autouse=True)
def dlt_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """dlt's data folder (pipelines' working folders and state) for the whole session: a
    temporary one, also for subprocesses, which inherit the environment. Telemetry is off:
    dlt would write its anonymous id into the real folder whatever the data folder is."""
    data_dir = tmp_path_factory.mktemp("dlt-data")
    saved = {name: os.environ.get(name) for name in (DLT_DATA_DIR, "RUNTIME__DLTHUB_TELEMETRY")}
    os.environ[DLT_DATA_DIR] = str(data_dir)
    os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
    yield data_dir
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    assert not writes_to_real_dlt_dir, (
        f"the suite wrote into {REAL_DLT_DIR}: {writes_to_real_dlt_dir[:5]}"
    )


@pytest.fixture(autouse=True)
def _isolated_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep a developer's own credentials and settings out of the tests."""
    for name in list(os.environ):
        if name.startswith(("SOURCES__VOLCENGINE_LIVE__", "VOLC_")):
            monkeypatch.delenv(name)


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with make_emulator() as emu:
        yield emu


@pytest.fixture
def loader(emulator: Emulator, tmp_path: Path) -> Loader:
    return Loader(emulator, tmp_path)
