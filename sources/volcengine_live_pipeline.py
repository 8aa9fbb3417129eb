"""Examples of loading Volcengine Live pull-recording tasks with dlt: the script `dlt init
volcengine_live duckdb` copies into a project, beside the ``volcengine_live`` folder.

Credentials go in ``.dlt/secrets.toml`` under ``[sources.volcengine_live.credentials]``
(``access_key_id``, ``secret_access_key``), or in the environment as the official SDKs read
them (``VOLCENGINE_ACCESS_KEY`` / ``VOLCENGINE_SECRET_KEY``, or ``VOLC_ACCESSKEY`` /
``VOLC_SECRETKEY``); settings under ``[sources.volcengine_live]`` in ``.dlt/config.toml``.
"""

from datetime import datetime

import dlt

from volcengine_live import account_source, configured_accounts, volcengine_live_source


def tasks_pipeline() -> dlt.Pipeline:
    """The one pipeline of the examples: `dlt init` writes its destination here, `dlt deploy`
    schedules it by this name."""
    return dlt.pipeline(
        pipeline_name="volcengine_live",
        destination="duckdb",
        dataset_name="volcengine_live_dataset",
    )


def load_tasks() -> None:
    """Every task of the account, incrementally: the first run reads the whole list, later
    runs write what is new or changed, and flag tasks that left the list."""
    load_info = tasks_pipeline().run(volcengine_live_source())
    print(load_info)


def backfill(since: datetime, until: datetime) -> None:
    """Tasks whose StartTime is in ``[since, until)``; the incremental state is left alone."""
    source = volcengine_live_source(initial_start_time=since, end_start_time=until)
    print(tasks_pipeline().run(source))


# The accounts' pipelines are made through this alias because `dlt deploy` reads the name of
# every `dlt.pipeline(...)` call in this file without running it, and stops at one it cannot
# read, such as an account's.
account_pipeline = dlt.pipeline


def load_every_account() -> None:
    """Each ``[sources.volcengine_live.accounts.<name>]`` in its own pipeline,
    ``volcengine_live_<name>`` (its own state and rate limit), all into one dataset, keyed on
    ``(account, task_id)``. Into DuckDB, ``[destination.duckdb] credentials =
    "volcengine_live.duckdb"`` in ``.dlt/secrets.toml`` (dlt keeps destination credentials
    there) gives the accounts one file; by default each pipeline writes its own."""
    shared = tasks_pipeline()  # its destination and dataset, as `dlt init` set them
    for account in configured_accounts():
        pipeline = account_pipeline(
            pipeline_name=f"volcengine_live_{account}",
            destination=shared.destination,
            dataset_name=shared.dataset_name,
        )
        print(pipeline.run(account_source(account)))


if __name__ == "__main__":
    load_tasks()
    # backfill(datetime.fromisoformat("2024-01-01T00:00:00+08:00"),
    #          datetime.fromisoformat("2024-02-01T00:00:00+08:00"))
    # load_every_account()
