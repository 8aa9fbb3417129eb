"""End to end: the ``volcengine-live`` command against the emulator, over real HTTP, into real
DuckDB files. Each test runs in its own directory so a developer's ``.dlt/secrets.toml`` and
``VOLC_*`` variables play no part."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

import dlt
import duckdb
import pytest

from volcengine_live import MISSING_CREDENTIALS, volcengine_live_source
from volcengine_live_cli import report
from volcengine_live_cli.command import EXIT_LOCKED, main
from volcengine_live_cli.run import DEMO_TASKS, pipeline_lock
from volcengine_live_emulator import Emulator

ACCESS_KEY = "AKLTcliTestKey0001"
SECRET = "cli-test-secret-9f8e7d6c5b4a"  # must never appear in any output
TASKS = 1200
PIPELINE = "volcengine_live"
DATASET = "volcengine_live_dataset"
SCRIPT = Path(sys.executable).with_name("volcengine-live")


@pytest.fixture
def emu() -> Iterator[Emulator]:
    with Emulator(
        tasks=TASKS, seed=11, access_key_id=ACCESS_KEY, secret_access_key=SECRET, latency=0.0
    ) as emulator:
        yield emulator


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """cwd = tmp_path; no credentials or settings from the developer's environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLT_PROJECT_DIR", str(tmp_path))
    monkeypatch.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    for name in list(os.environ):
        if name.startswith(("SOURCES__", "VOLC_", "DESTINATION__")) or name == "RUNTIME__LOG_LEVEL":
            monkeypatch.delenv(name)
    return tmp_path


@pytest.fixture
def configured(emu: Emulator, monkeypatch: pytest.MonkeyPatch) -> Emulator:
    """The source pointed at the emulator, credentials in the environment, the dlt way."""
    monkeypatch.setenv("SOURCES__VOLCENGINE_LIVE__ENDPOINT", emu.endpoint)
    monkeypatch.setenv("SOURCES__VOLCENGINE_LIVE__CREDENTIALS__ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("SOURCES__VOLCENGINE_LIVE__CREDENTIALS__SECRET_ACCESS_KEY", SECRET)
    return emu


class Run(NamedTuple):
    code: int
    out: str
    err: str

    def written(self) -> int:
        """Rows loaded into pull_record_tasks, from the summary."""
        found = re.search(r"pull_record_tasks (\d+) rows", self.out)
        return int(found.group(1)) if found else 0


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> Run:
    """``main`` in-process with isolated state; the secret must appear nowhere."""
    if "--pipelines-dir" not in args:
        args = (*args, "--pipelines-dir", str(Path.cwd() / "pipelines"))
    code = main([*args, "--progress", "none"])
    out, err = capsys.readouterr()
    assert SECRET not in out + err
    return Run(code, out, err)


def table_ids(database: str = "volcengine_live.duckdb", dataset: str = DATASET) -> list[str]:
    with duckdb.connect(database, read_only=True) as con:
        rows = con.execute(f"SELECT task_id FROM {dataset}.pull_record_tasks").fetchall()
    return [row[0] for row in rows]


def start_of(task: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(task["StartTime"].replace("Z", "+00:00"))


def test_first_run_loads_everything_as_parquet_and_second_run_is_incremental(
    configured: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    first = cli(capsys, "--page-size", "100")
    assert first.code == 0, first.err
    expected = {task["TaskId"] for task in configured.store.all_tasks()}
    ids = table_ids()
    assert len(ids) == len(expected) == TASKS
    assert set(ids) == expected
    assert first.written() == TASKS
    assert f"Tasks: {TASKS} new, 0 updated; {TASKS} in the table" in first.out
    assert f"Read: {TASKS} rows in 1 pass(es)" in first.out
    assert f"API: {configured.stats.requests} requests, 0 retries" in first.out
    assert "Files:" not in first.out  # the file history is off unless asked for
    assert_query_line_runs(first.out, "volcengine_live.duckdb", Path.cwd())
    # Arrow in, Parquet out: dlt's choice for Arrow items, not forced, and it must hold.
    pipeline = dlt.attach(PIPELINE, pipelines_dir=str(Path.cwd() / "pipelines"))
    assert pipeline.last_trace is not None and pipeline.last_trace.last_load_info is not None
    jobs = pipeline.last_trace.last_load_info.load_packages[0].jobs["completed_jobs"]
    ours = [job for job in jobs if job.job_file_info.table_name == "pull_record_tasks"]
    data_files = {job.job_file_info.file_format for job in ours} - {"sql"}  # "sql": the merge
    assert data_files == {"parquet"}

    added = configured.store.create_task()
    second = cli(capsys, "--page-size", "100")
    assert second.code == 0, second.err
    assert 0 < second.written() < first.written()
    assert f"Tasks: 1 new, {second.written() - 1} updated; {TASKS + 1} in the table" in second.out
    assert f"Read: {TASKS + 1} rows" in second.out
    assert added["TaskId"] in table_ids()


def test_since_until_backfills_exactly_the_range(
    configured: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    tasks = list(configured.store.all_tasks())
    starts = sorted(start_of(task) for task in tasks)
    since, until = starts[len(starts) // 4], starts[len(starts) // 2]
    in_range = {task["TaskId"] for task in tasks if since <= start_of(task) < until}
    assert 0 < len(in_range) < TASKS
    run = cli(capsys, "--since", since.isoformat(), "--until", until.isoformat())
    assert run.code == 0, run.err
    ids = table_ids()
    assert set(ids) == in_range and len(ids) == len(in_range)
    assert "backfill: incremental state unchanged" in run.out

    # --until alone backfills from the beginning.
    run = cli(capsys, "--until", since.isoformat())
    assert run.code == 0, run.err
    assert set(table_ids()) == in_range | {t["TaskId"] for t in tasks if start_of(t) < since}
    # The backfills left the state alone: the first regular run still loads everything.
    run = cli(capsys)
    assert run.code == 0, run.err
    assert run.written() == TASKS and len(table_ids()) == TASKS


def test_since_alone_backfills_up_to_now(
    configured: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    now = datetime.now(timezone.utc)
    since = now - timedelta(days=3)
    expected = {
        task["TaskId"] for task in configured.store.all_tasks() if since <= start_of(task) < now
    }
    assert expected
    run = cli(capsys, "--since", since.isoformat())
    assert run.code == 0, run.err
    assert set(table_ids()) == expected


def test_full_refresh_reloads_from_scratch(
    configured: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys).code == 0
    gone = next(iter(configured.store.all_tasks()))["TaskId"]
    configured.store.delete_task(gone)
    run = cli(capsys, "--full-refresh")
    assert run.code == 0, run.err
    ids = table_ids()
    assert gone not in ids and len(ids) == TASKS - 1
    assert f"Tasks: {TASKS - 1} new, 0 updated" in run.out


def test_a_new_pipelines_dir_restores_the_state_from_the_destination(
    configured: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "--pipelines-dir", "first").code == 0
    run = cli(capsys, "--pipelines-dir", "second")  # e.g. a fresh container under cron
    assert run.code == 0, run.err
    assert 0 < run.written() < TASKS
    assert f"Tasks: 0 new, {run.written()} updated; {TASKS} in the table" in run.out


def test_a_load_left_pending_is_finished_before_reading_again(
    configured: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys).code == 0
    pipeline = dlt.pipeline(
        PIPELINE,
        destination=dlt.destinations.duckdb("volcengine_live.duckdb"),
        dataset_name=DATASET,
        pipelines_dir=str(Path.cwd() / "pipelines"),
    )
    added = configured.store.create_task()
    pipeline.extract(volcengine_live_source())  # as if the run had died before loading
    run = cli(capsys)
    assert run.code == 0, run.err
    assert "Finished 1 load(s) left by an earlier failed run" in run.out
    assert f"{TASKS + 1} in the table" in run.out
    assert added["TaskId"] in table_ids()


def assert_query_line_runs(summary: str, database: str, cwd: Path) -> None:
    """The summary's `Query:` line names the DuckDB file, and typed as printed it works."""
    line = next(line for line in summary.splitlines() if line.startswith("Query: "))
    command = shlex.split(line.removeprefix("Query: "))
    assert Path(command[0]).name == "duckdb" and command[1] == database
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "finished" in done.stdout


def test_demo_runs_as_a_console_script_without_credentials(tmp_path: Path) -> None:
    assert SCRIPT.exists()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SOURCES__", "VOLC_"))}
    result = subprocess.run(
        [str(SCRIPT), "--demo", "--pipelines-dir", str(tmp_path / "p")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Tasks: 5000 new, 0 updated; 5000 in the table" in result.stdout
    assert_query_line_runs(result.stdout, "volcengine_live_demo.duckdb", tmp_path)
    assert len(table_ids("volcengine_live_demo.duckdb")) == 5000


def test_demo_with_record_files_loads_both_tables_and_sums_up_the_files(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = cli(capsys, "--demo", "--record-files")
    assert run.code == 0, run.err
    line = re.search(
        r"^Files: (\d+) rows loaded into record_files; (\d+) window\(s\) of the file history "
        r"read, (\d+) files listed, (\d+) requests, 0 retries$",
        run.out,
        re.M,
    )
    assert line, run.out
    with duckdb.connect("volcengine_live_demo.duckdb", read_only=True) as con:
        tasks, files = (
            int(con.execute(f"SELECT count(*) FROM {DATASET}.{table}").fetchall()[0][0])
            for table in ("pull_record_tasks", "record_files")
        )
    assert tasks == DEMO_TASKS and f"record_files {files} rows" in run.out
    assert files > 0 and int(line.group(1)) == files
    assert int(line.group(2)) in (1, 2)  # a first run reads the last 168 h: one or two windows
    assert int(line.group(3)) >= files and int(line.group(4)) >= int(line.group(2))

    # The report of that file shows what was recorded, from sql/recording_coverage.sql.
    data = report.write_report("volcengine_live_demo.duckdb", "report.html")
    assert data.coverage is not None
    counts = report.coverage_counts(data.coverage)
    assert counts["tasks"] > 0 and counts["no_file"] + counts["short"] > 0
    page = Path("report.html").read_text(encoding="utf-8")
    assert report.coverage_summary(counts) in page and report.NOT_LOADED not in page


def test_missing_credentials_exit_2_naming_the_three_places(
    emu: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__VOLCENGINE_LIVE__ENDPOINT", emu.endpoint)
    run = cli(capsys)
    assert run.code == 2
    assert MISSING_CREDENTIALS in run.err
    for place in (".dlt/secrets.toml", "SOURCES__VOLCENGINE_LIVE__CREDENTIALS__", "VOLC_ACCESSKEY"):
        assert place in run.err
    assert "Traceback" not in run.err
    assert emu.stats.requests == 0


@pytest.mark.parametrize(
    ("name", "value"), [("PAGE_SIZE", "abc"), ("MAX_CONCURRENCY", "-1"), ("MAX_RESCANS", "-2")]
)
def test_a_bad_setting_exits_2_naming_it_and_where_to_fix_it(
    configured: Emulator,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: str,
) -> None:
    monkeypatch.setenv(f"SOURCES__VOLCENGINE_LIVE__{name}", value)
    run = cli(capsys)
    assert run.code == 2
    # as configured ('abc', which dlt cannot convert) or as converted (-1, out of range)
    assert f"{name.lower()} {value!r}" in run.err or f"{name.lower()} {value} " in run.err
    assert f"SOURCES__VOLCENGINE_LIVE__{name}" in run.err and "Traceback" not in run.err
    assert configured.stats.requests == 0


def test_wrong_secret_fails_fast_with_exit_3(
    configured: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__VOLCENGINE_LIVE__CREDENTIALS__SECRET_ACCESS_KEY", "wrong-secret")
    started = time.monotonic()
    run = cli(capsys)
    assert time.monotonic() - started < 15
    assert run.code == 3
    assert "SignatureDoesNotMatch" in run.err and "secret_access_key" in run.err
    assert "wrong-secret" not in run.out + run.err
    assert "Traceback" not in run.err


def test_billing_disabled_exit_3_says_to_enable_the_service(
    configured: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    configured.faults.add("billing", times=None)
    run = cli(capsys)
    assert run.code == 3
    assert "RequestForbidden.BillingStatus" in run.err and "Enable the service" in run.err
    assert "Traceback" not in run.err


def test_persistent_500s_exit_4_and_the_next_run_loads_everything(
    configured: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCES__VOLCENGINE_LIVE__MAX_ATTEMPTS", "3")
    monkeypatch.setenv("SOURCES__VOLCENGINE_LIVE__BACKOFF_SECONDS", "0.01")
    configured.faults.add("internal_error", times=None)
    run = cli(capsys)
    assert run.code == 4
    assert "failed 3 times" in run.err and "InternalError" in run.err and "max_attempts" in run.err
    assert "Traceback" not in run.err
    configured.faults.clear()
    run = cli(capsys)
    assert run.code == 0, run.err
    assert f"Tasks: {TASKS} new" in run.out


def test_destination_failure_exit_5(
    configured: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "volcengine_live.duckdb").mkdir()  # DuckDB cannot open a directory
    run = cli(capsys)
    assert run.code == 5
    assert "The destination failed" in run.err and "Traceback" not in run.err


def test_debug_prints_the_traceback_but_never_the_secret(
    configured: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "--log-level", "debug").code == 0  # cli() asserts the secret is absent
    configured.faults.add("access_denied", times=None)
    run = cli(capsys, "--log-level", "debug")
    assert run.code == 3
    assert "Traceback" in run.err and "live:ListPullRecordTask" in run.err


def test_bad_arguments_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "--since", "yesterday").code == 2
    assert cli(capsys, "--since", "2024-02-01", "--until", "2024-01-01").code == 2
    assert cli(capsys, "--page-size", "501").code == 2


def test_a_second_concurrent_run_exits_with_the_lock_code(
    configured: Emulator, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pipelines = str(tmp_path / "pipelines")
    with pipeline_lock(pipelines, PIPELINE, wait=0):
        result = subprocess.run(
            [sys.executable, "-m", "volcengine_live_cli", "--pipelines-dir", pipelines],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == EXIT_LOCKED == 75
    assert "in progress" in result.stderr and "Traceback" not in result.stderr
    assert SECRET not in result.stdout + result.stderr
    assert not (tmp_path / "volcengine_live.duckdb").exists()

    # --wait-for-lock waits for the holder to let go, then runs.
    holder = contextlib.ExitStack()
    holder.enter_context(pipeline_lock(pipelines, PIPELINE, wait=0))
    threading.Timer(1.0, holder.close).start()
    started = time.monotonic()
    run = cli(capsys, "--wait-for-lock", "30")
    assert run.code == 0, run.err
    assert time.monotonic() - started >= 0.9


def test_a_deleted_duckdb_file_is_loaded_in_full_again(
    configured: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys).code == 0
    Path("volcengine_live.duckdb").unlink()
    again = cli(capsys)
    assert again.code == 0, again.err
    # The local state alone would have written only the recent and open tasks.
    assert len(table_ids()) == TASKS
    assert f"Tasks: {TASKS} new, 0 updated" in again.out


def test_the_duckdb_file_is_written_where_the_command_runs(
    configured: Emulator, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    first_dir, second_dir = tmp_path / "one", tmp_path / "two"
    first_dir.mkdir()
    second_dir.mkdir()
    os.chdir(first_dir)
    assert cli(capsys, "--pipelines-dir", str(tmp_path / "pipelines")).code == 0
    os.chdir(second_dir)
    assert cli(capsys, "--pipelines-dir", str(tmp_path / "pipelines")).code == 0
    assert len(table_ids(str(second_dir / "volcengine_live.duckdb"))) == TASKS


def test_the_filesystem_destination_as_delta_tables(
    configured: Emulator,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    deltalake = pytest.importorskip("deltalake")
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", (tmp_path / "lake").as_uri())
    for _ in range(2):  # the second run merges into the Delta table
        run = cli(capsys, "--destination", "filesystem", "--table-format", "delta")
        assert run.code == 0, run.err
    table = deltalake.DeltaTable(str(tmp_path / "lake" / DATASET / "pull_record_tasks"))
    ids = table.to_pyarrow_table(columns=["task_id"]).column("task_id").to_pylist()
    assert sorted(ids) == sorted(task["TaskId"] for task in configured.store.all_tasks())


# ------------------------------------------------- errors that must name what to fix (issue 23)


def run_script(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``volcengine-live`` in its own process, in ``cwd``."""
    return subprocess.run(
        [str(SCRIPT), *args, "--pipelines-dir", str(cwd / "pipelines"), "--progress", "none"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_broken_config_toml_exits_2_naming_the_file_and_the_line(tmp_path: Path) -> None:
    (tmp_path / ".dlt").mkdir()
    (tmp_path / ".dlt" / "config.toml").write_text("[sources.volcengine_live\npage_size = 3\n")
    result = run_script(tmp_path, "--demo")
    assert result.returncode == 2, result.stderr
    assert ".dlt/config.toml is not valid TOML" in result.stderr
    assert "line 1" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "volcengine_live_demo.duckdb").exists()


def test_a_malformed_duckdb_global_config_exits_2_naming_the_variable(
    configured: Emulator, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG", "{bad")
    run = cli(capsys)
    assert run.code == 2
    assert "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG" in run.err
    assert "[destination.duckdb.credentials]" in run.err and "not valid JSON" in run.err
    assert configured.stats.requests == 0


def test_an_unknown_destination_exits_2_naming_the_option(
    configured: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    run = cli(capsys, "--destination", "bogus")
    assert run.code == 2
    assert "--destination 'bogus' is not a dlt destination" in run.err
    assert "[destination.bogus]" in run.err and "Traceback" not in run.err
    assert configured.stats.requests == 0


@pytest.mark.parametrize("name", ["../../escaped", "a/b", "o'brien", ".hidden", "-x"])
def test_a_pipeline_name_that_is_not_a_plain_name_exits_2_and_writes_nothing(
    configured: Emulator, capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    pipelines = tmp_path / "deep" / "pipelines"
    run = cli(capsys, f"--pipeline-name={name}", "--pipelines-dir", str(pipelines))
    assert run.code == 2
    assert "--pipeline-name" in run.err and "not a plain name" in run.err
    assert not pipelines.exists()
    assert not list(tmp_path.rglob("*.lock")) and not list(tmp_path.rglob("*.duckdb"))


@pytest.mark.parametrize(
    "damaged", ["state.json", "schemas/volcengine_live.schema.json"], ids=["state", "schema"]
)
def test_a_garbled_file_in_the_pipeline_folder_exits_5_naming_the_folder_to_remove(
    configured: Emulator, capsys: pytest.CaptureFixture[str], tmp_path: Path, damaged: str
) -> None:
    assert cli(capsys).code == 0
    folder = tmp_path / "pipelines" / PIPELINE
    (folder / damaged).write_text('{"_state_version": 3, "pipeline_na')  # a write cut short
    for _ in range(2):  # every run, until the folder goes
        run = cli(capsys)
        assert run.code == 5
        assert f"working folder {folder} is damaged" in run.err
        assert f"rm -r '{folder}'" in run.err and "Traceback" not in run.err
    shutil.rmtree(folder)
    again = cli(capsys)
    assert again.code == 0, again.err
    assert "Tasks: 0 new," in again.out and f"; {TASKS} in the table" in again.out
    assert again.written() < TASKS  # incremental: the state came back from the destination


def test_ctrl_c_while_a_page_is_read_exits_130(configured: Emulator, tmp_path: Path) -> None:
    """SIGINT to a real process blocked on a page request: the emulator holds the request
    until the test has sent the signal, so nothing depends on how fast either side is."""
    asked, answer = threading.Event(), threading.Event()

    def hold(page_num: int) -> None:
        asked.set()
        answer.wait(120)

    configured.on_request(hold)
    child = subprocess.Popen(
        [str(SCRIPT), "--pipelines-dir", str(tmp_path / "pipelines"), "--progress", "none"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert asked.wait(120), "the command never asked for a page"
        child.send_signal(signal.SIGINT)
    finally:
        answer.set()  # the blocked request may finish; the interrupt is already on its way
    out, err = child.communicate(timeout=120)
    assert child.returncode == 130, err
    assert "volcengine-live: interrupted" in err and "exit code 130" in err
    assert "Traceback" not in err and "Loaded:" not in out
