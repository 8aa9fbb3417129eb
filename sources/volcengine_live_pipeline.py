"""Examples of loading Volcengine Live pull-recording tasks with dlt: the script `dlt init
volcengine_live duckdb` copies into a project, beside the ``volcengine_live`` folder.

Credentials go in ``.dlt/secrets.toml`` under ``[sources.volcengine_live.credentials]``
(``access_key_id``, ``secret_access_key``), or in the environment as the official SDKs read
them (``VOLCENGINE_ACCESS_KEY`` / ``VOLCENGINE_SECRET_KEY``, or ``VOLC_ACCESSKEY`` /
``VOLC_SECRETKEY``); settings under ``[sources.volcengine_live]`` in ``.dlt/config.toml``.
"""

from datetime import datetime

import dlt

from volcengine_live import configured_accounts, volcengine_live_source


def load_tasks() -> None:
    """Every task of the account, incrementally: the first run reads the whole list, later
    runs write what is new or changed, and flag tasks that left the list."""
    pipeline = dlt.pipeline(
        pipeline_name="volcengine_live",
        destination="duckdb",
        dataset_name="volcengine_live_dataset",
    )
    load_info = pipeline.run(volcengine_live_source())
    print(load_info)


def backfill(since: datetime, until: datetime) -> None:
    """Tasks whose StartTime is in ``[since, until)``; the incremental state is left alone."""
    pipeline = dlt.pipeline(
        pipeline_name="volcengine_live",
        destination="duckdb",
        dataset_name="volcengine_live_dataset",
    )
    source = volcengine_live_source(initial_start_time=since, end_start_time=until)
    print(pipeline.run(source))


def load_every_account() -> None:
    """Each ``[sources.volcengine_live.accounts.<name>]`` in its own pipeline (its own state
    and rate limit), all into one dataset, keyed on ``(account, task_id)``."""
    for account in configured_accounts():
        pipeline = dlt.pipeline(
            pipeline_name=f"volcengine_live_{account}",
            destination="duckdb",
            dataset_name="volcengine_live_dataset",
        )
        print(pipeline.run(volcengine_live_source(account=account)))


if __name__ == "__main__":
    load_tasks()
    # backfill(datetime.fromisoformat("2024-01-01T00:00:00+08:00"),
    #          datetime.fromisoformat("2024-02-01T00:00:00+08:00"))
    # load_every_account()
