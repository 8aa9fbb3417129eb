"""Load Volcengine Live pull-recording tasks with dlt, every 30 minutes, one task per account.

Two steps: ``accounts`` lists the configured accounts (today: the one default account), then
``load`` is mapped over that list (dynamic task mapping), one task instance per account, so
that several accounts run side by side on the workers, each in its own process with its own
rate limit, and one account failing leaves the others loaded. All of them write to dataset
``volcengine_live_dataset``; each account keeps its own dlt pipeline (and incremental state):
``volcengine_live`` for the default account, as before, ``volcengine_live_<account>`` for
the others.

Configuration comes the dlt way, read on the worker when a task runs: ``.dlt/config.toml``
and ``.dlt/secrets.toml`` in the dags folder, or environment variables, e.g.
``SOURCES__VOLCENGINE_LIVE__CREDENTIALS__ACCESS_KEY_ID``,
``SOURCES__VOLCENGINE_LIVE__CREDENTIALS__SECRET_ACCESS_KEY``, ``DESTINATION_TYPE=postgres``
and ``DESTINATION__POSTGRES__CREDENTIALS``. See docs/scheduling.md.

Install on the workers: this project (``pip install volcengine-live-dlt`` or the repository)
and the destination's extra, e.g. ``dlt[postgres]``. Runs on Airflow 3 (tested on 3.3) and
Airflow 2.10.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any

import pendulum

try:  # Airflow 3: the Task SDK
    from airflow.sdk import dag, get_current_context, task
except ImportError:  # Airflow 2.10
    from airflow.decorators import dag, task  # type: ignore[no-redef, unused-ignore]
    from airflow.operators.python import (  # type: ignore[no-redef, unused-ignore]
        get_current_context,
    )

PIPELINE_NAME = "volcengine_live"
DEFAULT_ACCOUNT = (
    "default"  # volcengine_live.accounts.DEFAULT_ACCOUNT: dlt is not imported at parse time
)
DATASET_NAME = "volcengine_live_dataset"
SCHEDULE = os.environ.get("VOLCENGINE_LIVE_SCHEDULE", "*/30 * * * *")

default_task_args: dict[str, Any] = {
    "owner": "data",
    "depends_on_past": False,
    "email_on_failure": False,
    "email_on_retry": False,
    # A failed run leaves the state where it was; the next scheduled run loads what it missed.
    "retries": 0,
}

# Why a plain task and not dlt's ``PipelineTasksGroup`` (dlt.helpers.airflow_helper), which
# this DAG used up to Airflow 2.10: the helper builds one fixed PythonOperator per pipeline,
# with the pipeline object bound into its callable through functools.partial when the file
# is parsed. Such an operator cannot be mapped over a list known only at run time (the
# accounts), and the partial is what dlt's own Airflow 3 notes flag under task isolation.
# What the helper did for us, the task below does in a few lines: the dags folder is dlt's
# project folder (its .dlt/ is read), every run works in a fresh folder that is deleted
# afterwards, and the incremental state is read back from the destination each time.


def _use_dags_folder_settings() -> None:
    """Make the dags folder dlt's project folder, as the helper did, unless already set."""
    if "DLT_PROJECT_DIR" in os.environ:
        return
    try:
        from airflow.configuration import conf

        dags_folder = conf.get("core", "dags_folder")
    except Exception:  # a Task SDK worker without the core package
        dags_folder = str(Path(__file__).resolve().parent)
    os.environ["DLT_PROJECT_DIR"] = dags_folder
    from dlt.common.configuration.container import Container
    from dlt.common.configuration.specs.pluggable_run_context import PluggableRunContext

    if PluggableRunContext in Container():
        Container()[PluggableRunContext].reload_providers()


def account_names() -> list[str]:
    """The accounts to load: the source's configured accounts, or the one default account
    when there are none (``volcengine_live.accounts.configured_accounts``)."""
    from volcengine_live import configured_accounts

    return configured_accounts() or [DEFAULT_ACCOUNT]


def pipeline_name(account: str) -> str:
    """One pipeline, hence one incremental state, per account; the default keeps its name
    (the rule is the CLI's too: ``volcengine_live.accounts.pipeline_name``)."""
    from volcengine_live.accounts import pipeline_name as account_pipeline

    return account_pipeline(account, PIPELINE_NAME)


def load_account(account: str) -> dict[str, Any]:
    """Run the source for one account into the configured destination; a summary for XCom."""
    import dlt
    from dlt.common.runtime.collector import LogCollector

    from volcengine_live import account_source, volcengine_live_source

    # The older VOLCENGINE_LIVE_DESTINATION still wins; otherwise dlt reads destination_type
    # (DESTINATION_TYPE=postgres, or destination_type in .dlt/config.toml).
    destination = os.environ.get("VOLCENGINE_LIVE_DESTINATION") or None
    workdir = tempfile.mkdtemp(prefix="dlt_")
    try:
        pipeline = dlt.pipeline(
            pipeline_name=pipeline_name(account),
            dataset_name=DATASET_NAME,
            destination=destination,
            pipelines_dir=workdir,
            progress=LogCollector(log_period=30, dump_system_stats=False),
        )
        source = volcengine_live_source() if account == DEFAULT_ACCOUNT else account_source(account)
        info = pipeline.run(source)
        info.raise_on_failed_jobs()
        trace = pipeline.last_trace
        normalized = trace.last_normalize_info if trace else None
        return {
            "account": account,
            "pipeline": pipeline.pipeline_name,
            "load_ids": list(info.loads_ids),
            "rows": dict(normalized.row_counts) if normalized else {},
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


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
    @task(retries=0)  # type: ignore[untyped-decorator, unused-ignore]
    def accounts() -> list[str]:
        _use_dags_folder_settings()
        return account_names()

    @task(  # type: ignore[untyped-decorator, unused-ignore]
        retries=0,
        # A run reads the whole task list (the API has no filter): minutes for a large account.
        execution_timeout=timedelta(minutes=25),
        map_index_template="{{ account }}",  # the UI shows load[default], not load[0]
    )
    def load(account: str) -> dict[str, Any]:
        get_current_context()["account"] = account  # type: ignore[literal-required, unused-ignore]
        _use_dags_folder_settings()
        return load_account(account)

    load.expand(account=accounts())


volcengine_live()
