"""Many accounts into one dataset: two emulators on loopback (different keys, one in another
region, as a BytePlus account beside a Volcengine one), loaded by ``volcengine-live
--all-accounts`` at once over real HTTP into one real DuckDB file."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

import duckdb
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed

from volcengine_live import (
    ConfigurationError,
    account_source,
    configured_accounts,
    volcengine_live_source,
)
from volcengine_live_cli.command import main
from volcengine_live_emulator import Emulator

from helpers import DATASET, Loader, credentials, now

KEYS = {
    "cn": ("AKLTaccountCn0001", "cn-secret-1a2b3c"),
    "bp": ("AKAPaccountBp0002", "bp-secret-4d5e6f"),
}
REGIONS = {"cn": "cn-north-1", "bp": "ap-southeast-1"}
TASKS = {"cn": 900, "bp": 700}
SCRIPT = Path(sys.executable).with_name("volcengine-live")
TABLE = f"{DATASET}.pull_record_tasks"


@pytest.fixture
def emulators() -> Iterator[dict[str, Emulator]]:
    """Both accounts, each at the API's 50 requests/s for its own key, a little latency so
    that reading the list takes a while."""
    with (
        Emulator(tasks=TASKS["cn"], seed=21, access_key_id=KEYS["cn"][0],
                 secret_access_key=KEYS["cn"][1], region=REGIONS["cn"], latency=0.01) as cn,
        Emulator(tasks=TASKS["bp"], seed=22, access_key_id=KEYS["bp"][0],
                 secret_access_key=KEYS["bp"][1], region=REGIONS["bp"], latency=0.01) as bp,
    ):  # fmt: skip
        yield {"cn": cn, "bp": bp}


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLT_PROJECT_DIR", str(tmp_path))
    for name in list(os.environ):
        if name.startswith(("SOURCES__", "VOLC_", "DESTINATION__")):
            monkeypatch.delenv(name)
    return tmp_path


def account_env(
    emulators: dict[str, Emulator], secrets: dict[str, str] | None = None
) -> dict[str, str]:
    """``SOURCES__VOLCENGINE_LIVE__ACCOUNTS__<NAME>__...`` for each account, the dlt way."""
    env = {"SOURCES__VOLCENGINE_LIVE__PAGE_SIZE": "40"}  # shared by both: ~20 pages each
    for name, emulator in emulators.items():
        prefix = f"SOURCES__VOLCENGINE_LIVE__ACCOUNTS__{name.upper()}__"
        env[prefix + "ENDPOINT"] = emulator.endpoint
        env[prefix + "REGION"] = REGIONS[name]
        env[prefix + "CREDENTIALS__ACCESS_KEY_ID"] = KEYS[name][0]
        env[prefix + "CREDENTIALS__SECRET_ACCESS_KEY"] = (secrets or {}).get(name, KEYS[name][1])
    return env


class Run(NamedTuple):
    code: int
    out: str
    err: str


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    code = main([*args, "--pipelines-dir", str(Path.cwd() / "pipelines"), "--progress", "none"])
    captured = capsys.readouterr()
    for _, secret in KEYS.values():
        assert secret not in captured.out + captured.err
    return Run(code, captured.out, captured.err)


def loaded(database: Path) -> dict[tuple[str, str], str]:
    with duckdb.connect(str(database), read_only=True) as con:
        rows = con.execute(f"SELECT account, task_id, status FROM {TABLE}").fetchall()
    found = {(account, task_id): status for account, task_id, status in rows}
    assert len(found) == len(rows), "two rows for one (account, task_id)"
    return found


def expected(emulators: dict[str, Emulator]) -> dict[tuple[str, str], str]:
    return {
        (name, task["TaskId"]): task["Status"]
        for name, emulator in emulators.items()
        for task in emulator.store.all_tasks()
    }


def change(emulator: Emulator) -> None:
    """An open task settles and a new one arrives."""
    recording = next(t for t in emulator.store.all_tasks() if t["Status"] == "生效中")
    emulator.store.set_status(recording["TaskId"], "已结束")
    start = now() - timedelta(hours=2)
    emulator.store.create_task(StartTime=start, EndTime=start + timedelta(hours=1))


class Overlap:
    """Watches the emulators' request counters: when each one was first and last busy."""

    def __init__(self, emulators: dict[str, Emulator]) -> None:
        self.emulators = emulators
        self.busy: dict[str, list[float]] = {name: [] for name in emulators}
        self._stop = threading.Event()
        self._seen = {name: e.stats.requests for name, e in emulators.items()}
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            for name, emulator in self.emulators.items():
                requests = emulator.stats.requests
                if requests != self._seen[name]:
                    self._seen[name] = requests
                    self.busy[name].append(time.monotonic())

    def __enter__(self) -> Overlap:
        self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join()

    def overlapped(self) -> bool:
        first = max(times[0] for times in self.busy.values())
        last = min(times[-1] for times in self.busy.values())
        return first < last


def test_two_accounts_load_at_once_into_one_dataset_and_the_next_run_is_incremental(
    emulators: dict[str, Emulator], monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path
) -> None:
    for name, value in account_env(emulators).items():
        monkeypatch.setenv(name, value)
    assert configured_accounts() == ["bp", "cn"]
    database = tmp_path / "volcengine_live.duckdb"

    with Overlap(emulators) as watch:
        first = cli(capsys, "--all-accounts")
    assert first.code == 0, first.err
    assert watch.overlapped(), "the two accounts were read one after the other"
    assert "Accounts: 2 loaded (bp, cn)" in first.out
    assert (
        f"[cn] Tasks: {TASKS['cn']} new, 0 updated; {TASKS['cn']} in the table for account cn"
        in first.out
    )
    assert (
        f"[bp] Tasks: {TASKS['bp']} new, 0 updated; {TASKS['bp']} in the table for account bp"
        in first.out
    )
    assert loaded(database) == expected(emulators)
    for emulator in emulators.values():
        assert emulator.stats.throttled == 0  # each account under its own 50/s
    with duckdb.connect(str(database), read_only=True) as con:
        [first_seen] = con.execute(f"SELECT max(seen_at) FROM {TABLE}").fetchone() or [None]
        pipelines = con.execute(
            f"SELECT DISTINCT pipeline_name FROM {DATASET}._dlt_pipeline_state ORDER BY 1"
        ).fetchall()
    assert pipelines == [("volcengine_live_bp",), ("volcengine_live_cn",)]

    for emulator in emulators.values():
        change(emulator)
    second = cli(capsys, "--all-accounts")
    assert second.code == 0, second.err
    assert loaded(database) == expected(emulators)
    with duckdb.connect(str(database), read_only=True) as con:
        rewritten = dict(
            con.execute(
                f"SELECT account, count(*) FROM {TABLE} WHERE seen_at > ? GROUP BY 1", [first_seen]
            ).fetchall()
        )
    for name in emulators:  # each account's own state: only its recent tasks again
        assert 0 < rewritten[name] < TASKS[name] / 2

    one = cli(capsys, "--account", "bp")  # one account alone, same pipeline and state
    assert one.code == 0, one.err
    assert "Accounts: 1 loaded (bp)" in one.out and "[cn]" not in one.out
    assert loaded(database) == expected(emulators)


def test_one_account_failing_leaves_the_other_loaded_and_the_exit_code_says_which(
    emulators: dict[str, Emulator], tmp_path: Path
) -> None:
    """A real ``volcengine-live`` process, accounts in ``.dlt/secrets.toml``: ``bp`` has a
    wrong secret, ``cn`` meets transient faults it retries through."""
    sections = []
    for name, emulator in emulators.items():
        secret = "not-the-secret" if name == "bp" else KEYS[name][1]
        sections.append(
            f'[sources.volcengine_live.accounts.{name}]\nendpoint = "{emulator.endpoint}"\n'
            f'region = "{REGIONS[name]}"\nbackoff_seconds = 0.05\n'
            f"[sources.volcengine_live.accounts.{name}.credentials]\n"
            f'access_key_id = "{KEYS[name][0]}"\nsecret_access_key = "{secret}"\n'
        )
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "secrets.toml").write_text("\n".join(sections))
    emulators["cn"].faults.add("internal_error", times=3)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "VOLC_"))}
    done = subprocess.run(
        [str(SCRIPT), "--all-accounts", "--progress", "none", "--pipelines-dir", "pipelines"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert "not-the-secret" not in output and KEYS["cn"][1] not in output
    assert done.returncode == 3, output  # the API refused bp's request
    assert "Accounts: 1 loaded (cn); 1 failed (bp: exit code 3)" in done.stdout
    assert "volcengine-live [bp]: The API refused the request" in done.stderr
    assert "SignatureDoesNotMatch" in done.stderr
    assert loaded(tmp_path / "volcengine_live.duckdb") == {
        key: status for key, status in expected(emulators).items() if key[0] == "cn"
    }
    assert emulators["cn"].faults.fired  # cn did meet the faults


def test_bad_account_configuration_names_the_setting(
    emulators: dict[str, Emulator], monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    for name, value in account_env(emulators).items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError, match="account 'nope' is not configured"):
        account_source("nope")
    assert cli(capsys, "--account", "nope").code == 2

    monkeypatch.setenv("SOURCES__VOLCENGINE_LIVE__ACCOUNTS__BP__PAGE_SIZE", "9000")
    with pytest.raises(ConfigurationError, match=r"page_size 9000 is out of range.*accounts\.bp"):
        account_source("bp")
    assert account_source("bp", page_size=50) is not None  # what the call passes wins

    monkeypatch.delenv("SOURCES__VOLCENGINE_LIVE__ACCOUNTS__BP__CREDENTIALS__SECRET_ACCESS_KEY")
    # the shared credentials are never an account's: another account's tasks under its name
    monkeypatch.setenv("SOURCES__VOLCENGINE_LIVE__CREDENTIALS__ACCESS_KEY_ID", KEYS["cn"][0])
    monkeypatch.setenv("SOURCES__VOLCENGINE_LIVE__CREDENTIALS__SECRET_ACCESS_KEY", KEYS["cn"][1])
    with pytest.raises(ConfigurationError, match=r"accounts\.bp\.credentials"):
        account_source("bp")
    with pytest.raises(ConfigurationError, match=r"build it with account_source\('bp'\)"):
        volcengine_live_source(account="bp")  # signed with the shared keys (cn's), labelled bp
    run = cli(capsys, "--all-accounts")
    assert run.code == 2 and "SOURCES__VOLCENGINE_LIVE__ACCOUNTS__BP__CREDENTIALS" in run.err
    assert "Accounts: 1 loaded (cn); 1 failed (bp: exit code 2)" in run.out

    monkeypatch.setenv("SOURCES__VOLCENGINE_LIVE__ACCOUNTS__CN_EAST-2__ENDPOINT", "x")
    with pytest.raises(ConfigurationError, match="account 'cn_east-2' is not a valid account name"):
        configured_accounts()
    with pytest.raises(ConfigurationError, match="'default' is reserved"):
        account_source("default")


def test_without_accounts_nothing_changes_and_a_state_serves_one_account(
    loader: Loader,
) -> None:
    assert configured_accounts() == []
    loader.run()
    with duckdb.connect(str(loader.duckdb_path), read_only=True) as con:
        columns = [c[0] for c in con.execute(f"DESCRIBE {TABLE}").fetchall()]
    assert "account" not in columns and columns[0] == "task_id"
    schema = loader.pipeline().default_schema.tables["pull_record_tasks"]
    assert [c for c, h in schema["columns"].items() if h.get("primary_key")] == ["task_id"]
    assert "account" not in loader.state()
    # the same pipeline with a label would mix an unlabelled state with a labelled table
    pipeline = loader.pipeline()
    source = volcengine_live_source(
        credentials=credentials(), endpoint=loader.emulator.endpoint, account="cn"
    )
    with pytest.raises(PipelineStepFailed, match="belongs to the single account without a label"):
        pipeline.run(source)


def test_a_labelled_single_account_keys_on_account_and_task_id(loader: Loader) -> None:
    """``account`` alone, no accounts sections: the settings stay where they were."""
    loader.run(account="solo")
    with duckdb.connect(str(loader.duckdb_path), read_only=True) as con:
        rows = con.execute(f"SELECT DISTINCT account FROM {TABLE}").fetchall()
    assert rows == [("solo",)]
    schema = loader.pipeline().default_schema.tables["pull_record_tasks"]
    assert [c for c, h in schema["columns"].items() if h.get("primary_key")] == [
        "account",
        "task_id",
    ]
    assert loader.state()["account"] == "solo"


def test_accounts_are_not_merged_into_a_table_loaded_without_them(
    emulators: dict[str, Emulator], monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path
) -> None:
    """The two keys would overwrite each other's rows: either way round is refused."""
    cn = emulators["cn"]
    monkeypatch.setenv("SOURCES__VOLCENGINE_LIVE__ENDPOINT", cn.endpoint)
    monkeypatch.setenv("SOURCES__VOLCENGINE_LIVE__CREDENTIALS__ACCESS_KEY_ID", KEYS["cn"][0])
    monkeypatch.setenv("SOURCES__VOLCENGINE_LIVE__CREDENTIALS__SECRET_ACCESS_KEY", KEYS["cn"][1])
    assert cli(capsys).code == 0  # one account, no label, as before
    for name, value in account_env(emulators).items():
        monkeypatch.setenv(name, value)
    run = cli(capsys, "--account", "bp")
    assert run.code == 2 and "was loaded without accounts" in run.err
    assert "[bp]" in run.err and "Accounts: 0 loaded (none); 1 failed (bp: exit code 2)" in run.out

    assert cli(capsys, "--account", "bp", "--dataset-name", "accounts").code == 0
    run = cli(capsys, "--dataset-name", "accounts")  # and the other way round
    assert run.code == 2 and "holds several accounts" in run.err


def test_a_task_removed_from_one_account_is_flagged_there_only(
    emulators: dict[str, Emulator], monkeypatch: pytest.MonkeyPatch, capsys: Any, tmp_path: Path
) -> None:
    """The deletion finder reads back its own account's rows: the other account's tasks, in
    the same table and absent from this account's list, are not this account's to flag."""
    for name, value in account_env(emulators).items():
        monkeypatch.setenv(name, value)
    database = tmp_path / "volcengine_live.duckdb"
    assert cli(capsys, "--all-accounts").code == 0
    recent = max(emulators["cn"].store.all_tasks(), key=lambda task: task["StartTime"])
    emulators["cn"].store.remove_tasks([recent["TaskId"]])
    second = cli(capsys, "--all-accounts")
    assert second.code == 0, second.err
    with duckdb.connect(str(database), read_only=True) as con:
        flagged = con.execute(
            f"SELECT account, task_id FROM {TABLE} WHERE deleted_at IS NOT NULL"
        ).fetchall()
        live = con.execute(f"SELECT count(*) FROM {TABLE} WHERE deleted_at IS NULL").fetchone()
    assert flagged == [("cn", recent["TaskId"])]
    assert live == (TASKS["cn"] - 1 + TASKS["bp"],)
