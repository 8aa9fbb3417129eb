"""The Dagster definitions in deploy/dagster/definitions.py, loaded and run in Dagster.

Dagster lives in its own venv (``scripts/dagster-venv.sh``, ``.venv-dagster/``): without it
these tests skip loudly, unless ``VOLCENGINE_LIVE_REQUIRE_DAGSTER=1`` (``make test-dagster``)
makes that a failure. Every Dagster process gets an empty home, its own DAGSTER_HOME and
DLT_DATA_DIR in the test's temporary folder (dlt would use /var/dlt as root)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from volcengine_live_emulator import Emulator

from helpers import ACCESS_KEY_ID, SECRET_ACCESS_KEY, make_emulator, now

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "deploy" / "dagster" / "definitions.py"
BIN = Path(sys.executable).parent
TABLE = "volcengine_live_dataset.pull_record_tasks"


def dagster_bin() -> Path:
    """The bin folder of the venv that scripts/dagster-venv.sh finished building."""
    venv = Path(os.environ.get("DAGSTER_VENV", ROOT / ".venv-dagster"))
    if (venv / "bin" / "dagster").exists() and (venv / ".installed").exists():
        return venv / "bin"
    message = (
        f"!!! DAGSTER IS NOT INSTALLED ({venv} missing or unfinished): the Dagster definitions "
        "were NOT tested. Run scripts/dagster-venv.sh (seconds with uv) or `make test-dagster`."
    )
    if os.environ.get("VOLCENGINE_LIVE_REQUIRE_DAGSTER") == "1":
        pytest.fail(message)
    pytest.skip(message)


def dagster_env(tmp_path: Path) -> dict[str, str]:
    """A new machine's environment: no developer settings, everything under tmp_path."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SOURCES__", "DESTINATION", "VOLC", "PIPELINE", "DLT_", "DAGSTER"))
    }
    home = tmp_path / "home"
    (tmp_path / "dagster").mkdir(parents=True, exist_ok=True)
    (tmp_path / "dagster" / "dagster.yaml").touch()  # an instance of its own, on SQLite
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),
        DLT_DATA_DIR=str(home / "dlt"),  # not /var/dlt
        DLT_PROJECT_DIR=str(home),  # no .dlt/ of the developer's
        DAGSTER_HOME=str(tmp_path / "dagster"),
        TMPDIR=str(tmp_path),
        RUNTIME__DLTHUB_TELEMETRY="false",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


INSPECT = """
import importlib.util, json, os, sys

def load():
    spec = importlib.util.spec_from_file_location("definitions", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    job = module.defs.resolve_job_def("volcengine_live")
    return module, {
        "assets": sorted(
            key.to_user_string()
            for key in module.defs.resolve_asset_graph().materializable_asset_keys
        ),
        "job": sorted(key.to_user_string() for key in job.asset_layer.selected_asset_keys),
        "schedules": {s.name: [s.cron_schedule, s.job_name] for s in module.defs.schedules},
    }

module, default = load()
os.environ["SOURCES__VOLCENGINE_LIVE__ACCOUNTS"] = json.dumps({"cn": {}, "byteplus": {}})
_, configured = load()
print(json.dumps({
    "default": default,
    "configured": configured,
    "pipelines": [module.pipeline_name(account) for account in ("default", "byteplus")],
}))
"""

ASSET = "dlt_volcengine_live_pull_record_tasks"  # dagster-dlt's key for the one resource


def test_the_definitions_load_without_credentials_with_one_asset_per_account(
    tmp_path: Path,
) -> None:
    python = dagster_bin() / "python"
    done = subprocess.run(
        [str(python), "-c", INSPECT, str(DEFINITIONS)],
        env=dagster_env(tmp_path),  # no credentials: loading the definitions must not need them
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    schedules = {"volcengine_live_schedule": ["*/30 * * * *", "volcengine_live"]}
    # no accounts configured: one asset, under dagster-dlt's own key
    assert found["default"] == {"assets": [ASSET], "job": [ASSET], "schedules": schedules}
    # accounts configured: one asset per account, keyed by the account, all in the job
    per_account = [f"byteplus/{ASSET}", f"cn/{ASSET}"]
    assert found["configured"] == {
        "assets": per_account,
        "job": per_account,
        "schedules": schedules,
    }
    assert found["pipelines"] == ["volcengine_live", "volcengine_live_byteplus"]


def change_the_account(emulator: Emulator) -> None:
    """Between two runs: an open task settles and a new one arrives."""
    recording = next(t for t in emulator.store.all_tasks() if t["Status"] == "生效中")
    emulator.store.set_status(recording["TaskId"], "已结束")
    start = now() - timedelta(hours=2)
    emulator.store.create_task(StartTime=start, EndTime=start + timedelta(hours=1))


def current_statuses(emulator: Emulator) -> dict[str, str]:
    return {task["TaskId"]: task["Status"] for task in emulator.store.all_tasks()}


def test_the_job_materializes_the_asset_twice_and_the_second_run_is_incremental(
    emulator: Emulator, tmp_path: Path
) -> None:
    """``dagster job execute`` runs the job (the asset in a subprocess of Dagster's
    multiprocess executor) into a DuckDB file; configuration only from the dlt variables."""
    dagster = dagster_bin() / "dagster"
    env = dagster_env(tmp_path)
    database = tmp_path / "dagster_load.duckdb"
    env.update(
        DESTINATION_TYPE="duckdb",
        DESTINATION__DUCKDB__CREDENTIALS=str(database),
        SOURCES__VOLCENGINE_LIVE__ENDPOINT=emulator.endpoint,
        SOURCES__VOLCENGINE_LIVE__CREDENTIALS__ACCESS_KEY_ID=ACCESS_KEY_ID,
        SOURCES__VOLCENGINE_LIVE__CREDENTIALS__SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
    )

    def run_job() -> None:
        done = subprocess.run(
            [str(dagster), "job", "execute", "-f", str(DEFINITIONS), "-j", "volcengine_live"],
            env=env,
            cwd=env["HOME"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-5000:]
        assert "RUN_SUCCESS" in output and f"Materialized value {ASSET}" in output, output[-5000:]
        assert SECRET_ACCESS_KEY not in output

    def query(sql: str) -> list[Any]:
        with duckdb.connect(str(database), read_only=True) as con:
            return con.execute(sql).fetchall()

    run_job()
    assert dict(query(f"SELECT task_id, status FROM {TABLE}")) == current_statuses(emulator)
    [(first_seen,)] = query(f"SELECT max(seen_at) FROM {TABLE}")

    change_the_account(emulator)
    run_job()
    assert dict(query(f"SELECT task_id, status FROM {TABLE}")) == current_statuses(emulator)
    [(rows, distinct)] = query(f"SELECT count(*), count(DISTINCT task_id) FROM {TABLE}")
    assert rows == distinct == len(current_statuses(emulator))
    [(rewritten,)] = query(f"SELECT count(*) FROM {TABLE} WHERE seen_at > '{first_seen}'")
    assert 0 < rewritten < emulator.store.count / 2  # incremental, not a reload
    # the default account's pipeline keeps the name the CLI and the Airflow DAG use
    pipelines = query(
        "SELECT DISTINCT pipeline_name FROM volcengine_live_dataset._dlt_pipeline_state"
    )
    assert pipelines == [("volcengine_live",)]


def test_the_job_materializes_each_account_and_one_failing_spares_the_rest(
    emulator: Emulator, tmp_path: Path
) -> None:
    """Three configured accounts, one with a wrong key: one asset each, the two good ones
    land in one dataset with their own rows, the broken one loads nothing, the run fails."""
    dagster = dagster_bin() / "dagster"
    env = dagster_env(tmp_path)
    database = tmp_path / "accounts.duckdb"
    env.update(DESTINATION_TYPE="duckdb", DESTINATION__DUCKDB__CREDENTIALS=str(database))
    with make_emulator(seed=12) as other:
        accounts = {
            "cn": (emulator.endpoint, SECRET_ACCESS_KEY),
            "byteplus": (other.endpoint, SECRET_ACCESS_KEY),
            "broken": (emulator.endpoint, "not-the-secret"),
        }
        (Path(env["DLT_PROJECT_DIR"]) / ".dlt").mkdir(parents=True, exist_ok=True)
        (Path(env["DLT_PROJECT_DIR"]) / ".dlt" / "secrets.toml").write_text(
            "\n".join(
                f'[sources.volcengine_live.accounts.{name}]\nendpoint = "{endpoint}"\n'
                f"[sources.volcengine_live.accounts.{name}.credentials]\n"
                f'access_key_id = "{ACCESS_KEY_ID}"\nsecret_access_key = "{secret}"\n'
                for name, (endpoint, secret) in accounts.items()
            )
        )
        done = subprocess.run(
            [str(dagster), "job", "execute", "-f", str(DEFINITIONS), "-j", "volcengine_live"],
            env=env,
            cwd=env["HOME"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        output = done.stdout + done.stderr
        assert done.returncode != 0 and "RUN_FAILURE" in output, output[-5000:]
        for account in ("byteplus", "cn"):
            assert f"Materialized value {account} {ASSET}" in output, output[-6000:]
        assert f"Materialized value broken {ASSET}" not in output
        assert "not-the-secret" not in output

        with duckdb.connect(str(database), read_only=True) as con:
            rows = con.execute(f"SELECT account, task_id, status FROM {TABLE}").fetchall()
        loaded = {(account, task_id): status for account, task_id, status in rows}
        expected = {("cn", t): s for t, s in current_statuses(emulator).items()}
        expected |= {("byteplus", t): s for t, s in current_statuses(other).items()}
        assert len(rows) == len(loaded) == len(expected)
        assert loaded == expected  # and nothing of "broken"
