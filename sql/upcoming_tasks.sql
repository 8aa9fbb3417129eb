-- upcoming_tasks.sql: which recordings are scheduled next?
--
-- One row per task with status 未开始 / not_started, soonest first: `starts_in` is the time
-- from now to its StartTime and `scheduled` its planned length. A negative `starts_in` means
-- the start has passed since the last load: its status is stale until the pipeline runs again.
--
-- Deleted:   tasks that left the API's list (deleted_at set) are left out.
-- Run:       duckdb -readonly volcengine_live.duckdb < sql/upcoming_tasks.sql
-- Dataset:   the `SET schema` line below names the dlt dataset; edit it if your pipeline
--            uses another dataset_name (the notebook substitutes its `dataset_name` there).
-- Time zone: times are shown in Asia/Shanghai (UTC+8, no daylight saving); edit the
--            `SET TimeZone` line for another zone, e.g. 'UTC'.
-- Now:       `starts_in` is measured from now(); `SET VARIABLE as_of = TIMESTAMPTZ '...'`
--            first (e.g. with duckdb -cmd) to measure it from another instant.
SET schema = 'volcengine_live_dataset';
SET TimeZone = 'Asia/Shanghai';

WITH clock AS (
    SELECT coalesce(getvariable('as_of')::TIMESTAMPTZ, date_trunc('second', now())) AS as_of
)
SELECT
    t.task_id,
    t.start_time,
    t.end_time,
    t.start_time - c.as_of AS starts_in,
    t.end_time - t.start_time AS scheduled,
    t.domain,
    t.app,
    t.stream,
    t.vhost
FROM (  -- a time outside 2000..2099 counts as missing: see time_out_of_range in data_quality.sql
    SELECT * REPLACE (if(year(timezone('UTC', start_time)) BETWEEN 2000 AND 2099, start_time, NULL) AS start_time,
                      if(year(timezone('UTC', end_time)) BETWEEN 2000 AND 2099, end_time, NULL) AS end_time)
    FROM pull_record_tasks) AS t
CROSS JOIN clock AS c
WHERE t.status_code = 'not_started' AND t.deleted_at IS NULL
ORDER BY t.start_time NULLS LAST, t.task_id;
