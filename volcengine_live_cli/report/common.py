"""What every part of the report shares: its defaults, exit codes and error."""

from __future__ import annotations

from typing import Any

DATASET_NAME = "volcengine_live_dataset"
TIME_ZONE = "Asia/Shanghai"
OUTPUT = "volcengine_live_report.html"
DEFAULT_FILES = ("volcengine_live.duckdb", "volcengine_live_demo.duckdb")
"""What ``volcengine-live`` and ``volcengine-live --demo`` write in the working directory
(``<pipeline-name>.duckdb``); the report reads the one written last."""

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_BUSY = 75

Row = dict[str, Any]


class ReportError(Exception):
    """A report that cannot be made, with the exit code and a message saying why."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code
