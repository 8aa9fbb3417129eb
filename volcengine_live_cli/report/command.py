"""``volcengine-live report``'s command line: its options, the file it writes, and its exit
codes (0 written, 1 unexpected error, 2 bad arguments, no DuckDB file, or the file lacks the
tables, 75 another process is writing the file)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb

from .common import (
    DATASET_NAME,
    DEFAULT_FILES,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    OUTPUT,
    TIME_ZONE,
    ReportError,
)
from .dataset import default_duckdb_file, open_dataset
from .formatting import plural
from .page import render_html
from .queries import ReportData, collect


def write_report(
    duckdb_path: Path | str | None = None,
    output: Path | str = OUTPUT,
    *,
    dataset_name: str = DATASET_NAME,
    time_zone: str = TIME_ZONE,
    since: datetime | None = None,
    until: datetime | None = None,
    as_of: datetime | None = None,
) -> ReportData:
    """Write the report of the DuckDB file ``duckdb_path`` (default: the one the last run
    wrote here) to ``output``; return what it shows. :class:`ReportError` when it cannot."""
    try:
        ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ReportError(
            f"Unknown time zone {time_zone!r} (use a name like Asia/Shanghai)."
        ) from error
    if since and until and until <= since:
        raise ReportError("--until must be later than --since")
    path = Path(duckdb_path) if duckdb_path is not None else default_duckdb_file()
    with open_dataset(path, dataset_name) as con:
        try:
            data = collect(
                con,
                source=f"DuckDB file {path.name}",
                dataset_name=dataset_name,
                time_zone=time_zone,
                as_of=as_of,
                since=since,
                until=until,
            )
        except duckdb.NotImplementedException as error:
            raise ReportError(
                f"DuckDB does not accept the time zone {time_zone!r}: {error}"
            ) from error
    page = render_html(data)
    Path(output).write_text(page, encoding="utf-8")
    return data


def _time(value: str) -> datetime:
    """ISO 8601 date or time; naive ones are in UTC, as for the loading command."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="volcengine-live report",
        description="Write one self-contained HTML page (charts embedded, no network needed) "
        "about the recording tasks in a DuckDB file the pipeline loaded.",
        epilog="Exit codes: 0 written, 1 unexpected error, 2 bad arguments, no file, or tables "
        "missing, 75 the file is being written.",
    )
    parser.add_argument(
        "--duckdb",
        metavar="FILE",
        type=Path,
        help=f"the DuckDB file (default: the last written of {', '.join(DEFAULT_FILES)} "
        "in the working directory)",
    )
    parser.add_argument("--dataset-name", default=DATASET_NAME, metavar="NAME")
    parser.add_argument(
        "--output",
        default=OUTPUT,
        metavar="FILE",
        type=Path,
        help=f"the HTML file to write (default {OUTPUT})",
    )
    parser.add_argument(
        "--since",
        type=_time,
        metavar="TIME",
        help="charts and top lists from TIME (ISO 8601; naive is UTC)",
    )
    parser.add_argument(
        "--until", type=_time, metavar="TIME", help="charts and top lists before TIME"
    )
    parser.add_argument(
        "--timezone",
        default=TIME_ZONE,
        metavar="ZONE",
        help=f"days, hours and times in this zone (default {TIME_ZONE}, as the SQL)",
    )
    parser.add_argument(
        "--as-of", type=_time, metavar="TIME", help="see the data as of TIME instead of now"
    )
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    """``volcengine-live report [options]``; return the exit code."""
    try:
        args = parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else EXIT_USAGE
    try:
        data = write_report(
            args.duckdb,
            args.output,
            dataset_name=args.dataset_name,
            time_zone=args.timezone,
            since=args.since,
            until=args.until,
            as_of=args.as_of,
        )
    except ReportError as error:
        print(f"volcengine-live report: {error} (exit code {error.code})", file=sys.stderr)
        return error.code
    except Exception as error:
        print(
            f"volcengine-live report: unexpected error: {type(error).__name__}: {error} "
            f"(exit code {EXIT_ERROR})",
            file=sys.stderr,
        )
        return EXIT_ERROR
    tasks = int(data.summary["tasks"] or 0)
    print(
        f"Report: {args.output} ({plural(tasks, 'task')}, {data.source}, dataset "
        f"{data.dataset_name}); open it in a browser."
    )
    for warning in data.warnings:
        print(f"Warning: {warning}")
    return EXIT_OK
