"""The analysis notebook runs top to bottom on a freshly loaded dataset and draws every chart;
its "What was recorded" section reads the file history when it was loaded (the main dataset
here), and says how to load it when not (the copies of the task list alone).

The kernel is the interpreter running the tests (this venv), whatever kernels the machine has
registered and whether or not the venv is activated: the test writes its own ``python3``
kernelspec pointing at ``sys.executable`` and puts it first on ``JUPYTER_PATH``.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import dlt
import duckdb
import nbformat
import pytest
from nbclient import NotebookClient

from volcengine_live import VolcengineCredentials, volcengine_live_source
from volcengine_live_cli import report
from volcengine_live_emulator import DEFAULT_ACCESS_KEY_ID, DEFAULT_SECRET_ACCESS_KEY, Emulator

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "pull_record_tasks_analysis.ipynb"
DATASET = "analysis_test_dataset"  # not the default: the notebook must use its parameter
TASKS = 3000
SEED = 20240310
CHART_CELLS = 8
COVERAGE_CHART = "record-files"
"""The tag of the chart cell that draws only when ``record_files`` was loaded."""


def load_dataset(path: Path, pipelines_dir: Path) -> None:
    """Load the dataset the notebook reads into the DuckDB file at ``path``: the project's
    source reading the emulator's seeded task list and its file history (the last 7 days of
    files, as a first run with ``record_files = true`` reads), as a user's first run would."""
    pipeline = dlt.pipeline(
        pipeline_name="notebook_test",
        destination=dlt.destinations.duckdb(str(path)),
        dataset_name=DATASET,
        pipelines_dir=str(pipelines_dir),
    )
    credentials = VolcengineCredentials()
    credentials.access_key_id = DEFAULT_ACCESS_KEY_ID
    credentials.secret_access_key = DEFAULT_SECRET_ACCESS_KEY
    with Emulator(tasks=TASKS, seed=SEED, rate_limit=None, file_rate_limit=None) as emu:
        source = volcengine_live_source(
            endpoint=emu.endpoint, credentials=credentials, record_files=True
        )
        pipeline.run(source)
        # One scheduled and one recording task leave the list: the next run flags them.
        tasks = list(emu.store.all_tasks())
        gone = [next(t["TaskId"] for t in tasks if t["Status"] == s) for s in ("未开始", "生效中")]
        emu.store.remove_tasks(gone)
        pipeline.run(
            volcengine_live_source(
                endpoint=emu.endpoint, credentials=credentials, record_files=True
            )
        )


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("notebook")
    path = tmp / "volcengine_live.duckdb"
    load_dataset(path, tmp / "pipelines")
    with duckdb.connect(str(path), read_only=True) as con:
        loaded = con.execute(f"SELECT count(*) FROM {DATASET}.pull_record_tasks").fetchone()[0]
        deleted = con.execute(
            f"SELECT count(*) FROM {DATASET}.pull_record_tasks WHERE deleted_at IS NOT NULL"
        ).fetchone()[0]
        files = con.execute(f"SELECT count(*) FROM {DATASET}.record_files").fetchone()[0]
    assert loaded == TASKS and deleted == 2 and files > 0
    return path


def coverage_text(path: Path) -> tuple[str, str]:
    """What the notebook must print of sql/recording_coverage.sql's answer on ``path``: the
    summary and the chart's reading, as the report package words them."""
    with duckdb.connect(str(path), read_only=True) as con:
        (found,) = report.run_sql(con, "recording_coverage.sql", DATASET, report.TIME_ZONE)
    counts = report.coverage_counts(found)
    periods = report.coverage_per_period(found, report.TIME_ZONE)
    assert counts["tasks"] > 0 and counts["no_file"] + counts["short"] > 0
    return report.coverage_summary(counts), report.coverage_reading(counts, periods)


def printed(nb: Any) -> str:
    return "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", []))


def charts_drawn(nb: Any) -> int:
    """Images drawn by the chart cells; the coverage chart's cell draws none without files."""
    return sum(images(c) for c in nb.cells)


def live_count(path: Path, status_code: str) -> int:
    """Tasks of ``status_code`` still in the API's list, as the notebook must count them."""
    with duckdb.connect(str(path), read_only=True) as con:
        found = con.execute(
            f"SELECT count(*) FROM {DATASET}.pull_record_tasks "
            "WHERE status_code = ? AND deleted_at IS NULL",
            [status_code],
        ).fetchone()
    return int(found[0]) if found else 0


@pytest.fixture
def kernel_from_this_venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A ``python3`` kernelspec that runs this interpreter, ahead of any other on the path."""
    spec_dir = tmp_path / "jupyter" / "kernels" / "python3"
    spec_dir.mkdir(parents=True)
    spec = {
        "argv": [
            sys.executable,
            "-Xfrozen_modules=off",
            "-m",
            "ipykernel_launcher",
            "-f",
            "{connection_file}",
        ],
        "display_name": "Python 3 (tests)",
        "language": "python",
    }
    (spec_dir / "kernel.json").write_text(json.dumps(spec), encoding="utf-8")
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return "python3"


def execute(notebook: Path, kernel_name: str, cwd: Path, **parameters: Any) -> Any:
    """Run the notebook in ``cwd`` with ``parameters`` injected after its parameters cell."""
    nb = nbformat.read(notebook, as_version=4)
    (index,) = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    if parameters:
        source = "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
        injected = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
        nb.cells.insert(index + 1, injected)
    client = NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=120,
        startup_timeout=60,
        resources={"metadata": {"path": str(cwd)}},
    )
    client.execute()  # raises CellExecutionError on the first cell that fails
    return nb


def images(cell: Any) -> int:
    return sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))


def test_notebook_is_stored_without_outputs() -> None:
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(c.outputs == [] and c.execution_count is None for c in code)
    assert code[0].metadata.get("tags") == ["parameters"]
    assert "duckdb_path = None" in code[0].source
    assert 'dataset_name = "volcengine_live_dataset"' in code[0].source
    assert sum("chart" in c.metadata.get("tags", []) for c in code) == CHART_CELLS
    assert sum(COVERAGE_CHART in c.metadata.get("tags", []) for c in code) == 1


def test_notebook_runs_and_draws_every_chart(dataset: Path, kernel_from_this_venv: str) -> None:
    nb = execute(
        NOTEBOOK,
        kernel_from_this_venv,
        cwd=NOTEBOOK.parent,
        duckdb_path=str(dataset),
        dataset_name=DATASET,
    )
    charts = [c for c in nb.cells if "chart" in c.metadata.get("tags", [])]
    assert len(charts) == CHART_CELLS
    for cell in charts:
        assert images(cell) == 1, cell.source
    assert charts_drawn(nb) == CHART_CELLS
    errors = [
        out
        for cell in nb.cells
        for out in cell.get("outputs", [])
        if out.output_type == "error" or (out.output_type == "stream" and out.name == "stderr")
    ]
    assert errors == []
    text = printed(nb)
    assert "duplicate task_ids: 0 (must be 0)" in text
    # The two deleted tasks are left out of what is scheduled and recording now.
    assert f"{live_count(dataset, 'not_started')} scheduled tasks" in text
    assert f"{live_count(dataset, 'recording')} tasks recording" in text
    # What was recorded: the same answer as the report's, from the same SQL file.
    summary, reading = coverage_text(dataset)
    assert summary in text and reading in text and report.NOT_LOADED not in text
    assert " tasks left no file" in text and " tasks recorded short" in text


@pytest.mark.parametrize("file_name", ["volcengine_live.duckdb", "volcengine_live_demo.duckdb"])
def test_notebook_finds_the_default_file_from_the_repo_root(
    dataset: Path, kernel_from_this_venv: str, tmp_path: Path, file_name: str
) -> None:
    """Default parameters, run from the repo root rather than notebooks/: a real run's
    volcengine_live.duckdb, or else make demo's volcengine_live_demo.duckdb, is found."""
    repo = tmp_path / "repo"
    shutil.copytree(REPO / "sql", repo / "sql")
    (repo / "notebooks").mkdir()
    shutil.copy(NOTEBOOK, repo / "notebooks")
    with duckdb.connect(str(repo / file_name)) as con:
        con.execute(f"ATTACH '{dataset}' AS source (READ_ONLY)")
        con.execute("CREATE SCHEMA volcengine_live_dataset")
        for table in ("pull_record_tasks", "_dlt_loads"):
            con.execute(
                f"CREATE TABLE volcengine_live_dataset.{table} AS FROM source.{DATASET}.{table}"
            )
    nb = execute(repo / "notebooks" / NOTEBOOK.name, kernel_from_this_venv, cwd=repo)
    # the task list alone: the coverage chart is not drawn, the section says how to load it
    assert charts_drawn(nb) == CHART_CELLS - 1
    assert report.NOT_LOADED in printed(nb)


def test_notebook_runs_on_hostile_data_and_on_an_account_without_tasks(
    dataset: Path, kernel_from_this_venv: str, tmp_path: Path
) -> None:
    """Issue 23: times of year 1 and 9999 (loaded before the source flagged them), a domain
    matplotlib would read as math, a name of a megabyte; and an account whose runs found no
    task, so dlt made no pull_record_tasks table at all."""
    hostile = tmp_path / "hostile.duckdb"
    shutil.copy(dataset, hostile)
    with duckdb.connect(str(hostile)) as con:
        con.execute(f"SET schema = '{DATASET}'")
        for number, (domain, stream, start, end) in enumerate(
            [
                ("$\\undefinedmacro{x}$", "s", "2024-03-01 10:00:00+00", "2024-03-01 20:00:00+00"),
                (
                    "d" * 1_000_000,
                    "s" * 1_000_000,
                    "2024-03-01 10:00:00+00",
                    "2024-03-02 10:00:00+00",
                ),
                ("a.example.com", "s", "0001-01-01 00:00:00+00", "2024-03-01 10:00:00+00"),
                ("a.example.com", "s", "2024-03-01 10:00:00+00", "9999-12-31 15:59:59+00"),
            ]
        ):
            con.execute(
                "INSERT INTO pull_record_tasks BY NAME SELECT ? AS task_id, ?::TIMESTAMPTZ AS "
                "start_time, ?::TIMESTAMPTZ AS end_time, 'v' AS vhost, ? AS domain, 'live' AS "
                "app, ? AS stream, '已结束' AS status, 'finished' AS status_code, now() AS "
                "seen_at",
                [f"hostile-{number}", start, end, domain, stream],
            )
    empty = tmp_path / "empty.duckdb"
    with duckdb.connect(str(empty)) as con:
        con.execute(f"ATTACH '{dataset}' AS source (READ_ONLY)")
        con.execute(f"CREATE SCHEMA {DATASET}")
        con.execute(f"CREATE TABLE {DATASET}._dlt_loads AS FROM source.{DATASET}._dlt_loads")
    for path, drawn in ((hostile, CHART_CELLS), (empty, CHART_CELLS - 1)):
        nb = execute(
            NOTEBOOK,
            kernel_from_this_venv,
            cwd=NOTEBOOK.parent,
            duckdb_path=str(path),
            dataset_name=DATASET,
        )
        assert charts_drawn(nb) == drawn
    text = printed(nb)
    assert "0 scheduled tasks" in text and "0 tasks recording" in text
    assert report.NOT_LOADED in text
