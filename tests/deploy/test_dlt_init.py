"""The source as `dlt init` hands it out: the real `dlt` command copies ``sources/`` of this
checkout into an empty folder, the script it wrote loads the emulator's tasks into DuckDB
with the copied ``volcengine_live/`` folder, and `dlt deploy` writes a GitHub Actions
workflow for that script.

What dlt reads is what is on disk: ``sources/`` is copied into a new git repository and
committed there, so uncommitted changes are tested too and any clone works (dlt takes a
local path as it is; it wants a git repository for its file index)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest
import tomlkit
import yaml

from volcengine_live_emulator import Emulator

from helpers import ACCESS_KEY_ID, SECRET_ACCESS_KEY, make_emulator, third_party_imports

ROOT = Path(__file__).resolve().parents[2]
DLT = Path(sys.executable).with_name("dlt")  # the test venv's own dlt command
DATASET = "volcengine_live_dataset"
SCRIPT = "volcengine_live_pipeline.py"
SOURCE_FOLDER = ROOT / "sources" / "volcengine_live"
# What the copied folder may import besides the standard library: requirements.txt beside it
# (dlt[parquet] brings pyarrow, requests brings urllib3).
ALLOWED_IMPORTS = {"dlt", "pyarrow", "numpy", "requests", "urllib3"}
SCHEDULE = "*/30 * * * *"
ORIGIN = "https://github.com/example/volcengine-live-demo.git"
SECRET_VARIABLE = "SOURCES__VOLCENGINE_LIVE__CREDENTIALS__SECRET_ACCESS_KEY"
KEY_ID_VARIABLE = "SOURCES__VOLCENGINE_LIVE__CREDENTIALS__ACCESS_KEY_ID"
# a commit needs an author; a developer's signing setup stays out
GIT_IDENTITY = ("-c", "user.name=test", "-c", "user.email=test@example.com",
                "-c", "commit.gpgsign=false")  # fmt: skip
# The shape of github-action/run_pipeline_workflow.yml in dlt-hub/dlt-deploy-template, which
# `dlt deploy` clones from GitHub by default: dlt drops the `push` trigger, sets the schedule
# and the environment, and replaces the last step's `python pipeline.py`. The suite runs
# offline, so `--location` points dlt at this copy.
DEPLOY_TEMPLATE = """\
name: Run pipeline
"on":
  push:
  schedule:
    - cron: '*/5 * * * *'
  workflow_dispatch:
env:
jobs:
  run_pipeline:
    runs-on: ubuntu-latest
    steps:
      - name: Check out
        uses: actions/checkout@v4
      - name: Setup Python
        uses: actions/setup-python@v5
        with:
          python-version: "3.12"
      - run: pip install -r requirements_github_action.txt
      - name: Run pipeline script
        run: python pipeline.py
"""


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    with make_emulator(tasks=300) as emu:
        yield emu


def environment(tmp_path: Path) -> dict[str, str]:
    """A user's shell: none of this suite's or the developer's dlt and Volcengine settings,
    no PYTHONPATH (the copied folder must be what the script imports), dlt's folders in
    ``tmp_path`` (``HOME`` too: dlt reads a global ``~/.dlt/secrets.toml``)."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("SOURCES__", "VOLC", "DESTINATION__", "DLT_", "PYTHON"))
    }
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update(
        HOME=str(home),
        DLT_DATA_DIR=str(tmp_path / "dlt-data"),
        RUNTIME__DLTHUB_TELEMETRY="false",
    )
    return env


def run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, (command, result.stdout[-3000:], result.stderr[-3000:])
    return result


def git(*arguments: str, cwd: Path, env: dict[str, str]) -> None:
    run(["git", *GIT_IDENTITY, *arguments], cwd, env)


def verified_sources_repository(tmp_path: Path, env: dict[str, str]) -> Path:
    """This checkout's ``sources/`` as it is on disk, committed in a repository of its own."""
    repository = tmp_path / "verified-sources"
    shutil.copytree(
        ROOT / "sources",
        repository / "sources",
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache"),
    )
    git("init", "--quiet", cwd=repository, env=env)
    git("add", "--all", cwd=repository, env=env)
    git("commit", "--quiet", "--message", "sources as on disk", cwd=repository, env=env)
    return repository


def init_project(tmp_path: Path, env: dict[str, str]) -> Path:
    """An empty folder after `dlt init volcengine_live duckdb` from this checkout."""
    repository = verified_sources_repository(tmp_path, env)
    project = tmp_path / "project"
    project.mkdir()
    init = [str(DLT), "--non-interactive", "init", "volcengine_live", "duckdb"]
    run([*init, "--location", str(repository)], project, env)
    return project


def fill_settings(project: Path, endpoint: str) -> None:
    """What a user does after `dlt init`: the keys replace the placeholders in
    ``secrets.toml``; the endpoint (the emulator's) goes into ``config.toml``."""
    secrets_file = project / ".dlt" / "secrets.toml"
    secrets = tomlkit.parse(secrets_file.read_text())
    credentials: Any = secrets["sources"]["volcengine_live"]["credentials"]
    credentials["access_key_id"] = ACCESS_KEY_ID
    credentials["secret_access_key"] = SECRET_ACCESS_KEY
    secrets_file.write_text(tomlkit.dumps(secrets))
    config_file = project / ".dlt" / "config.toml"
    config = tomlkit.parse(config_file.read_text())
    config.setdefault("sources", tomlkit.table())
    config["sources"]["volcengine_live"] = {"endpoint": endpoint}
    config_file.write_text(tomlkit.dumps(config))


def test_dlt_init_copies_the_source_and_its_script_loads_the_emulator_into_duckdb(
    emulator: Emulator, tmp_path: Path
) -> None:
    env = environment(tmp_path)
    project = init_project(tmp_path, env)

    assert (project / SCRIPT).is_file()
    assert (project / "volcengine_live" / "__init__.py").is_file()
    secrets = tomlkit.parse((project / ".dlt" / "secrets.toml").read_text())
    placeholders = secrets["sources"]["volcengine_live"]["credentials"]
    assert {"access_key_id", "secret_access_key"} <= set(placeholders)
    requirements = (project / "requirements.txt").read_text()
    assert "numpy" in requirements and "requests" in requirements

    fill_settings(project, emulator.endpoint)
    # The script as __main__, then the file its `volcengine_live` came from, in one process:
    # the load must have used the copied folder, not this checkout's installed package.
    load_and_tell = (
        f"import runpy, sys; runpy.run_path({SCRIPT!r}, run_name='__main__'); "
        "print(sys.modules['volcengine_live'].__file__)"
    )
    loaded = run([sys.executable, "-c", load_and_tell], project, env)
    source_file = Path(loaded.stdout.strip().splitlines()[-1])
    assert source_file == project / "volcengine_live" / "__init__.py"

    listed = {task["TaskId"]: task["Status"] for task in emulator.store.all_tasks()}
    with duckdb.connect(str(project / "volcengine_live.duckdb"), read_only=True) as con:
        rows = con.execute(f"SELECT task_id, status FROM {DATASET}.pull_record_tasks").fetchall()
    assert len(rows) == len(listed)
    assert dict(rows) == listed

    # `dlt deploy` wants the script in a git repository with a GitHub origin, and a pipeline
    # that has run: it reads the pipeline's name from the script and the settings it used
    # from its last trace.
    git("init", "--quiet", cwd=project, env=env)
    git("remote", "add", "origin", ORIGIN, cwd=project, env=env)
    git("add", "--all", cwd=project, env=env)
    git("commit", "--quiet", "--message", "dlt init volcengine_live duckdb", cwd=project, env=env)
    template = tmp_path / "deploy-template" / "github-action"
    template.mkdir(parents=True)
    (template / "run_pipeline_workflow.yml").write_text(DEPLOY_TEMPLATE)
    (template / "requirements_blacklist.txt").write_text("pip\n")
    deploy = [str(DLT), "--non-interactive", "deploy", SCRIPT, "github-action"]
    deploy += ["--schedule", SCHEDULE, "--location", str(template.parent)]
    run(deploy, project, env)

    workflow_file = project / ".github" / "workflows" / "run_volcengine_live_workflow.yml"
    text = workflow_file.read_text()
    workflow = yaml.safe_load(text)
    assert workflow["on"]["schedule"] == [{"cron": SCHEDULE}]
    assert SCRIPT in workflow["jobs"]["run_pipeline"]["steps"][-1]["run"]
    assert workflow["env"][SECRET_VARIABLE] == "${{ secrets." + SECRET_VARIABLE + " }}"
    assert KEY_ID_VARIABLE in workflow["env"]
    assert SECRET_ACCESS_KEY not in text
    assert (project / "requirements_github_action.txt").is_file()


def test_the_written_script_loads_every_configured_account_into_one_dataset(
    tmp_path: Path,
) -> None:
    env = environment(tmp_path)
    project = init_project(tmp_path, env)
    keys = {"cn": ("AKLTinitCn0001", "cn-secret-init"), "intl": ("AKLTinitIntl02", "intl-secret")}
    database = project / "accounts.duckdb"
    with (
        Emulator(tasks=120, seed=31, access_key_id=keys["cn"][0],
                 secret_access_key=keys["cn"][1], rate_limit=None) as cn,
        Emulator(tasks=80, seed=32, access_key_id=keys["intl"][0],
                 secret_access_key=keys["intl"][1], rate_limit=None) as intl,
    ):  # fmt: skip
        emulators = {"cn": cn, "intl": intl}
        for name, emulator in emulators.items():
            prefix = f"SOURCES__VOLCENGINE_LIVE__ACCOUNTS__{name.upper()}__"
            env[prefix + "ENDPOINT"] = emulator.endpoint
            env[prefix + "CREDENTIALS__ACCESS_KEY_ID"] = keys[name][0]
            env[prefix + "CREDENTIALS__SECRET_ACCESS_KEY"] = keys[name][1]
        # one file for every account's pipeline, as the function's docstring says
        env["DESTINATION__DUCKDB__CREDENTIALS"] = str(database)
        load = "import volcengine_live_pipeline as example; example.load_every_account()"
        run([sys.executable, "-c", load], project, env)

        with duckdb.connect(str(database), read_only=True) as con:
            rows = con.execute(
                f"SELECT account, task_id FROM {DATASET}.pull_record_tasks"
            ).fetchall()
        for name, emulator in emulators.items():
            loaded = [task_id for account, task_id in rows if account == name]
            assert sorted(loaded) == sorted(task["TaskId"] for task in emulator.store.all_tasks())
        assert {account for account, _ in rows} == set(emulators)


def test_the_folder_dlt_init_copies_imports_only_its_requirements_and_the_standard_library() -> (
    None
):
    """Every import, the lazy ones in functions too, which a single load does not reach."""
    imported = third_party_imports(SOURCE_FOLDER)
    outside = set(imported) - ALLOWED_IMPORTS
    assert not outside, {name: imported[name] for name in outside}
