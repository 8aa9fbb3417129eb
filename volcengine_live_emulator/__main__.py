"""Command line: ``python -m volcengine_live_emulator`` (or ``volcengine-live-emulator``).

Prints the endpoint (``http://HOST:PORT``) as the first line of stdout, then serves until
SIGINT or SIGTERM. Everything the Python API controls is also reachable over HTTP under
``/_emulator/`` (see :mod:`volcengine_live_emulator.control`).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from .data import parse_rfc3339
from .emulator import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_RATE_LIMIT,
    DEFAULT_SECRET_ACCESS_KEY,
    Emulator,
)
from .faults import ENVELOPE_KINDS, OTHER_KINDS
from .hostile import HostileData, make_hostile
from .store import DEFAULT_CACHE_ROWS, DEFAULT_LIST_ORDER, LIST_ORDERS


def _rate(value: str) -> float | None:
    if value.strip().lower() in ("none", "off", "0", "unlimited"):
        return None
    rate = float(value)
    if rate <= 0:
        raise argparse.ArgumentTypeError("rate limit must be positive, or 'none'")
    return rate


def _credential(value: str) -> tuple[str, str, str | None]:
    parts = value.split(":")
    if len(parts) not in (2, 3) or not all(parts[:2]):
        raise argparse.ArgumentTypeError("expected AK:SK or AK:SK:SESSION_TOKEN")
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def _key_rate(value: str) -> tuple[str, float | None]:
    name, sep, rate = value.rpartition(":")
    if not sep or not name:
        raise argparse.ArgumentTypeError("expected AK:RATE (RATE a number or 'none')")
    return name, _rate(rate)


def _account(value: str) -> tuple[str, str]:
    key, sep, account = value.partition(":")
    if not sep or not key or not account:
        raise argparse.ArgumentTypeError("expected AK:ACCOUNT")
    return key, account


def _moment(value: str) -> float:
    parsed = parse_rfc3339(value)
    if parsed is not None:
        return parsed
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected RFC 3339 or epoch seconds") from None


def build_parser() -> argparse.ArgumentParser:
    kinds = "\n".join(
        [f"  {kind:<24} {code}" for kind, code in ENVELOPE_KINDS.items()]
        + [f"  {kind:<24} {text}" for kind, text in OTHER_KINDS.items()]
    )
    parser = argparse.ArgumentParser(
        prog="volcengine-live-emulator",
        description="Local emulator of Volcengine Live ListPullRecordTask (2023-01-01).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "fault SPEC: kind[:key=value,...], e.g. common_err:times=3, stall:seconds=5,page=2,\n"
            "error:code=AccessDenied, internal_error:probability=0.05,times=none\n"
            f"fault kinds:\n{kinds}"
        ),
    )
    server = parser.add_argument_group("server")
    server.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1)")
    server.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    _add_data_arguments(parser)
    _add_credential_arguments(parser)
    _add_limit_arguments(parser)
    faults = parser.add_argument_group("faults")
    faults.add_argument(
        "--fault", action="append", default=[], metavar="SPEC", help="queue a fault (repeatable)"
    )
    faults.add_argument("--fault-seed", type=int, help="seed of probabilistic faults")
    _add_change_arguments(parser)
    return parser


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    """The tasks served, and how the list is ordered and kept in memory."""
    group = parser.add_argument_group("data")
    group.add_argument("--tasks", type=int, default=1000, help="generated tasks (default 1000)")
    group.add_argument("--seed", type=int, default=7, help="data seed (default 7)")
    group.add_argument("--now", type=_moment, help="anchor time of the data (default: now)")
    group.add_argument(
        "--cache-rows",
        type=int,
        default=DEFAULT_CACHE_ROWS,
        help=f"serialised rows kept in memory (default {DEFAULT_CACHE_ROWS:,}, ~290 B each)",
    )
    group.add_argument(
        "--list-order",
        choices=LIST_ORDERS,
        default=DEFAULT_LIST_ORDER,
        help=f"how the list is served (default {DEFAULT_LIST_ORDER})",
    )
    group.add_argument("--order-seed", type=int, help="seed of the random/unstable orders")
    group.add_argument(
        "--prerender",
        type=int,
        metavar="PAGE_SIZE",
        help="render every page of PAGE_SIZE rows at start and serve them from memory",
    )
    group.add_argument(
        "--hostile-data",
        metavar="SPEC",
        help="serve hostile records: listed_twice=N,extra_fields=N,odd_times=N,nul_task_ids=N"
        "[,seed=S] (see hostile.py)",
    )


def _add_credential_arguments(parser: argparse.ArgumentParser) -> None:
    """The keys accepted, and whether signatures are checked at all."""
    group = parser.add_argument_group("credentials")
    group.add_argument("--access-key-id", default=DEFAULT_ACCESS_KEY_ID)
    group.add_argument("--secret-access-key", default=DEFAULT_SECRET_ACCESS_KEY)
    group.add_argument("--session-token", help="make the main key an STS key needing this token")
    group.add_argument(
        "--credential",
        action="append",
        type=_credential,
        default=[],
        metavar="AK:SK[:TOKEN]",
        help="accept another key pair (repeatable)",
    )
    group.add_argument(
        "--no-verify-signatures",
        dest="verify_signatures",
        action="store_false",
        help="accept requests without checking their signature (benchmarks)",
    )


def _add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """Latency and rate limits: per key, per account, and how a 429 says when to retry."""
    group = parser.add_argument_group("latency and rate limits")
    group.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    group.add_argument("--latency-jitter", type=float, default=0.0, help="extra random seconds")
    group.add_argument(
        "--rate-limit",
        type=_rate,
        default=DEFAULT_RATE_LIMIT,
        metavar="R|none",
        help=f"requests/s per access key (default {DEFAULT_RATE_LIMIT:g})",
    )
    group.add_argument("--retry-after", type=float, help="send Retry-After with 429s")
    group.add_argument(
        "--key-rate-limit",
        action="append",
        type=_key_rate,
        default=[],
        metavar="AK:R|none",
        help="a rate limit of this key's (or account's) own (repeatable)",
    )
    group.add_argument(
        "--account",
        action="append",
        type=_account,
        default=[],
        metavar="AK:ACCOUNT",
        help="count this key in ACCOUNT's rate-limit window (repeatable)",
    )


def _add_change_arguments(parser: argparse.ArgumentParser) -> None:
    """A list that changes while it is read: tasks created and removed as time or pages go."""
    group = parser.add_argument_group("a changing list")
    group.add_argument("--grow-per-second", type=float, help="create tasks at this rate")
    group.add_argument("--grow-per-request", type=int, help="create N tasks per page request")
    group.add_argument(
        "--grow-start-ahead",
        type=float,
        default=60.0,
        help="seconds after now that grown tasks start (default 60)",
    )
    group.add_argument("--shrink-per-second", type=float, help="remove the oldest at this rate")
    group.add_argument("--shrink-per-request", type=int, help="remove N oldest per request")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the emulator until SIGINT/SIGTERM; returns the exit status."""
    args = build_parser().parse_args(argv)
    emulator = Emulator(
        tasks=args.tasks,
        seed=args.seed,
        access_key_id=args.access_key_id,
        secret_access_key=args.secret_access_key,
        latency=args.latency,
        rate_limit=args.rate_limit,
        host=args.host,
        port=args.port,
        session_token=args.session_token,
        latency_jitter=args.latency_jitter,
        retry_after=args.retry_after,
        now=args.now,
        fault_seed=args.fault_seed,
        cache_rows=args.cache_rows,
        key_rate_limits=dict(args.key_rate_limit),
        accounts=dict(args.account),
        prerender=args.prerender,
        verify_signatures=args.verify_signatures,
    )
    problem = _configure(emulator, args)
    if problem:
        print(f"volcengine-live-emulator: {problem}", file=sys.stderr)
        return 2
    _serve(emulator, args)
    return 0


def _configure(emulator: Emulator, args: argparse.Namespace) -> str | None:
    """The list order, hostile data, extra keys and faults; what is wrong with the options,
    or None."""
    emulator.store.set_list_order(args.list_order, seed=args.order_seed)
    if args.hostile_data is not None:
        try:
            make_hostile(emulator.store, HostileData.parse(args.hostile_data))
        except ValueError as exc:
            return f"--hostile-data: {exc}"
    for access_key_id, secret, token in args.credential:
        emulator.add_credentials(access_key_id, secret, token)
    try:
        for spec in args.fault:
            emulator.faults.add_spec(spec)
    except ValueError as exc:
        return f"--fault: {exc}"
    for name, rate in (
        ("--grow-per-second", args.grow_per_second),
        ("--grow-per-request", args.grow_per_request),
        ("--shrink-per-second", args.shrink_per_second),
        ("--shrink-per-request", args.shrink_per_request),
    ):
        if rate is not None and rate <= 0:
            return f"{name} must be positive"
    return None


def _serve(emulator: Emulator, args: argparse.Namespace) -> None:
    """Serve, start the list's changes, print the endpoint; stop on SIGINT or SIGTERM."""
    done = threading.Event()

    def _stop(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    emulator.start()  # renders the pages first with --prerender
    # Flows start with serving, so a wall-clock rate counts from the first line of output.
    if args.grow_per_second is not None or args.grow_per_request is not None:
        emulator.store.grow(
            args.grow_per_second,
            per_request=args.grow_per_request,
            start_ahead=args.grow_start_ahead,
        )
    if args.shrink_per_second is not None or args.shrink_per_request is not None:
        emulator.store.shrink(args.shrink_per_second, per_request=args.shrink_per_request)
    print(emulator.endpoint, flush=True)
    try:
        while not done.wait(0.5):
            pass
    finally:
        emulator.stop()


if __name__ == "__main__":
    sys.exit(main())
