"""Reading back what a run of ``pull_record_tasks`` counted (rows read and written,
passes, requests, retries...), or of ``record_files`` (windows, files listed, requests),
for a summary, a test or a scheduler's log."""

from __future__ import annotations

from typing import Any

import dlt

from volcengine_live.settings import TABLE_NAME


def last_run_metrics(pipeline: dlt.Pipeline, resource: str = TABLE_NAME) -> dict[str, Any] | None:
    """The resource's custom metrics from the pipeline's last extract step, or ``None``
    when that step did not run the resource (nothing extracted, no trace, or not selected:
    ``record_files`` is off by default)."""
    trace = pipeline.last_trace
    return extract_metrics(trace.last_extract_info if trace is not None else None, resource)


def extract_metrics(extract: Any, resource: str = TABLE_NAME) -> dict[str, Any] | None:
    """The resource's custom metrics from an extract step's info (``pipeline.extract()``
    returns it), or ``None`` when that step did not run the resource."""
    if extract is None:
        return None
    for per_load in extract.metrics.values():
        for step in per_load:
            found = step["resource_metrics"].get(resource)
            if found is not None:
                return dict(found.custom_metrics)
    return None
