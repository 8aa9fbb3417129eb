"""``volcengine-live``: load Volcengine Live pull-recording tasks into DuckDB (or any dlt
destination) and print what the run did.

    volcengine-live                      # incremental run into ./volcengine_live.duckdb
    volcengine-live --since 2024-01-01   # backfill tasks starting on or after that day
    volcengine-live --demo               # against the bundled emulator, no account needed
    volcengine-live --all-accounts       # every [sources.volcengine_live.accounts.<name>]

Settings and credentials are read the dlt way (``.dlt/config.toml``, ``.dlt/secrets.toml``,
``SOURCES__VOLCENGINE_LIVE__...`` environment variables); command-line options win.

Exit codes:
    0   success
    1   unexpected error (run again with ``--log-level debug`` for the traceback)
    2   configuration or credentials missing or invalid (an unreadable .dlt/*.toml file, a
        malformed setting, an unknown --destination), or bad command-line arguments
    3   the API refused the request (credentials, permission, billing, parameters)
    4   transient API faults outlasted the retries, or the list kept changing under the scan
    5   the destination failed (loading, or reading the pipeline state back), or the
        pipeline's local working folder is damaged (the message names the folder to remove)
    75  another run of the same pipeline holds the lock (EX_TEMPFAIL): try again later
    130 interrupted

With ``--account`` / ``--all-accounts`` each account ends with one of these codes; the
command exits 0 when all loaded, else with the failed accounts' code (1 when they differ).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
import traceback
from datetime import datetime

from dlt.common.pipeline import get_dlt_pipelines_dir

from volcengine_live.settings import MAX_PAGE_SIZE
from volcengine_live.state import to_utc

from .accounts import run_accounts
from .run import (
    DATASET_NAME,
    DEMO_PIPELINE_NAME,
    DEMO_TASKS,
    PIPELINE_NAME,
    LockBusyError,
    build_pipeline,
    build_source,
    demo_endpoint,
    pipeline_lock,
    run_pipeline,
)
from .summary import (
    EXIT_CONFIG,
    EXIT_LOCKED,
    EXIT_OK,
    report_error,
    report_interrupted,
    report_lock_busy,
    summarise,
)

__all__ = ["EXIT_LOCKED", "main", "parse_args"]

PLAIN_NAME = re.compile(r"\w[\w-]{0,63}")
"""What ``--pipeline-name`` may be: one path component, no dot, quote or separator."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line; ``--since``/``--until`` are checked here so a typo fails at once."""
    parser = argparse.ArgumentParser(
        prog="volcengine-live",
        description="Load Volcengine Live pull-recording tasks (ListPullRecordTask) with dlt.",
        epilog="Exit codes: 0 ok, 1 unexpected error, 2 configuration/credentials, 3 API "
        "refused, 4 API faults outlasted the retries or incomplete scan, 5 destination "
        "failed or damaged pipeline folder, 75 another run holds the lock, 130 interrupted.",
    )
    _add_destination_arguments(parser)
    _add_window_arguments(parser)
    _add_account_arguments(parser)
    _add_run_arguments(parser)
    args = parser.parse_args(argv)
    _check_args(parser, args)
    return args


def _add_destination_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the rows go, and under which pipeline."""
    group = parser.add_argument_group("destination")
    group.add_argument(
        "--destination",
        metavar="NAME",
        help="any dlt destination, configured the dlt way (default: DuckDB file "
        "<pipeline-name>.duckdb in the working directory)",
    )
    group.add_argument(
        "--table-format",
        choices=["delta"],
        help="write Delta tables with the filesystem destination (merge needs them there)",
    )
    group.add_argument("--dataset-name", default=DATASET_NAME, metavar="NAME")
    group.add_argument(
        "--pipeline-name",
        metavar="NAME",
        help=f"default {PIPELINE_NAME} ({DEMO_PIPELINE_NAME} with --demo)",
    )


def _add_window_arguments(parser: argparse.ArgumentParser) -> None:
    """Which tasks to load: a backfill window, everything again, the page size."""
    group = parser.add_argument_group("what to load")
    group.add_argument(
        "--since",
        type=_iso_time,
        metavar="TIME",
        help="backfill tasks whose StartTime is at or after TIME (ISO 8601; naive is UTC); "
        "leaves the incremental state alone",
    )
    group.add_argument(
        "--until",
        type=_iso_time,
        metavar="TIME",
        help="backfill tasks whose StartTime is before TIME (alone: from the beginning)",
    )
    group.add_argument(
        "--full-refresh",
        action="store_true",
        help="drop the tables and the state of this source, then load everything again",
    )
    group.add_argument("--page-size", type=int, metavar="N", help=f"1 to {MAX_PAGE_SIZE}")
    group.add_argument(
        "--record-files",
        action="store_true",
        help="also load the files finished recordings left (DescribeRecordTaskFileHistory) "
        "into table record_files, for this run (as record_files = true under "
        "[sources.volcengine_live]); the report then shows what was recorded",
    )
    group.add_argument(
        "--demo",
        action="store_true",
        help=f"start the bundled API emulator with {DEMO_TASKS} tasks and load from it; "
        "needs no credentials",
    )


def _add_account_arguments(parser: argparse.ArgumentParser) -> None:
    """``--account NAME`` / ``--all-accounts`` (docs/accounts.md)."""
    accounts = parser.add_argument_group("accounts").add_mutually_exclusive_group()
    accounts.add_argument(
        "--account",
        metavar="NAME",
        help="load the account configured in [sources.volcengine_live.accounts.NAME], in "
        "pipeline <pipeline-name>_NAME, into the shared dataset",
    )
    accounts.add_argument(
        "--all-accounts",
        action="store_true",
        help="load every configured account at once, each in its own pipeline and at its own "
        "50 requests/s; one failing does not stop the others",
    )


def _add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """How the run behaves: progress, logging, dlt's folder, the pipeline lock."""
    group = parser.add_argument_group("running")
    group.add_argument(
        "--progress",
        choices=("log", "tqdm", "none"),
        help="progress display (default: tqdm on a terminal, log otherwise)",
    )
    group.add_argument(
        "--log-level",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"),
        help="log level of dlt and of this tool (default: WARNING, dlt's from [runtime] "
        "log_level); DEBUG also prints tracebacks",
    )
    group.add_argument(
        "--pipelines-dir",
        metavar="DIR",
        help="where dlt keeps pipeline state (default: dlt's, e.g. ~/.dlt/pipelines)",
    )
    group.add_argument(
        "--wait-for-lock",
        type=float,
        default=0.0,
        metavar="SECONDS",
        help="wait this long for a concurrent run of the same pipeline to finish (default 0)",
    )


def _check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What argparse cannot check alone; ``parser.error`` exits with code 2 and the usage."""
    if args.since and args.until and args.until <= args.since:
        parser.error("--until must be later than --since")
    if args.page_size is not None and not 1 <= args.page_size <= MAX_PAGE_SIZE:
        parser.error(f"--page-size must be between 1 and {MAX_PAGE_SIZE}")
    if (args.account or args.all_accounts) and (args.demo or args.full_refresh):
        parser.error(
            "--account/--all-accounts cannot be combined with "
            + ("--demo" if args.demo else "--full-refresh: it would drop every account's rows")
        )
    args.pipeline_name = args.pipeline_name or (DEMO_PIPELINE_NAME if args.demo else PIPELINE_NAME)
    if not PLAIN_NAME.fullmatch(args.pipeline_name):
        # the name becomes a folder and a lock file under --pipelines-dir: "../x" would put
        # them elsewhere, and a quote breaks DuckDB's loads from the folder
        parser.error(
            f"--pipeline-name {args.pipeline_name!r} is not a plain name: use letters, digits, "
            "_ and - (not starting with -), at most 64 characters"
        )


def _iso_time(value: str) -> datetime:
    try:
        moment = to_utc(value)
    except (TypeError, ValueError):
        moment = None
    if moment is None:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not an ISO 8601 time such as 2024-01-01 or 2024-01-01T00:00:00+08:00"
        )
    return moment


def configure_logging(level: str | None) -> None:
    """Python logging for this tool and the source; dlt's own level via RUNTIME__LOG_LEVEL."""
    if level:
        os.environ["RUNTIME__LOG_LEVEL"] = level
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("volcengine_live").setLevel(level or logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """Run the command; return the exit code (see the module docstring)."""
    arguments = sys.argv[1:] if argv is None else argv
    if arguments[:1] == ["report"]:
        from . import report  # matplotlib is imported only for the report

        return report.main(arguments[1:])
    try:
        args = parse_args(argv)
    except SystemExit as exit_:  # --help, or argparse's own usage error (code 2)
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else EXIT_CONFIG
    previous_level = os.environ.get("RUNTIME__LOG_LEVEL")
    configure_logging(args.log_level)
    debug = args.log_level == "DEBUG"
    pipelines_dir = args.pipelines_dir or get_dlt_pipelines_dir()
    try:
        if args.account or args.all_accounts:
            return run_accounts(args, pipelines_dir, sys.stdout, sys.stderr)
        with contextlib.ExitStack() as stack:
            stack.enter_context(
                pipeline_lock(pipelines_dir, args.pipeline_name, args.wait_for_lock)
            )
            overrides = stack.enter_context(demo_endpoint()) if args.demo else {}
            pipeline = build_pipeline(args)
            source = build_source(args, overrides)
            result = run_pipeline(pipeline, source, args.full_refresh, args.table_format)
            print(summarise(pipeline, result, backfill=bool(args.since or args.until)))
        return EXIT_OK
    except LockBusyError as busy:
        return report_lock_busy(args.pipeline_name, str(busy), sys.stderr)
    except KeyboardInterrupt:
        return report_interrupted(sys.stderr)
    except Exception as error:
        if debug:
            traceback.print_exception(error, file=sys.stderr)
        return report_error(error, sys.stderr)
    finally:
        if args.log_level:
            if previous_level is None:
                os.environ.pop("RUNTIME__LOG_LEVEL", None)
            else:
                os.environ["RUNTIME__LOG_LEVEL"] = previous_level
