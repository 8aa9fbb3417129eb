"""``volcengine-live report``: exact numbers on a hand-built DuckDB file, empty and tiny
datasets, files without the tables, the subcommand end to end after a real pipeline run, and
the page rendered in headless Chromium the way a person sees it.

The hand-built dataset (Asia/Shanghai times, seen as of 2024-03-10 12:00 +08:00):

    id  status      domain/app/stream         start        end          recorded hours
    r1  已结束      a.example.com/live/s1     03-09 10:00  03-09 12:00  2
    r2  已结束      a.example.com/live/s2     03-09 11:00  03-09 14:00  3
    r3  停用        b.example.com/show/s3     03-09 11:30  03-09 12:30  1
    r4  生效中      b.example.com/show/s4     03-10 11:00  03-10 13:00  1 (to now)
    r5  未开始      a.example.com/live/s5     03-10 20:00  03-10 22:00  - scheduled
    r6  未开始      a.example.com/live/s6     03-10 21:00  03-10 22:00  - deleted 03-10 10:30

Peak 3 at once, first 03-09 11:30 until 12:00; 1 recording now; 7 hours in all (a 5, b 2).
r6 left the API's list: counted among the tasks, not among the scheduled ones.
The one successful load finished at 03-10 11:00, an hour before "now".
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from volcengine_live_cli import report
from volcengine_live_cli.command import main as cli_main
from volcengine_live_emulator import Emulator

DATASET = "volcengine_live_dataset"
SH = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
AS_OF = dt.datetime(2024, 3, 10, 12, 0, tzinfo=SH)
CHARTS = 4  # concurrency envelope, weekday-by-hour heatmap, tasks started, recorded hours


def sh(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2024, 3, day, hour, minute, tzinfo=SH)


CODES = {"已结束": "finished", "停用": "stopped", "生效中": "recording", "未开始": "not_started"}
TASKS = [
    ("r1", "已结束", "a.example.com", "live", "s1", sh(9, 10), sh(9, 12)),
    ("r2", "已结束", "a.example.com", "live", "s2", sh(9, 11), sh(9, 14)),
    ("r3", "停用", "b.example.com", "show", "s3", sh(9, 11, 30), sh(9, 12, 30)),
    ("r4", "生效中", "b.example.com", "show", "s4", sh(10, 11), sh(10, 13)),
    ("r5", "未开始", "a.example.com", "live", "s5", sh(10, 20), sh(10, 22)),
    ("r6", "未开始", "a.example.com", "live", "s6", sh(10, 21), sh(10, 22)),
]
DELETED = {"r6": sh(10, 10, 30)}
"""deleted_at of the tasks that left the API's list."""


def build(path: Path, tasks: list[tuple[Any, ...]] = TASKS, *, loads: bool = True) -> Path:
    """A DuckDB file shaped as the pipeline writes it (the columns the SQL reads, dlt's
    _dlt_loads), filled by hand."""
    with duckdb.connect(str(path)) as con:
        con.execute(f"CREATE SCHEMA {DATASET}")
        con.execute(f"SET schema = '{DATASET}'")
        con.execute(
            "CREATE TABLE pull_record_tasks (task_id VARCHAR NOT NULL, start_time TIMESTAMPTZ, "
            "end_time TIMESTAMPTZ, vhost VARCHAR, domain VARCHAR, app VARCHAR, stream VARCHAR, "
            "status VARCHAR, status_code VARCHAR, data_issues VARCHAR, seen_at TIMESTAMPTZ, "
            "deleted_at TIMESTAMPTZ)"
        )
        for task_id, status, domain, app, stream, start, end in tasks:
            con.execute(
                "INSERT INTO pull_record_tasks VALUES (?, ?, ?, 'vhost.example.com', ?, ?, ?, "
                "?, ?, NULL, ?, ?)",
                [
                    task_id,
                    start,
                    end,
                    domain,
                    app,
                    stream,
                    status,
                    CODES[status],
                    sh(10, 11),
                    DELETED.get(task_id),
                ],
            )
        if loads:
            con.execute(
                "CREATE TABLE _dlt_loads (load_id VARCHAR NOT NULL, schema_name VARCHAR, "
                "status BIGINT NOT NULL, inserted_at TIMESTAMPTZ NOT NULL, "
                "schema_version_hash VARCHAR)"
            )
            con.execute(
                "INSERT INTO _dlt_loads VALUES ('1710039600.0', 'volcengine_live', 0, ?, 'h')",
                [sh(10, 11)],
            )
    return path


@pytest.fixture
def hand_built(tmp_path: Path) -> Path:
    return build(tmp_path / "hand.duckdb")


FILES_READ_AT = sh(10, 11)
"""seen_at of every hand-built file: the one run that read the file history."""


def add_files(path: Path, files: list[tuple[Any, ...]], *, without: str | None = None) -> Path:
    """A ``record_files`` table (the columns sql/recording_coverage.sql reads, less
    ``without``) holding ``files``: (file_id, app, stream, start, end) on the tasks' vhost."""
    columns = {
        "file_id": "VARCHAR NOT NULL",
        "vhost": "VARCHAR",
        "app": "VARCHAR",
        "stream": "VARCHAR",
        "start_time": "TIMESTAMPTZ",
        "end_time": "TIMESTAMPTZ",
        "seen_at": "TIMESTAMPTZ",
    }
    columns.pop(without or "", None)
    with duckdb.connect(str(path)) as con:
        con.execute(f"SET schema = '{DATASET}'")
        con.execute(
            f"CREATE TABLE record_files ({', '.join(f'{c} {t}' for c, t in columns.items())})"
        )
        for file_id, app, stream, start, end in files:
            values = {"file_id": file_id, "vhost": "vhost.example.com", "app": app,
                      "stream": stream, "start_time": start, "end_time": end,
                      "seen_at": FILES_READ_AT}  # fmt: skip
            kept = [values[c] for c in columns]
            con.execute(f"INSERT INTO record_files VALUES ({', '.join(['?'] * len(kept))})", kept)
    return path


def images(page: str) -> list[str]:
    return re.findall(r"<img [^>]*src='data:image/png;base64,[A-Za-z0-9+/=]+'", page)


def test_exact_numbers_from_a_hand_built_file(hand_built: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    data = report.write_report(hand_built, out, as_of=AS_OF)
    assert data.summary["tasks"] == 6 and data.summary["successful_loads"] == 1
    assert data.summary["data_age"] == dt.timedelta(hours=1)
    assert data.warnings == [] and data.notices == []
    assert [(r["status_code"], r["tasks"]) for r in data.by_status] == [
        ("finished", 2),
        ("not_started", 2),
        ("recording", 1),
        ("stopped", 1),
    ]
    assert data.peak["peak_concurrent"] == 3
    assert data.peak["peak_first_at"] == sh(9, 11, 30)
    assert data.peak["peak_first_until"] == sh(9, 12)
    assert data.peak["concurrent_now"] == 1
    # 26 hours from the first recording (03-09 10:00) to now: hourly buckets.
    assert len(data.envelope) == 26 and {r["bucket"] for r in data.envelope} == {"hour"}
    first_hours = [(r["peak_concurrent"], r["mean_concurrent"]) for r in data.envelope[:5]]
    assert first_hours == [(1, 1.0), (3, 2.5), (2, 1.5), (1, 1.0), (0, 0.0)]
    assert sum(r["recorded_hours"] for r in data.envelope) == 7.0
    assert [(r["domain"], r["recorded_hours"]) for r in data.by_domain] == [
        ("a.example.com", 5.0),
        ("b.example.com", 2.0),
    ]
    assert [(r["stream"], r["recorded_hours"]) for r in data.by_stream] == [
        ("s2", 3.0),
        ("s1", 2.0),
        ("s3", 1.0),
        ("s4", 1.0),
    ]
    assert [r["task_id"] for r in data.upcoming] == ["r5"]  # r6 left the list
    assert [r["task_id"] for r in data.recording] == ["r4"]
    assert all(r["ok"] for r in data.quality if r["check"] != "deleted_from_list")
    deleted = [r for r in data.quality if r["check"] == "deleted_from_list"]
    assert [(r["problem_rows"], r["examples"]) for r in deleted] == [(1, "r6")]

    page = out.read_text(encoding="utf-8")
    assert len(images(page)) == CHARTS
    assert "At most 3 tasks recorded at once (first at 2024-03-09 11:30" in page
    assert "1 now and up to 1 this hour" in page
    assert "Tasks started: 6 in all over 2 days" in page
    assert "Recorded hours: 7 in all over 2 days" in page
    assert "the busiest is Sat 11:00, with 2.5 on average (peak 3)" in page
    assert "Last successful load: <b>2024-03-10 11:00</b> (1 h 00 min ago)" in page
    assert "<td>a.example.com</td><td class='n'>2</td><td class='n'>5</td>" in page
    assert "1 scheduled task." in page and "1 task recording." in page
    # Self-contained: nothing to fetch, no script.
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)
    assert "<script" not in page and "<link" not in page


def test_the_charts_use_the_same_sql_files(hand_built: Path, tmp_path: Path) -> None:
    """The envelope the page draws is sql/concurrency_envelope.sql's answer, unchanged."""
    data = report.write_report(hand_built, tmp_path / "r.html", as_of=AS_OF)
    with duckdb.connect(str(hand_built), read_only=True) as con:
        con.execute(f"SET VARIABLE as_of = TIMESTAMPTZ '{AS_OF.isoformat()}'")
        text = (report.SQL_DIR / "concurrency_envelope.sql").read_text(encoding="utf-8")
        *_, last = duckdb.extract_statements(text)
        for statement in duckdb.extract_statements(text)[:-1]:
            con.execute(statement.query)
        direct = report.fetch_rows(con.execute(last.query))
    assert direct == data.envelope
    assert report.sql_text("freshness.sql").startswith("-- freshness.sql: ")


def test_time_zone_window_and_stale_data(hand_built: Path, tmp_path: Path) -> None:
    data = report.write_report(
        hand_built,
        tmp_path / "r.html",
        as_of=sh(12, 12),
        time_zone="UTC",
        since=sh(9, 11, 45),
        until=sh(9, 12, 15),
    )
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "(first at 2024-03-09 03:30" in page  # the peak, in UTC
    # The window: 11:45-12:15 +08 is 03:45-04:15 UTC, two hourly buckets.
    assert [(r["peak_concurrent"], r["recorded_hours"]) for r in data.envelope] == [
        (3, 0.75),  # 03:45-04:00: r1, r2 and r3
        (2, 0.5),  # 04:00-04:15: r2 and r3
    ]
    assert [(r["domain"], r["recorded_hours"]) for r in data.by_domain] == [
        ("a.example.com", 0.75),  # r1 to 12:00 +08, r2 throughout
        ("b.example.com", 0.5),  # r3 throughout
    ]
    assert len(data.warnings) == 1
    assert data.warnings[0].startswith("The data is 2 d 1 h old (last load 2024-03-10 03:00)")
    assert "Warning: The data is 2 d 1 h old" in page


def test_years_of_history_aggregate_to_days_and_weeks(tmp_path: Path) -> None:
    """5000 three-hour tasks, one every 1.92 hours over 400 days (from Sunday 2023-01-01):
    the concurrency chart has one bucket per day and the bars one per ISO week."""
    path = build(tmp_path / "long.duckdb", [])
    base = dt.datetime(2023, 1, 1, tzinfo=SH)
    with duckdb.connect(str(path)) as con:
        con.execute(
            f"INSERT INTO {DATASET}.pull_record_tasks "
            "SELECT 'L' || i, ?::TIMESTAMPTZ + i * INTERVAL 6912 SECOND, "
            "?::TIMESTAMPTZ + i * INTERVAL 6912 SECOND + INTERVAL 3 HOUR, 'v', "
            "'d' || (i % 3) || '.example.com', 'live', 's' || (i % 7), '已结束', 'finished', "
            "NULL, NULL, NULL FROM range(5000) AS r(i)",
            [base, base],
        )
    as_of = base + dt.timedelta(days=401)
    out = tmp_path / "long.html"
    data = report.write_report(path, out, as_of=as_of)
    assert {r["bucket"] for r in data.envelope} == {"day"} and len(data.envelope) == 401
    assert data.peak["peak_concurrent"] == 2
    assert max(r["peak_concurrent"] for r in data.envelope) == 2
    assert round(sum(r["recorded_hours"] for r in data.envelope), 2) == 15000.0
    assert {r["period"] for r in data.activity} == {"week"}
    assert data.activity[0]["period_start"] == dt.date(2022, 12, 26)  # the Monday before
    assert len(data.activity) == 59  # to the week of Monday 2024-02-05, the last day
    assert sum(r["tasks_started"] for r in data.activity) == 5000
    assert round(sum(r["recorded_hours"] for r in data.activity), 2) == 15000.0
    assert len(data.heatmap) == 7 * 24
    assert round(sum(r["hours_observed"] for r in data.heatmap), 2) == 401 * 24
    assert len(images(out.read_text(encoding="utf-8"))) == CHARTS


def test_an_empty_table_gives_a_valid_report_that_says_so(tmp_path: Path) -> None:
    path = build(tmp_path / "empty.duckdb", [])
    data = report.write_report(path, tmp_path / "r.html", as_of=AS_OF)
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert data.summary["tasks"] == 0 and data.envelope == [] and data.heatmap == []
    assert "The table holds no tasks yet" in page
    assert "Nothing has recorded yet, so there is no concurrency to show." in page
    assert len(images(page)) == CHARTS  # each chart says "no data" rather than vanishing
    assert page.rstrip().endswith("</html>")


def test_a_single_task_still_recording(tmp_path: Path) -> None:
    path = build(tmp_path / "one.duckdb", [TASKS[3]])
    data = report.write_report(path, tmp_path / "r.html", as_of=AS_OF)
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert data.peak["peak_concurrent"] == 1
    assert [r["recorded_hours"] for r in data.envelope] == [1.0]
    assert "The table holds a single task" in page
    assert "No task has finished yet" in page
    assert "At most 1 task recorded at once" in page
    assert len(images(page)) == CHARTS


def test_no_task_finished_or_recorded_yet(tmp_path: Path) -> None:
    path = build(tmp_path / "planned.duckdb", [TASKS[4]], loads=True)
    data = report.write_report(path, tmp_path / "r.html", as_of=AS_OF)
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert data.envelope == [] and data.by_domain == []
    assert "No task has finished yet" in page
    assert "Nothing has recorded in this window yet" in page
    assert "1 scheduled task." in page


def test_a_file_without_the_tables_exits_2_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = tmp_path / "bare.duckdb"
    duckdb.connect(str(bare)).close()
    assert report.main(["--duckdb", str(bare), "--output", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert f"no table {DATASET}.pull_record_tasks; no table {DATASET}._dlt_loads" in err
    assert "(exit code 2)" in err
    assert not (tmp_path / "r.html").exists()

    no_loads = build(tmp_path / "no_loads.duckdb", loads=False)
    assert report.main(["--duckdb", str(no_loads), "--output", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err
    assert f"no table {DATASET}._dlt_loads" in err and "pull_record_tasks;" not in err

    assert report.main(["--duckdb", str(no_loads), "--dataset-name", "other"]) == 2
    assert f"Datasets with a pull_record_tasks table: {DATASET}" in capsys.readouterr().err

    lacking = build(tmp_path / "lacking.duckdb")
    with duckdb.connect(str(lacking)) as con:
        con.execute(f"ALTER TABLE {DATASET}.pull_record_tasks DROP COLUMN stream")
    assert report.main(["--duckdb", str(lacking)]) == 2
    assert f"no column(s) stream of {DATASET}.pull_record_tasks" in capsys.readouterr().err

    assert report.main(["--duckdb", str(tmp_path / "absent.duckdb")]) == 2
    assert "No DuckDB file at" in capsys.readouterr().err


def test_bad_arguments_exit_2(hand_built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert report.main(["--since", "yesterday"]) == 2
    assert report.main(["--duckdb", str(hand_built), "--timezone", "Mars/Olympus"]) == 2
    assert "Unknown time zone 'Mars/Olympus'" in capsys.readouterr().err
    args = ["--duckdb", str(hand_built), "--since", "2024-03-02", "--until", "2024-03-01"]
    assert report.main(args) == 2
    assert "--until must be later than --since" in capsys.readouterr().err


def test_the_default_file_is_the_one_written_last(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert report.main([]) == 2
    assert "Run volcengine-live (or volcengine-live --demo) first" in capsys.readouterr().err
    build(tmp_path / "volcengine_live.duckdb")
    build(tmp_path / "volcengine_live_demo.duckdb", [])
    os.utime(tmp_path / "volcengine_live.duckdb", (1_000_000_000, 1_000_000_000))
    assert report.default_duckdb_file() == tmp_path / "volcengine_live_demo.duckdb"
    assert report.main([]) == 0
    assert "(0 tasks, DuckDB file volcengine_live_demo.duckdb" in capsys.readouterr().out
    assert (tmp_path / report.OUTPUT).is_file()


# --- End to end: the real pipeline, then the subcommand ------------------------------------

ACCESS_KEY = "AKLTreportTestKey01"
SECRET = "report-test-secret-0a1b2c3d"
E2E_TASKS = 1500


def run_in(mp: pytest.MonkeyPatch, folder: Path, emu: Emulator) -> None:
    """The command as a user runs it in ``folder``: reading ``emu`` with the test's key, and
    nothing of this machine's own settings."""
    mp.chdir(folder)
    mp.setenv("DLT_PROJECT_DIR", str(folder))
    mp.setenv("RUNTIME__DLTHUB_TELEMETRY", "false")
    for name in list(os.environ):
        if name.startswith(("SOURCES__", "VOLC_", "DESTINATION__")):
            mp.delenv(name)
    mp.setenv("SOURCES__VOLCENGINE_LIVE__ENDPOINT", emu.endpoint)
    mp.setenv("SOURCES__VOLCENGINE_LIVE__CREDENTIALS__ACCESS_KEY_ID", ACCESS_KEY)
    mp.setenv("SOURCES__VOLCENGINE_LIVE__CREDENTIALS__SECRET_ACCESS_KEY", SECRET)


@pytest.fixture(scope="module")
def loaded_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``volcengine-live`` then ``volcengine-live report`` in a fresh directory, against the
    emulator over real HTTP: the files and the printed output of both."""
    folder = tmp_path_factory.mktemp("report_e2e")
    with (
        pytest.MonkeyPatch.context() as mp,
        Emulator(
            tasks=E2E_TASKS, seed=7, access_key_id=ACCESS_KEY, secret_access_key=SECRET, latency=0.0
        ) as emu,
    ):
        run_in(mp, folder, emu)
        load_out, report_out = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(load_out):
            load_code = cli_main(
                ["--pipelines-dir", str(folder / "pipelines"), "--progress", "none"]
            )
        with contextlib.redirect_stdout(report_out):
            report_code = cli_main(["report"])
        yield {
            "folder": folder,
            "load_code": load_code,
            "load_out": load_out.getvalue(),
            "report_code": report_code,
            "report_out": report_out.getvalue(),
            "page": folder / report.OUTPUT,
        }


def test_the_subcommand_after_a_real_run(loaded_run: dict[str, Any]) -> None:
    assert loaded_run["load_code"] == 0
    assert (
        "Report: volcengine-live report --duckdb volcengine_live.duckdb" in loaded_run["load_out"]
    )
    assert loaded_run["report_code"] == 0
    assert (
        f"Report: {report.OUTPUT} ({E2E_TASKS} tasks, DuckDB file volcengine_live.duckdb"
        in (loaded_run["report_out"])
    )
    page = loaded_run["page"].read_text(encoding="utf-8")
    assert len(images(page)) == CHARTS
    assert SECRET not in page
    # The page's peak is concurrency_peak.sql's, run on the same file.
    with duckdb.connect(
        str(loaded_run["folder"] / "volcengine_live.duckdb"), read_only=True
    ) as con:
        (total,) = con.execute(f"SELECT count(*) FROM {DATASET}.pull_record_tasks").fetchone() or (
            0,
        )
        rows = report.run_sql(con, "concurrency_peak.sql", DATASET, report.TIME_ZONE)
    assert total == E2E_TASKS
    peak = rows[0][0]["peak_concurrent"]
    assert peak > 0
    assert f"At most {peak} tasks recorded at once" in page


# --- Headless Chromium: the page as a person sees it --------------------------------------------

CHROMIUM = next(
    (
        found
        for name in ("chromium", "chromium-browser", "google-chrome")
        if (found := shutil.which(name))
    ),
    None,
)
PROBE = """<script>window.addEventListener('load', function () {
  var seen = Array.prototype.map.call(document.images, function (i) {
    return {alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight};
  });
  var out = document.createElement('pre');
  out.id = 'image-probe';
  out.textContent = JSON.stringify(seen);
  document.body.appendChild(out);
});</script>"""


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if CHROMIUM is None:
        message = (
            "!!! chromium is not installed: the report render test cannot run. Install it with "
            "scripts/ensure-chromium.sh (apt-get install -y chromium) !!!"
        )
        if os.environ.get("VOLCENGINE_LIVE_REQUIRE_CHROMIUM") == "1":
            pytest.fail(message)
        pytest.skip(message)
    profile = tmp_path / f"chromium-profile-{len(list(tmp_path.glob('chromium-profile-*')))}"
    profile.mkdir()
    command = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_the_report_renders_in_headless_chromium(
    loaded_run: dict[str, Any], tmp_path: Path
) -> None:
    page = loaded_run["page"]
    shot = tmp_path / "report.png"
    done = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,4000", page.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = (
        int.from_bytes(shot.read_bytes()[16:20], "big"),
        int.from_bytes(shot.read_bytes()[20:24], "big"),
    )
    assert (width, height) == (1280, 4000)
    keep = os.environ.get("VOLCENGINE_LIVE_REPORT_SCREENSHOT")
    if keep:  # to look at it: VOLCENGINE_LIVE_REPORT_SCREENSHOT=/tmp/report.png pytest ...
        shutil.copy(shot, keep)

    seen, dom = probe_images(tmp_path, page)
    assert len(seen) == CHARTS
    assert "Volcengine Live pull-recording tasks" in dom
    assert report.NOT_LOADED in dom  # a run of the task list alone


def probe_images(tmp_path: Path, page: Path) -> tuple[list[dict[str, Any]], str]:
    """Every image of ``page`` as Chromium decoded it (each checked to have a size), and
    the document as Chromium parsed it."""
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text(encoding="utf-8").replace("</body>", PROBE + "</body>"))
    dumped = chromium(tmp_path, "--dump-dom", probe.as_uri())
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    found = re.search(r'<pre id="image-probe">(.*?)</pre>', dumped.stdout)
    assert found, dumped.stdout[-2000:]
    seen: list[dict[str, Any]] = json.loads(
        found.group(1).replace("&quot;", '"').replace("&amp;", "&")
    )
    for image in seen:
        assert image["complete"] and image["width"] > 0 and image["height"] > 0, image
    return seen, dumped.stdout


def test_the_probe_catches_a_broken_image(tmp_path: Path) -> None:
    """The render check itself: a broken image has natural size 0."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><body><img alt='x' src='data:image/png;base64,AAAA'>"
        + PROBE
        + "</body></html>"
    )
    dumped = chromium(tmp_path, "--dump-dom", page.as_uri())
    found = re.search(r'<pre id="image-probe">(.*?)</pre>', dumped.stdout)
    assert found
    (image,) = json.loads(found.group(1).replace("&quot;", '"'))
    assert image["width"] == 0


def test_sql_files_fall_back_to_package_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Installed from a wheel there is no sql/ beside the package: the files are read from the
    package's data instead, through the one function that reads them."""
    package = tmp_path / "site" / "shipped_sql_pkg"
    (package / "sql").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sql" / "freshness.sql").write_text("-- shipped\nSELECT 1;\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    # sql_text reads both from the module that defines it, not from the package
    monkeypatch.setattr(report.queries, "SQL_DIR", tmp_path / "no-such-dir")
    monkeypatch.setattr(report.queries, "SQL_PACKAGE", "shipped_sql_pkg")
    assert report.sql_text("freshness.sql") == "-- shipped\nSELECT 1;\n"
    with pytest.raises(report.ReportError, match=re.escape("sql/absent.sql was found neither")):
        report.sql_text("absent.sql")


def test_a_file_being_written_exits_75(
    hand_built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Another process holds DuckDB's write lock (a running pipeline): say so, code 75."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); print('open', "
            "flush=True); time.sleep(60)",
            str(hand_built),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
        assert (
            report.main(["--duckdb", str(hand_built), "--output", str(tmp_path / "r.html")]) == 75
        )
        assert "open for writing by another process" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()


# --- Hostile data (issue 23) ---------------------------------------------------------------------

UTC = dt.timezone.utc
LAST_INSTANT = dt.datetime(9999, 12, 31, 15, 59, 59, tzinfo=UTC)  # 9999-12-31T23:59:59+08:00
ODD = [
    ("o1", "已结束", "a.example.com", "live", "s1", dt.datetime(1, 1, 1, tzinfo=UTC), sh(9, 12)),
    ("o2", "已结束", "$\\undefinedmacro{x}$", "live", "x" * 1_000_000, sh(9, 10), LAST_INSTANT),
    ("o3", "未开始", "a.example.com", "live", "s1", LAST_INSTANT, LAST_INSTANT),
]


def test_times_of_year_1_and_9999_and_odd_names_make_a_report_of_the_other_tasks(
    tmp_path: Path,
) -> None:
    plain = report.write_report(build(tmp_path / "plain.duckdb"), tmp_path / "p.html", as_of=AS_OF)
    data = report.write_report(
        build(tmp_path / "odd.duckdb", TASKS + ODD), tmp_path / "r.html", as_of=AS_OF
    )
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert data.summary["tasks"] == len(TASKS) + len(ODD)
    # o2 started on 03-09 (data); what it recorded is unknown, so the hours are the same
    assert (data.envelope, data.peak) == (plain.envelope, plain.peak)
    started = sum(r["tasks_started"] for r in data.activity)
    assert started == sum(r["tasks_started"] for r in plain.activity) + 1
    quality = {r["check"]: r for r in data.quality}
    assert quality["time_out_of_range"]["problem_rows"] == 3
    assert len(images(page)) == CHARTS
    assert len(page) < 2 * len((tmp_path / "p.html").read_text(encoding="utf-8"))  # no 1 MB name


def test_chart_labels_are_short_and_never_read_as_math() -> None:
    from matplotlib.figure import Figure

    label = report.chart_label("$\\undefinedmacro{x}$")
    assert label == "\\$\\undefinedmacro{x}\\$"
    assert len(report.chart_label("x" * 1_000_000)) == report.LABEL_CHARS
    fig = Figure()
    fig.add_subplot().barh([label, report.chart_label("y" * 1_000_000)], [1, 2])
    report.png(fig)  # "$\undefinedmacro{x}$" as it was failed the figure (mathtext)
    rows = [{"period": "day", "period_start": dt.date(2024, 3, 9), "status_code": "$\\x{y}$",
             "tasks_started": 1}]  # fmt: skip
    report.png(report.activity_figure(rows, "tasks_started", "Tasks started", "tasks"))


def test_a_run_that_found_no_task_reports_0_tasks(tmp_path: Path) -> None:
    """dlt creates a table only when rows come: an account without a task has no
    pull_record_tasks table after its first run, and that is data, not a missing load."""
    folder = tmp_path / "empty-account"
    folder.mkdir()
    with (
        pytest.MonkeyPatch.context() as mp,
        Emulator(
            tasks=0, access_key_id=ACCESS_KEY, secret_access_key=SECRET, rate_limit=None
        ) as emu,
    ):
        run_in(mp, folder, emu)
        with contextlib.redirect_stdout(io.StringIO()):
            assert (
                cli_main(["--pipelines-dir", str(folder / "pipelines"), "--progress", "none"]) == 0
            )
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli_main(["report"])
    assert code == 0, err.getvalue()
    assert "(0 tasks, DuckDB file volcengine_live.duckdb" in out.getvalue()
    assert "The table holds no tasks yet" in (folder / report.OUTPUT).read_text(encoding="utf-8")


# --- What was recorded (record_files, issue 25) --------------------------------------------------

COVERED_TASKS = [
    *TASKS,
    ("r7", "已结束", "a.example.com", "live", "s7", sh(8, 20), sh(8, 22)),
    ("r8", "已结束", "b.example.com", "show", "s8", sh(9, 15), sh(9, 16)),
]
FILES = [
    ("p1", "preset", "p", sh(8, 19), sh(8, 19, 30)),  # no task; the earliest file loaded
    ("a1", "live", "s1", sh(9, 10), sh(9, 11)),  # r1 in two segments: complete
    ("a2", "live", "s1", sh(9, 11), sh(9, 12)),
    ("b1", "live", "s2", sh(9, 11), sh(9, 12)),  # r2 cut for 10 min: short
    ("b2", "live", "s2", sh(9, 12, 10), sh(9, 14)),
    ("c1", "show", "s3", sh(9, 11, 30), sh(9, 12)),  # r3 stopped: not checked, not an orphan
    ("d1", "show", "s8", sh(9, 15, 5), sh(9, 15, 40)),  # r8 5 min late, 20 min early: short
]
"""With COVERED_TASKS, files read 03-10 11:00: r7 (03-08 20:00-22:00) left no file.

    task  scheduled  recorded         finding   where the time went
    r7    2 h        0                no_file   no file
    r2    3 h        2 h 50 (94.4 %)  short     cuts 10 min
    r8    1 h        35 min (58.3 %)  short     late start 5 min, early end 20 min
    r1    2 h        2 h              complete

8 h scheduled, 5.42 h recorded (19500 s, 67.7 %): 03-08 2 h and 0, 03-09 6 h and 5.42 h
(90.3 %). p1, half an hour, belongs to no task; r4 is still recording, r5 and r6 ahead."""


def test_what_was_recorded_with_exact_numbers_from_a_hand_built_file(tmp_path: Path) -> None:
    path = add_files(build(tmp_path / "files.duckdb", COVERED_TASKS), FILES)
    out = tmp_path / "r.html"
    data = report.write_report(path, out, as_of=AS_OF)
    assert data.files_note is None and data.coverage is not None
    assert [(r["finding"], r["task_id"] or r["file_id"]) for r in data.coverage] == [
        ("no_file", "r7"),
        ("short", "r2"),
        ("short", "r8"),
        ("no_task", "p1"),
        ("complete", "r1"),
    ]
    assert report.coverage_counts(data.coverage) == {
        "no_file": 1, "short": 2, "complete": 1, "tasks": 4, "scheduled_hours": 8.0,
        "recorded_hours": 5.42, "pct_recorded": 67.7, "orphan_files": 1, "orphan_hours": 0.5,
    }  # fmt: skip
    periods = report.coverage_per_period(data.coverage, report.TIME_ZONE)
    assert [
        (p["period"], p["period_start"], p["tasks"], p["missed"], p["scheduled_hours"],
         p["recorded_hours"], p["pct_recorded"]) for p in periods
    ] == [
        ("day", dt.date(2024, 3, 8), 1, 1, 2.0, 0.0, 0.0),
        ("day", dt.date(2024, 3, 9), 3, 2, 6.0, 5.42, 90.3),
    ]  # fmt: skip
    missed = report.missed_recordings(data.coverage)
    assert [
        (m["task_id"], m["domain/app/stream"], m["scheduled"], m["recorded"],
         m["pct_recorded"], m["where the time went"]) for m in missed
    ] == [
        ("r7", "a.example.com/live/s7", "2 h 00 min", "0 s", 0.0, "no file"),
        ("r2", "a.example.com/live/s2", "3 h 00 min", "2 h 50 min", 94.4, "cuts 10 min"),
        ("r8", "b.example.com/show/s8", "1 h 00 min", "35 min", 58.3,
         "late start 5 min, early end 20 min"),
    ]  # fmt: skip

    page = out.read_text(encoding="utf-8")
    assert len(images(page)) == CHARTS + 1  # and the hours scheduled against recorded
    section = page[page.index("<h2 id='what-was-recorded'>") : page.index("<h2>Scheduled next")]
    assert "4 finished tasks checked" in section
    assert "1 left no file, 2 recorded short (more than a minute less than scheduled), " in section
    assert "1 task left no file." in section and "2 tasks recorded short." in section
    assert (
        "<td>no_file</td><td>r7</td><td>2024-03-08 20:00</td><td>a.example.com/live/s7</td>"
        "<td>2 h 00 min</td><td>0 s</td><td class='n'>0</td><td>no file</td>" in section
    )
    assert section.index(">r7<") < section.index(">r2<") < section.index(">r8<")
    assert (
        "Of 8 hours scheduled for 4 finished tasks, the files cover 5.42 (67.7 %); the least "
        "in the day of 2024-03-08 (0 % of 2 hours)." in section
    )
    assert "1 file (0.5 hours) belongs to no task" in section
    assert report.NOT_LOADED not in page


def test_without_the_file_history_the_section_says_how_to_load_it(
    hand_built: Path, tmp_path: Path
) -> None:
    data = report.write_report(hand_built, tmp_path / "r.html", as_of=AS_OF)
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert data.coverage is None and data.files_note == report.NOT_LOADED
    assert f"<p class='notice'>{report.NOT_LOADED}</p>" in page
    assert "record_files = true under [sources.volcengine_live]" in report.NOT_LOADED
    assert "volcengine-live --record-files" in report.NOT_LOADED
    assert len(images(page)) == CHARTS and data.notices == []

    loaded_empty = add_files(build(tmp_path / "empty-files.duckdb"), [])
    data = report.write_report(loaded_empty, tmp_path / "e.html", as_of=AS_OF)
    page = (tmp_path / "e.html").read_text(encoding="utf-8")
    assert data.coverage == [] and len(images(page)) == CHARTS + 1
    assert "0 finished tasks checked" in page and "No finished task to check yet" in page
    assert "0 tasks left no file." in page and "0 tasks recorded short." in page
    assert "Every file loaded belongs to a task." in page and "<table><tr><th>finding" not in page

    lacking = add_files(build(tmp_path / "lacking.duckdb"), FILES, without="seen_at")
    data = report.write_report(lacking, tmp_path / "l.html", as_of=AS_OF)
    assert data.coverage is None and data.files_note is not None
    assert f"{DATASET}.record_files lacks column(s) seen_at" in data.files_note


HOSTILE_TASK = (
    "r9<b>",
    "已结束",
    "<script>alert(1)</script>",
    "live",
    "<img src=x onerror=alert(2)>",
    sh(9, 16),
    sh(9, 17),
)


def test_the_section_renders_in_chromium_and_hostile_names_stay_text(tmp_path: Path) -> None:
    path = add_files(build(tmp_path / "hostile.duckdb", [*COVERED_TASKS, HOSTILE_TASK]), FILES)
    out = tmp_path / "r.html"
    report.write_report(path, out, as_of=AS_OF)
    page = out.read_text(encoding="utf-8")
    assert "<script" not in page and "<img src=x" not in page
    shot = tmp_path / "section.png"  # the whole page: a #fragment shoots a blank viewport
    done = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,5200", out.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep = os.environ.get("VOLCENGINE_LIVE_SECTION_SCREENSHOT")
    if keep:  # to look at it: VOLCENGINE_LIVE_SECTION_SCREENSHOT=/tmp/section.png pytest ...
        shutil.copy(shot, keep)
    seen, dom = probe_images(tmp_path, out)
    assert len(seen) == CHARTS + 1  # the name's <img> is text, not an image
    assert [image["alt"] for image in seen][-1] == "hours scheduled and recorded"
    assert "What was recorded" in dom and "2 tasks left no file." in dom
    assert "5 finished tasks checked" in dom and "2 left no file" in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt;/live/&lt;img src=x onerror=alert(2)&gt;" in dom
    assert "r9&lt;b&gt;" in dom
