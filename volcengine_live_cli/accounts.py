"""``volcengine-live --account NAME`` / ``--all-accounts``: load configured accounts side by
side, each in its own pipeline (``<pipeline-name>_<account>``: its own incremental state)
with its own client (its own 50 requests/s), all into one dataset.

Accounts read the API concurrently, one thread each; the destination steps (reading the
state back, normalize, load) take turns under one lock: a DuckDB file takes one writer,
and two loads altering the same tables at once conflict on most destinations. One account
failing does not stop or undo the others: each load is its own. The exit code is 0 when
every account loaded, else the failed accounts' code (1 when they failed differently);
the last line names them.
"""

from __future__ import annotations

import argparse
import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TextIO

import dlt

from volcengine_live import ConfigurationError, accounts, configured_accounts
from volcengine_live.settings import FILES_TABLE_NAME

from .metrics import extract_metrics
from .run import (
    DestinationError,
    LockBusyError,
    RunResult,
    build_pipeline,
    build_source,
    check_table_fits,
    count_rows,
    pipeline_lock,
)
from .summary import (
    EXIT_ERROR,
    EXIT_OK,
    report_error,
    report_lock_busy,
    summarise,
)


@dataclass
class Outcome:
    """How one account's run ended: its exit code and what to print."""

    account: str
    code: int
    text: str


def selected_accounts(args: argparse.Namespace) -> list[str]:
    """``--account NAME`` (which must be configured) or every configured account."""
    configured = configured_accounts()
    if args.account:
        if args.account not in configured:
            known = ", ".join(configured) or "none"
            raise ConfigurationError(
                f"account {args.account!r} is not configured: add a "
                f"[sources.volcengine_live.accounts.{args.account}] section to .dlt/ (or "
                f"SOURCES__VOLCENGINE_LIVE__ACCOUNTS__{args.account.upper()}__... variables). "
                f"Configured accounts: {known}."
            )
        return [args.account]
    if not configured:
        raise ConfigurationError(
            "--all-accounts: no accounts are configured. Add one "
            "[sources.volcengine_live.accounts.<name>] section per account (docs/accounts.md)."
        )
    return configured


def run_accounts(args: argparse.Namespace, pipelines_dir: str, out: TextIO, err: TextIO) -> int:
    """Load the selected accounts concurrently; print each summary; the exit code."""
    try:
        names = selected_accounts(args)
    except ConfigurationError as error:
        return report_error(error, err)
    destination_lock = threading.Lock()

    def one(account: str) -> Outcome:
        return run_account(args, account, pipelines_dir, destination_lock)

    with ThreadPoolExecutor(max_workers=len(names), thread_name_prefix="account") as pool:
        outcomes = list(pool.map(one, names))
    for outcome in outcomes:
        print(outcome.text.rstrip("\n"), file=out if outcome.code == EXIT_OK else err)
    failed = [o for o in outcomes if o.code != EXIT_OK]
    loaded = [o.account for o in outcomes if o.code == EXIT_OK]
    line = f"Accounts: {len(loaded)} loaded ({', '.join(loaded) or 'none'})"
    if failed:
        line += (
            "; "
            + f"{len(failed)} failed ("
            + ", ".join(f"{o.account}: exit code {o.code}" for o in failed)
            + ")"
        )
    print(line, file=out)
    codes = {o.code for o in failed}
    if not codes:
        return EXIT_OK
    return codes.pop() if len(codes) == 1 else EXIT_ERROR


def run_account(
    args: argparse.Namespace, account: str, pipelines_dir: str, destination_lock: threading.Lock
) -> Outcome:
    """One account's run, start to end; never raises (the outcome says how it ended)."""
    name = accounts.pipeline_name(account, args.pipeline_name)
    stream = io.StringIO()
    try:
        with pipeline_lock(pipelines_dir, name, args.wait_for_lock):
            pipeline = build_pipeline(args, name, database=args.pipeline_name)
            source = build_source(args, {"account": account})
            result = load_in_turns(pipeline, source, args.table_format, account, destination_lock)
            text = summarise(
                pipeline, result, backfill=bool(args.since or args.until), account=account
            )
        return Outcome(account, EXIT_OK, _labelled(account, text))
    except LockBusyError as busy:
        code = report_lock_busy(name, str(busy), stream)
    except Exception as error:  # each account's failure is its own
        code = report_error(error, stream)
    return Outcome(account, code, _labelled(account, stream.getvalue()))


def _labelled(account: str, text: str) -> str:
    """Every line of ``text`` marked with the account; an error as ``volcengine-live [a]:``."""
    marked = text.replace("volcengine-live: ", f"volcengine-live [{account}]: ")
    return "\n".join(
        line if line.startswith("volcengine-live [") else f"[{account}] {line}"
        for line in marked.splitlines()
        if line
    )


def load_in_turns(
    pipeline: dlt.Pipeline,
    source: Any,
    table_format: str | None,
    account: str,
    destination_lock: threading.Lock,
) -> RunResult:
    """Extract on its own, the destination steps in turn with the other accounts.

    dlt's ``run`` does all steps at once; here they are called one by one so that only the
    API reading overlaps between accounts (dlt keeps each thread's pipeline context apart).
    """
    started = time.monotonic()
    with destination_lock:
        before, pending = _catch_up(pipeline, account)
    options: dict[str, Any] = {"table_format": table_format} if table_format else {}
    extracted = pipeline.extract(source, **options)
    with destination_lock:
        normalized = pipeline.normalize()
        pipeline.load().raise_on_failed_jobs()
        after = count_rows(pipeline, account)
    return RunResult(
        rows_loaded={
            table: count
            for table, count in normalized.row_counts.items()
            if not table.startswith("_dlt")
        },
        metrics=extract_metrics(extracted) or {},
        rows_before=before,
        rows_after=after,
        elapsed=time.monotonic() - started,
        pending_loaded=pending,
        file_metrics=extract_metrics(extracted, FILES_TABLE_NAME),
    )


def _catch_up(pipeline: dlt.Pipeline, account: str) -> tuple[int | None, int]:
    """Read the state back from the destination and finish a load left pending."""
    try:
        pipeline.sync_destination()
    except Exception as error:
        raise DestinationError(error) from error
    check_table_fits(pipeline, account)
    pending = len(pipeline.list_extracted_load_packages()) + len(
        pipeline.list_normalized_load_packages()
    )
    if pending:
        pipeline.run()
    return count_rows(pipeline, account), pending
