"""Dagster definitions: Volcengine Live pull-recording tasks loaded by dlt, one asset per account.

``defs`` holds, for each configured account (today: the one default account), a dagster-dlt
asset over the ``volcengine_live`` source (``@dlt_assets``, run by ``DagsterDltResource``),
the job ``volcengine_live`` that materializes all of them and a schedule every 30 minutes.
Dagster's default executor runs each account's asset in its own process, so one failing
leaves the others loaded; side by side on a server destination, one at a time on DuckDB,
whose file takes one writer process (``accounts_at_once``).

All accounts load into dataset ``volcengine_live_dataset``; each keeps its own dlt pipeline
(and incremental state): ``volcengine_live`` for the default account, the same as the CLI
and the Airflow DAG, ``volcengine_live_<account>`` for the others. dagster-dlt drops the
pipeline's local working folder before each run, so the state is read back from the
destination every time.

Configuration comes the dlt way, read when the run starts: ``.dlt/config.toml`` and
``.dlt/secrets.toml`` in the working directory (or ``DLT_PROJECT_DIR``), or environment
variables, e.g. ``SOURCES__VOLCENGINE_LIVE__CREDENTIALS__ACCESS_KEY_ID``,
``SOURCES__VOLCENGINE_LIVE__CREDENTIALS__SECRET_ACCESS_KEY``, ``DESTINATION_TYPE=postgres``
and ``DESTINATION__POSTGRES__CREDENTIALS``. See docs/scheduling.md.

    dagster dev -f deploy/dagster/definitions.py
    dagster asset materialize -f deploy/dagster/definitions.py --select '*'
"""

import os
from collections.abc import Iterator
from typing import Any

import dlt
from dagster import (
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    DefaultScheduleStatus,
    Definitions,
    ScheduleDefinition,
    define_asset_job,
)
from dagster_dlt import DagsterDltResource, DagsterDltTranslator, dlt_assets
from dagster_dlt.translator import DltResourceTranslatorData
from dlt.common.runtime.collector import LogCollector
from dlt.extract.source import DltSource

from volcengine_live import VolcengineCredentials, account_source, volcengine_live_source
from volcengine_live.accounts import DEFAULT_ACCOUNT

PIPELINE_NAME = "volcengine_live"
DATASET_NAME = "volcengine_live_dataset"
SCHEDULE = os.environ.get("VOLCENGINE_LIVE_SCHEDULE", "*/30 * * * *")


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


def source_of(account: str) -> DltSource:
    """The source of one account, its credentials and settings read from configuration."""
    if account == DEFAULT_ACCOUNT:
        source: DltSource = volcengine_live_source()
        return source
    return account_source(account)


def naming_source() -> DltSource:
    """A source object for naming the assets only, never run.

    ``@dlt_assets`` needs a source when the definitions load, to make one asset per dlt
    resource; the process loading them (``dagster dev``, the daemon, a code server) need not
    have the credentials, and without them the source refuses to be created. So this one
    gets placeholders (it sends nothing), and every run builds the real source from
    configuration (``source_of``) and hands it to ``DagsterDltResource.run``.
    """
    placeholder = VolcengineCredentials()
    placeholder.access_key_id = "unused"
    placeholder.secret_access_key = "unused"
    source: DltSource = volcengine_live_source(credentials=placeholder)
    return source


class AccountTranslator(DagsterDltTranslator):  # type: ignore[misc, unused-ignore]
    """dagster-dlt's asset keys (``dlt_volcengine_live_pull_record_tasks``), under a prefix
    named after the account for every account but the default one."""

    def __init__(self, account: str) -> None:
        super().__init__()
        self.account = account

    def get_asset_spec(self, data: DltResourceTranslatorData) -> AssetSpec:
        spec = super().get_asset_spec(data)
        if self.account == DEFAULT_ACCOUNT:
            return spec
        return spec.replace_attributes(key=spec.key.with_prefix(self.account))


def account_assets(account: str) -> AssetsDefinition:
    """The dagster-dlt asset of one account."""
    pipeline = dlt.pipeline(
        pipeline_name=pipeline_name(account),
        dataset_name=DATASET_NAME,
        # VOLCENGINE_LIVE_DESTINATION (the Airflow DAG's older setting) wins; otherwise dlt
        # reads destination_type (DESTINATION_TYPE=postgres, or .dlt/config.toml).
        destination=os.environ.get("VOLCENGINE_LIVE_DESTINATION") or None,
        progress=LogCollector(log_period=30, dump_system_stats=False),
    )

    @dlt_assets(  # type: ignore[untyped-decorator, unused-ignore]  # typed where installed
        dlt_source=naming_source(),
        dlt_pipeline=pipeline,
        name=pipeline_name(account),
        group_name=PIPELINE_NAME,
        dagster_dlt_translator=AccountTranslator(account),
        op_tags={"volcengine_live/account": account},
    )
    def load(context: AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[Any]:
        yield from dlt.run(context=context, dlt_source=source_of(account))

    return load


assets = [account_assets(account) for account in account_names()]


# The tag lets dagster.yaml keep runs one at a time (docs/scheduling.md, Dagster):
# run_queue: {tag_concurrency_limits: [{key: volcengine_live, limit: 1}]}
def accounts_at_once() -> int:
    """How many accounts' assets run side by side in one job run: 1 for DuckDB (a DuckDB file
    takes one writer process; a second one fails on the file's lock), all of them (0) for a
    server destination; ``VOLCENGINE_LIVE_ACCOUNTS_AT_ONCE`` sets it."""
    import dlt

    configured = os.environ.get("VOLCENGINE_LIVE_ACCOUNTS_AT_ONCE")
    if configured:
        return int(configured)
    destination = os.environ.get("VOLCENGINE_LIVE_DESTINATION") or dlt.config.get(
        "destination_type", str
    )
    return 1 if destination in (None, "duckdb") else 0


volcengine_live_job = define_asset_job(
    PIPELINE_NAME,
    selection=assets,
    tags={"volcengine_live": "load"},
    config={"execution": {"config": {"multiprocess": {"max_concurrent": accounts_at_once()}}}},
)

defs = Definitions(
    assets=assets,
    jobs=[volcengine_live_job],
    schedules=[
        ScheduleDefinition(
            job=volcengine_live_job,
            cron_schedule=SCHEDULE,
            execution_timezone="UTC",
            # Off until switched on in the UI (or set here to RUNNING): a copied example
            # should not start loading by itself.
            default_status=DefaultScheduleStatus.STOPPED,
        )
    ],
    resources={"dlt": DagsterDltResource()},
)
