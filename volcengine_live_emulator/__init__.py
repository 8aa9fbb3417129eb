"""A local emulator of Volcengine Live's ``ListPullRecordTask`` API, for tests, benchmarks and
demos: signed requests, the documented envelopes and error codes, the rate limit, a seeded
task list that scales to millions, and controls for latency, faults and data changes.

>>> from volcengine_live_emulator import Emulator
>>> with Emulator(tasks=1000, seed=7) as emu:
...     print(emu.endpoint)
"""

from .answers import Response
from .api import ACTION, MAX_PAGE_SIZE, VERSION, parse_page_request
from .data import FINISHED, NOT_STARTED, RECORDING, STATUSES, STOPPED, TaskGenerator
from .emulator import (
    DEFAULT_ACCESS_KEY_ID,
    DEFAULT_RATE_LIMIT,
    DEFAULT_SECRET_ACCESS_KEY,
    Emulator,
)
from .errors import KNOWN_ERRORS, ApiFailure
from .faults import FAULT_KINDS, Fault, FaultQueue
from .stats import Stats
from .store import DEFAULT_LIST_ORDER, LIST_ORDERS, REMOVE, TASK_FIELDS, TaskStore

__all__ = [
    "ACTION",
    "DEFAULT_ACCESS_KEY_ID",
    "DEFAULT_LIST_ORDER",
    "DEFAULT_RATE_LIMIT",
    "DEFAULT_SECRET_ACCESS_KEY",
    "FAULT_KINDS",
    "FINISHED",
    "KNOWN_ERRORS",
    "LIST_ORDERS",
    "MAX_PAGE_SIZE",
    "NOT_STARTED",
    "RECORDING",
    "REMOVE",
    "STATUSES",
    "STOPPED",
    "TASK_FIELDS",
    "VERSION",
    "ApiFailure",
    "Emulator",
    "Fault",
    "FaultQueue",
    "Response",
    "Stats",
    "TaskGenerator",
    "TaskStore",
    "parse_page_request",
]
