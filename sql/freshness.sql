-- freshness.sql: how current is the data, and what is in it?
--
-- Two results:
--   1. One row: when the last successful dlt load finished (`last_loaded_at`, from
--      `_dlt_loads` rows with status 0), its load id, how many loads succeeded, how old the
--      data is now (`data_age`) and how many tasks the table holds.
--   2. Tasks by status, as the API wrote it (`status`, Chinese) next to the English
--      `status_code`; `pct` is the share of all tasks. A status the source did not know shows
--      up with status_code `unknown`.
-- Task statuses are as of the last load: the API has no change feed, so a task that started
-- since then still shows 未开始 / not_started until the pipeline runs again.
--
-- Deleted:   tasks that left the API's list (deleted_at set) are counted: a task that ran
--            and was purged later still happened.
-- Run:       duckdb -readonly volcengine_live.duckdb < sql/freshness.sql
-- Dataset:   the `SET schema` line below names the dlt dataset; edit it if your pipeline
--            uses another dataset_name (the notebook substitutes its `dataset_name` there).
-- Time zone: times are shown in Asia/Shanghai (UTC+8, no daylight saving); edit the
--            `SET TimeZone` line for another zone, e.g. 'UTC'.
-- Now:       `data_age` is measured to now(); `SET VARIABLE as_of = TIMESTAMPTZ '...'` first
--            (e.g. with duckdb -cmd) to measure it to another instant.
SET schema = 'volcengine_live_dataset';
SET TimeZone = 'Asia/Shanghai';

WITH clock AS (
    SELECT coalesce(getvariable('as_of')::TIMESTAMPTZ, date_trunc('second', now())) AS as_of
),
done AS (
    SELECT load_id, inserted_at FROM _dlt_loads WHERE status = 0
)
SELECT
    (SELECT max(inserted_at) FROM done) AS last_loaded_at,
    (SELECT arg_max(load_id, inserted_at) FROM done) AS last_load_id,
    (SELECT count(*) FROM done) AS successful_loads,
    clock.as_of - (SELECT max(inserted_at) FROM done) AS data_age,
    (SELECT count(*) FROM pull_record_tasks) AS tasks
FROM clock;

SELECT
    status,
    status_code,
    count(*) AS tasks,
    round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS pct
FROM pull_record_tasks
GROUP BY status, status_code
ORDER BY tasks DESC, status_code, status;
