"""The pinned versions work together: the known breakages of dlt 1.31 stay out."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import dlt
import pyarrow as pa
from conftest import DATASET, Loader
from packaging.version import Version


def test_installed_versions_are_the_ones_known_to_work_together() -> None:
    assert Version(version("dlt")).release[:2] == (1, 31)
    # dlt 1.31 with duckdb>=2 breaks Relation.arrow(); with sqlglot>=30.22, pipeline.dataset().
    assert Version(version("duckdb")) < Version("2")
    assert Version(version("sqlglot")) < Version("30.22")


def test_dataset_access_and_arrow_work_on_a_loaded_table(loader: Loader) -> None:
    loader.run()
    dataset = loader.pipeline().dataset()
    table = dataset.table("pull_record_tasks").arrow()
    assert isinstance(table, pa.Table)
    assert table.num_rows == loader.emulator.store.count
    assert table.schema.field("start_time").type.tz is not None


def test_tasks_reach_duckdb_as_parquet(loader: Loader, tmp_path: Path) -> None:
    pipeline = loader.pipeline()
    info = pipeline.run(loader.source())
    formats = {
        job.job_file_info.file_format
        for package in info.load_packages
        for job in package.jobs["completed_jobs"]
        if job.job_file_info.table_name == "pull_record_tasks"
    }
    # The data as Parquet, then the merge statement; never dlt's row-by-row insert_values.
    assert formats == {"parquet", "sql"}
    assert dlt.__version__.startswith("1.31")
    assert pipeline.dataset_name == DATASET
