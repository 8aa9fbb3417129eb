"""``volcengine-live report``: the recording load as one self-contained HTML page.

    volcengine-live report                          # from the file the last run wrote
    volcengine-live report --duckdb volcengine_live_demo.duckdb --output demo.html
    volcengine-live report --since 2024-01-01 --until 2024-04-01

The page needs no Jupyter and no network to open: charts are PNG images embedded in it.
Every number comes from the files in ``sql/``, run unchanged but for their ``SET schema`` and
``SET TimeZone`` lines, so the page, the notebook and the ``duckdb`` command line agree.
The chart functions are shared with the notebook (``notebooks/pull_record_tasks_analysis.ipynb``).

Exit codes: 0 written, 1 unexpected error, 2 bad arguments, no DuckDB file, or the file lacks
the tables (the message names what is missing), 75 another process is writing the file.

Its parts, by job: ``queries`` (the SQL files and the data the page needs), ``dataset``
(opening and checking the DuckDB file), ``formatting``, ``charts`` (matplotlib figures and
label escaping), ``captions`` (a sentence under each chart), ``recordings`` (what was
recorded: the file history's coverage, shaped for the page and the notebook), ``page`` (HTML
and CSS) and ``command`` (options, exit codes, ``main``). What callers use is re-exported
here, so ``from volcengine_live_cli import report`` serves the command, the tests and the
notebook.
"""

from __future__ import annotations

from .captions import (
    activity_reading,
    concurrency_reading,
    coverage_reading,
    coverage_summary,
    heatmap_reading,
    missed_sentence,
    orphan_summary,
)
from .charts import (
    LABEL_CHARS,
    STATUS_COLORS,
    STATUS_ORDER,
    activity_figure,
    chart_label,
    concurrency_figure,
    coverage_figure,
    heatmap_figure,
    png,
)
from .command import main, parse_args, write_report
from .common import (
    DATASET_NAME,
    DEFAULT_FILES,
    EXIT_BUSY,
    EXIT_ERROR,
    EXIT_OK,
    EXIT_USAGE,
    OUTPUT,
    TIME_ZONE,
    ReportError,
    Row,
)
from .dataset import (
    REQUIRED_COLUMNS,
    default_duckdb_file,
    empty_tasks_table,
    file_history_note,
    open_dataset,
)
from .formatting import CELL_CHARS, cell, duration, local, plural, shorten, when
from .page import render_html
from .queries import (
    SQL_DIR,
    SQL_PACKAGE,
    STALE_AFTER,
    ReportData,
    collect,
    fetch_rows,
    prepare_sql,
    run_sql,
    sql_text,
)
from .recordings import (
    FILES_TABLE,
    MISSED_KINDS,
    NOT_LOADED,
    coverage_counts,
    coverage_per_period,
    missed_recordings,
    where_the_time_went,
)

__all__ = [
    "CELL_CHARS",
    "DATASET_NAME",
    "DEFAULT_FILES",
    "EXIT_BUSY",
    "EXIT_ERROR",
    "EXIT_OK",
    "EXIT_USAGE",
    "FILES_TABLE",
    "LABEL_CHARS",
    "MISSED_KINDS",
    "NOT_LOADED",
    "OUTPUT",
    "REQUIRED_COLUMNS",
    "SQL_DIR",
    "SQL_PACKAGE",
    "STALE_AFTER",
    "STATUS_COLORS",
    "STATUS_ORDER",
    "TIME_ZONE",
    "ReportData",
    "ReportError",
    "Row",
    "activity_figure",
    "activity_reading",
    "cell",
    "chart_label",
    "collect",
    "concurrency_figure",
    "concurrency_reading",
    "coverage_counts",
    "coverage_figure",
    "coverage_per_period",
    "coverage_reading",
    "coverage_summary",
    "default_duckdb_file",
    "duration",
    "empty_tasks_table",
    "fetch_rows",
    "file_history_note",
    "heatmap_figure",
    "heatmap_reading",
    "local",
    "main",
    "missed_recordings",
    "missed_sentence",
    "open_dataset",
    "orphan_summary",
    "parse_args",
    "plural",
    "png",
    "prepare_sql",
    "render_html",
    "run_sql",
    "shorten",
    "sql_text",
    "when",
    "where_the_time_went",
    "write_report",
]
