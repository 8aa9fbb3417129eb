"""The ``volcengine-live`` command: runs the source into DuckDB (or any dlt destination),
prints what the run did, loads several accounts at once, and writes the report.

Installed with the ``cli`` extra (``pip install "volcengine-live-dlt[cli]"``): the source
alone (``volcengine_live``) needs none of this package's dependencies (matplotlib, tqdm,
DuckDB's command line).
"""
