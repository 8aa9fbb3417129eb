"""The throwaway PostgreSQL cluster of the destination tests starts under cron's PATH too:
root's cron runs ``make test`` with ``PATH=/usr/bin:/bin``, where ``runuser`` (in
``/usr/sbin`` on Debian) is not found by its bare name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from postgres_server import SYSTEM_DIRS, server_bindir, system_program

CRON_PATH = "/usr/bin:/bin"

START_AND_STOP = """
from postgres_server import _Cluster, server_bindir
cluster = _Cluster(server_bindir())
try:
    connection = cluster.server.connect()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        print("answered", cursor.fetchone()[0])
    connection.close()
finally:
    cluster.stop()
"""


def test_a_system_program_outside_crons_path_is_found_by_its_full_path(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    where = [d for d in SYSTEM_DIRS if os.access(os.path.join(d, "runuser"), os.X_OK)]
    if not where:
        pytest.skip("no runuser on this machine")
    monkeypatch.setenv("PATH", CRON_PATH)
    found = system_program("runuser")
    assert os.path.isabs(found) and os.access(found, os.X_OK)


def test_a_missing_program_names_the_folders_searched(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", CRON_PATH)
    with pytest.raises(FileNotFoundError, match="/usr/sbin"):
        system_program("no-such-program-volcengine")


def test_the_cluster_starts_and_answers_under_crons_path(tmp_path: Path) -> None:
    pytest.importorskip("psycopg2")
    if server_bindir() is None:
        pytest.skip("!!! no PostgreSQL server binaries: scripts/ensure-postgres.sh installs them")
    env = {**os.environ, "PATH": CRON_PATH}
    tests = str(Path(__file__).resolve().parents[1])  # postgres_server.py, beside the folders
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [tests, env.get("PYTHONPATH")]))
    done = subprocess.run(
        [sys.executable, "-c", START_AND_STOP],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "answered 1"
