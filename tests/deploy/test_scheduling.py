"""Scheduled runs: the GitHub Actions template, the cron line in docs/scheduling.md and the
Airflow DAG, each checked by running what it runs.

The Airflow tests need Airflow, which lives in its own venv (``scripts/airflow-venv.sh``,
``.venv-airflow/``): without it they skip loudly, unless ``VOLCENGINE_LIVE_REQUIRE_AIRFLOW=1``
(``make test-airflow``) makes that a failure."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
import tomlkit
import yaml
from croniter import croniter

from volcengine_live_cli.command import parse_args
from volcengine_live_emulator import Emulator

from helpers import ACCESS_KEY_ID, SECRET_ACCESS_KEY, make_emulator, now
from postgres_server import PostgresServer, postgres_server_or_skip

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "deploy" / "github" / "volcengine_live.yml"
DAGS = ROOT / "deploy" / "airflow" / "dags"
SCHEDULING_DOC = ROOT / "docs" / "scheduling.md"
BIN = Path(sys.executable).parent
CREDENTIAL_VARIABLES = {
    "SOURCES__VOLCENGINE_LIVE__CREDENTIALS__ACCESS_KEY_ID",
    "SOURCES__VOLCENGINE_LIVE__CREDENTIALS__SECRET_ACCESS_KEY",
}


def clean_env(home: Path) -> dict[str, str]:
    """The environment of a new machine: no developer settings, an empty home and project."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(
            ("SOURCES__", "DESTINATION", "VOLC", "PIPELINE", "AIRFLOW", "DLT_", "DAGSTER")
        )
    }
    home.mkdir(parents=True, exist_ok=True)
    env.update(
        HOME=str(home),  # dlt keeps pipelines under ~/.dlt: a fresh runner has none
        DLT_DATA_DIR=str(home / ".dlt"),  # ... or in /var/dlt as root, whatever HOME says
        DLT_PROJECT_DIR=str(home),
        RUNTIME__DLTHUB_TELEMETRY="false",
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
    )
    return env


def change_the_account(emulator: Emulator) -> None:
    """Between two runs: an open task settles and a new one arrives."""
    recording = next(t for t in emulator.store.all_tasks() if t["Status"] == "生效中")
    emulator.store.set_status(recording["TaskId"], "已结束")
    start = now() - timedelta(hours=2)
    emulator.store.create_task(StartTime=start, EndTime=start + timedelta(hours=1))


def current_statuses(emulator: Emulator) -> dict[str, str]:
    return {task["TaskId"]: task["Status"] for task in emulator.store.all_tasks()}


# ------------------------------------------------------------------ GitHub Actions


def workflow() -> dict[Any, Any]:
    loaded = yaml.safe_load(WORKFLOW.read_text())
    assert isinstance(loaded, dict)
    return loaded


def run_step(steps: list[dict[str, Any]]) -> list[str]:
    """The command line of the step that runs the pipeline."""
    [command] = [s["run"] for s in steps if "volcengine-live" in s.get("run", "")]
    return shlex.split(command)


def test_the_github_workflow_is_a_scheduled_template_that_runs_the_cli() -> None:
    spec = workflow()
    triggers: Any = spec.get("on", spec.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(triggers) == {"schedule", "workflow_dispatch"}  # never on push or PRs
    [cron] = [entry["cron"] for entry in triggers["schedule"]]
    assert cron == "*/30 * * * *" and croniter.is_valid(cron)
    assert spec["concurrency"]["cancel-in-progress"] is False
    # kept as a template: in .github/workflows it would run in this repository
    assert not (ROOT / ".github" / "workflows" / WORKFLOW.name).exists()

    [job] = spec["jobs"].values()
    steps = job["steps"]
    uses = {s["uses"].split("@")[0]: s for s in steps if "uses" in s}
    assert "actions/checkout" in uses
    assert str(uses["actions/setup-python"]["with"]["python-version"]) == "3.12"
    assert "astral-sh/setup-uv" in uses
    install = next(s["run"] for s in steps if "pip install" in s.get("run", ""))
    assert "uv export --frozen" in install and '".[cli,postgres]"' in install

    command = run_step(steps)
    scripts = tomlkit.parse((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert command[0] in scripts
    assert parse_args(command[1:]).destination == "postgres"

    # every credential comes from a secret of the same name as the variable dlt reads
    env = spec["env"]
    assert CREDENTIAL_VARIABLES | {"DESTINATION__POSTGRES__CREDENTIALS"} <= env.keys()
    for name, value in env.items():
        if name.startswith(("SOURCES__", "DESTINATION__")):
            assert value == f"${{{{ secrets.{name} }}}}", name


def test_the_workflow_run_step_loads_postgres_incrementally_on_fresh_runners(
    emulator: Emulator, tmp_path: Path
) -> None:
    """The workflow's run step with its environment, the secrets filled in (the emulator's
    key, a real Postgres on loopback), twice, each time on a new, empty machine: the second
    run must find the state in Postgres and write only what changed."""
    postgres: PostgresServer = postgres_server_or_skip()
    spec = workflow()
    secrets = {
        "SOURCES__VOLCENGINE_LIVE__CREDENTIALS__ACCESS_KEY_ID": ACCESS_KEY_ID,
        "SOURCES__VOLCENGINE_LIVE__CREDENTIALS__SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
        "DESTINATION__POSTGRES__CREDENTIALS": postgres.url,
    }
    dataset = "github_actions"
    command = [*run_step(spec["jobs"]["run_pipeline"]["steps"]), "--dataset-name", dataset]
    first_seen: Any = None
    for run in (1, 2):
        env = clean_env(tmp_path / f"runner-{run}")
        for name, value in spec["env"].items():
            found = re.fullmatch(r"\$\{\{ secrets\.(\w+) \}\}", str(value))
            env[name] = secrets[found.group(1)] if found else str(value)
        env["SOURCES__VOLCENGINE_LIVE__ENDPOINT"] = emulator.endpoint  # the one addition
        done = subprocess.run(
            command, env=env, cwd=env["HOME"], capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert SECRET_ACCESS_KEY not in done.stdout + done.stderr
        if run == 1:
            [(first_seen,)] = _pg(postgres, f"SELECT max(seen_at) FROM {dataset}.pull_record_tasks")
            change_the_account(emulator)

    assert dict(_pg(postgres, f"SELECT task_id, status FROM {dataset}.pull_record_tasks")) == (
        current_statuses(emulator)
    )
    [(rewritten,)] = _pg(
        postgres,
        f"SELECT count(*) FROM {dataset}.pull_record_tasks WHERE seen_at > %s",
        (first_seen,),
    )
    assert 0 < rewritten < emulator.store.count / 2  # incremental, not a reload


def _pg(server: PostgresServer, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    connection: Any = server.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return list(cursor.fetchall())
    finally:
        connection.close()


# ------------------------------------------------------------------ cron


def test_the_cron_line_in_the_docs_is_valid_and_uses_real_options() -> None:
    block = re.search(r"```cron\n(.*?)```", SCHEDULING_DOC.read_text(), re.S)
    assert block, "docs/scheduling.md has no ```cron block"
    lines = [line for line in block.group(1).splitlines() if line and not line.startswith("#")]
    assert lines
    for line in lines:
        fields = line.split(None, 5)
        assert croniter.is_valid(" ".join(fields[:5])), line
        command = shlex.split(fields[5])
        cli = next(i for i, word in enumerate(command) if word.endswith("volcengine-live"))
        arguments = []
        for word in command[cli + 1 :]:
            if word in {">>", ">", "2>&1", "|", "&&", ";"}:
                break
            arguments.append(word)
        parse_args(arguments)  # exits (SystemExit) on an unknown option


# ------------------------------------------------------------------ Airflow


AIRFLOW_VENVS = {
    # Airflow 3, built by scripts/airflow-venv.sh (`make airflow-venv`, part of `make test`)
    "airflow3": ("AIRFLOW_VENV", ROOT / ".venv-airflow"),
    # Airflow 2.10, optional: built only on request (see scripts/airflow-venv.sh)
    "airflow2": ("AIRFLOW2_VENV", ROOT / ".venv-airflow2"),
}


@pytest.fixture(params=sorted(AIRFLOW_VENVS))
def airflow_python(request: pytest.FixtureRequest) -> Path:
    """The Python of an Airflow venv that scripts/airflow-venv.sh finished building."""
    variable, default = AIRFLOW_VENVS[request.param]
    venv = Path(os.environ.get(variable, default))
    python = venv / "bin" / "python"
    if python.exists() and (venv / ".installed").exists():
        return python
    if request.param == "airflow2":
        pytest.skip(f"Airflow 2.10 is optional: {venv} not built")
    message = (
        f"!!! AIRFLOW IS NOT INSTALLED ({venv} missing or unfinished): the Airflow DAG was NOT "
        "tested. Run scripts/airflow-venv.sh (seconds with uv) or `make test-airflow`."
    )
    if os.environ.get("VOLCENGINE_LIVE_REQUIRE_AIRFLOW") == "1":
        pytest.fail(message)
    pytest.skip(message)


def airflow_env(tmp_path: Path) -> dict[str, str]:
    env = clean_env(tmp_path / "home")
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        TMPDIR=str(tmp_path),  # where each load task makes (and deletes) dlt's working folder
    )
    del env["DLT_PROJECT_DIR"]  # the DAG makes the dags folder dlt's project folder
    return env


INSPECT_DAG = """
import importlib.util, json, os, sys
from airflow.models.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dag = bag.dags.get("volcengine_live")
spec = importlib.util.spec_from_file_location("dag_file", sys.argv[1] + "/volcengine_live_dag.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
default = module.account_names()
os.environ["SOURCES__VOLCENGINE_LIVE__ACCOUNTS"] = json.dumps({"cn": {}, "byteplus": {}})
configured = module.account_names()
print(json.dumps({
    "import_errors": {k: str(v) for k, v in bag.import_errors.items()},
    "dag_ids": sorted(bag.dag_ids),
    "schedule": dag and str(getattr(dag, "schedule_interval", None) or dag.schedule),
    "catchup": dag and dag.catchup,
    "max_active_runs": dag and dag.max_active_runs,
    "tasks": dag and {
        t.task_id: {
            "mapped": "Mapped" in type(t).__name__ or getattr(t, "is_mapped", False) is True,
            "retries": t.retries,
            "upstream": sorted(t.upstream_task_ids),
        }
        for t in dag.tasks
    },
    "accounts": [default, configured],
    "pipelines": [module.pipeline_name(a) for a in ("default", "byteplus")],
}))
"""


def test_the_airflow_dag_imports_without_credentials_and_fans_out_over_accounts(
    airflow_python: Path, tmp_path: Path
) -> None:
    done = subprocess.run(
        [str(airflow_python), "-c", INSPECT_DAG, str(DAGS)],
        env=airflow_env(tmp_path),  # no credentials: parsing must not need them
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["import_errors"] == {}
    assert found["dag_ids"] == ["volcengine_live"]
    assert found["schedule"] == "*/30 * * * *"
    assert found["catchup"] is False
    assert found["max_active_runs"] == 1
    assert found["tasks"] == {
        "accounts": {"mapped": False, "retries": 0, "upstream": []},
        "load": {"mapped": True, "retries": 0, "upstream": ["accounts"]},
    }
    # the one default account unless accounts are configured; one pipeline (state) each
    assert found["accounts"] == [["default"], ["byteplus", "cn"]]
    assert found["pipelines"] == ["volcengine_live", "volcengine_live_byteplus"]


def test_the_airflow_dag_runs_and_the_next_run_is_incremental(
    airflow_python: Path, emulator: Emulator, tmp_path: Path
) -> None:
    """``airflow dags test`` runs the DAG in Airflow (its own metadata database in
    tmp_path), into a DuckDB file outside the working folder that each task deletes."""
    env = airflow_env(tmp_path)
    database = tmp_path / "airflow_load.duckdb"
    env.update(
        DESTINATION_TYPE="duckdb",
        DESTINATION__DUCKDB__CREDENTIALS=str(database),
        SOURCES__VOLCENGINE_LIVE__ENDPOINT=emulator.endpoint,
        SOURCES__VOLCENGINE_LIVE__CREDENTIALS__ACCESS_KEY_ID=ACCESS_KEY_ID,
        SOURCES__VOLCENGINE_LIVE__CREDENTIALS__SECRET_ACCESS_KEY=SECRET_ACCESS_KEY,
    )
    airflow = airflow_python.with_name("airflow")
    migrated = subprocess.run(
        [str(airflow), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]

    def run_dag() -> None:
        done = subprocess.run(
            [str(airflow), "dags", "test", "volcengine_live"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
        )
        output = done.stdout + done.stderr
        assert done.returncode == 0, output[-5000:]
        assert SECRET_ACCESS_KEY not in output
        assert not list(tmp_path.glob("dlt_*")), "the task left its working folder behind"

    def query(sql: str) -> list[Any]:
        with duckdb.connect(str(database), read_only=True) as con:
            return con.execute(sql).fetchall()

    table = "volcengine_live_dataset.pull_record_tasks"
    run_dag()
    assert dict(query(f"SELECT task_id, status FROM {table}")) == current_statuses(emulator)
    [(first_seen,)] = query(f"SELECT max(seen_at) FROM {table}")

    change_the_account(emulator)
    run_dag()
    assert dict(query(f"SELECT task_id, status FROM {table}")) == current_statuses(emulator)
    [(rows, distinct)] = query(f"SELECT count(*), count(DISTINCT task_id) FROM {table}")
    assert rows == distinct == len(current_statuses(emulator))
    [(rewritten,)] = query(f"SELECT count(*) FROM {table} WHERE seen_at > '{first_seen}'")
    assert 0 < rewritten < emulator.store.count / 2  # state came back from the destination
    # the default account keeps the pipeline name (and so the state) of earlier versions
    assert {
        name
        for (name,) in query(
            "SELECT DISTINCT pipeline_name FROM volcengine_live_dataset._dlt_pipeline_state"
        )
    } == {"volcengine_live"}


# ------------------------------------------------------------------ many accounts


def write_accounts(project: Path, accounts: dict[str, tuple[str, str]]) -> None:
    """``.dlt/secrets.toml`` with one ``[sources.volcengine_live.accounts.<name>]`` section
    per account: name -> (endpoint, secret access key)."""
    sections = [
        f'[sources.volcengine_live.accounts.{name}]\nendpoint = "{endpoint}"\n'
        f"[sources.volcengine_live.accounts.{name}.credentials]\n"
        f'access_key_id = "{ACCESS_KEY_ID}"\nsecret_access_key = "{secret}"\n'
        for name, (endpoint, secret) in accounts.items()
    ]
    (project / ".dlt").mkdir(parents=True, exist_ok=True)
    (project / ".dlt" / "secrets.toml").write_text("\n".join(sections))


def test_the_airflow_dag_loads_each_account_in_its_own_task_and_one_failing_spares_the_rest(
    airflow_python: Path, emulator: Emulator, tmp_path: Path
) -> None:
    """Three configured accounts, one with a wrong key: ``load`` runs once per account, the
    two good ones land in one dataset with their own rows, the broken one loads nothing."""
    with make_emulator(seed=12) as other:
        env = airflow_env(tmp_path)
        project = tmp_path / "project"
        write_accounts(
            project,
            {
                "cn": (emulator.endpoint, SECRET_ACCESS_KEY),
                "byteplus": (other.endpoint, SECRET_ACCESS_KEY),
                "broken": (emulator.endpoint, "not-the-secret"),
            },
        )
        database = tmp_path / "accounts.duckdb"
        env.update(
            DLT_PROJECT_DIR=str(project),  # the DAG keeps it: the accounts are read there
            DESTINATION_TYPE="duckdb",
            DESTINATION__DUCKDB__CREDENTIALS=str(database),
        )
        airflow = airflow_python.with_name("airflow")
        for command in (["db", "migrate"], ["dags", "test", "volcengine_live"]):
            done = subprocess.run(
                [str(airflow), *command],
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert "not-the-secret" not in done.stdout + done.stderr

        with duckdb.connect(str(database), read_only=True) as con:
            rows = con.execute(
                "SELECT account, task_id, status FROM volcengine_live_dataset.pull_record_tasks"
            ).fetchall()
        loaded = {(account, task_id): status for account, task_id, status in rows}
        expected = {("cn", t): s for t, s in current_statuses(emulator).items()}
        expected |= {("byteplus", t): s for t, s in current_statuses(other).items()}
        assert len(rows) == len(loaded) == len(expected)
        assert loaded == expected  # and nothing of "broken"
