"""Load Volcengine Live pull-recording tasks with dlt, every 30 minutes.

One Airflow task (``volcengine_live.volcengine_live``) runs the ``volcengine_live`` source
into the destination named by ``VOLCENGINE_LIVE_DESTINATION`` (default ``postgres``),
dataset ``volcengine_live_dataset``. dlt's ``PipelineTasksGroup`` gives the task a fresh
working folder and wipes it afterwards, so the incremental state is read back from the
destination at the start of every run: a file-local destination such as ``duckdb`` only
works with an absolute path outside that folder (``DESTINATION__DUCKDB__CREDENTIALS``).

Configuration comes the dlt way: ``.dlt/config.toml`` and ``.dlt/secrets.toml`` beside this
file in the dags folder, or environment variables on the workers, e.g.
``SOURCES__VOLCENGINE_LIVE__CREDENTIALS__ACCESS_KEY_ID``,
``SOURCES__VOLCENGINE_LIVE__CREDENTIALS__SECRET_ACCESS_KEY`` and
``DESTINATION__POSTGRES__CREDENTIALS``. See docs/scheduling.md.

Install on the workers: this project (``pip install volcengine-live-dlt`` or the repository)
and the destination's extra, e.g. ``dlt[postgres]``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import dlt
import pendulum
from airflow.decorators import dag
from dlt.helpers.airflow_helper import PipelineTasksGroup

PIPELINE_NAME = "volcengine_live"
DATASET_NAME = "volcengine_live_dataset"
DESTINATION = os.environ.get("VOLCENGINE_LIVE_DESTINATION", "postgres")
SCHEDULE = os.environ.get("VOLCENGINE_LIVE_SCHEDULE", "*/30 * * * *")

default_task_args: dict[str, Any] = {
    "owner": "data",
    "depends_on_past": False,
    "email_on_failure": False,
    "email_on_retry": False,
    # A failed run leaves the state where it was; the next scheduled run loads what it missed.
    "retries": 0,
    # A run reads the whole task list (the API has no filter): minutes for a large account.
    "execution_timeout": timedelta(minutes=25),
}


@dag(  # type: ignore[untyped-decorator, unused-ignore]  # typed where Airflow is installed
    dag_id="volcengine_live",
    schedule=SCHEDULE,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,  # each run reads the current list: past intervals have nothing to add
    max_active_runs=1,  # never two runs of the pipeline at once (the CLI's lock, the Airflow way)
    default_args=default_task_args,
    tags=["dlt", "volcengine_live"],
    doc_md=__doc__,
)
def volcengine_live() -> None:
    # The group must exist before the pipeline: it points dlt at a fresh working folder.
    tasks = PipelineTasksGroup(PIPELINE_NAME, use_data_folder=False, wipe_local_data=True)

    from volcengine_live import volcengine_live_source

    pipeline = dlt.pipeline(
        pipeline_name=PIPELINE_NAME,
        dataset_name=DATASET_NAME,
        destination=DESTINATION,
    )
    # The source factory itself, not volcengine_live_source(): the helper calls it when the
    # task runs, so credentials are resolved on the worker, not each time the scheduler
    # parses this file (where they may be absent and would break the import).
    tasks.add_run(
        pipeline,
        volcengine_live_source,
        decompose="none",
        trigger_rule="all_done",
        retries=0,
    )


volcengine_live()
