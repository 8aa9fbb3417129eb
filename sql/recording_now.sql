-- recording_now.sql: which tasks are recording now?
--
-- One row per task with status 生效中 / recording at the last load, ending soonest first:
-- `recording_for` is the time since its StartTime and `ends_in` the time left to its EndTime.
-- A negative `ends_in` means it should have ended since the last load: its status is stale
-- until the pipeline runs again. Statuses are as of the last load (see freshness.sql).
--
-- Deleted:   tasks that left the API's list (deleted_at set) are left out.
-- Run:       duckdb -readonly volcengine_live.duckdb < sql/recording_now.sql
-- Dataset:   the `SET schema` line below names the dlt dataset; edit it if your pipeline
--            uses another dataset_name (the notebook substitutes its `dataset_name` there).
-- Time zone: times are shown in Asia/Shanghai (UTC+8, no daylight saving); edit the
--            `SET TimeZone` line for another zone, e.g. 'UTC'.
-- Now:       durations are measured from now(); `SET VARIABLE as_of = TIMESTAMPTZ '...'`
--            first (e.g. with duckdb -cmd) to measure them from another instant.
SET schema = 'volcengine_live_dataset';
SET TimeZone = 'Asia/Shanghai';

WITH clock AS (
    SELECT coalesce(getvariable('as_of')::TIMESTAMPTZ, date_trunc('second', now())) AS as_of
)
SELECT
    t.task_id,
    t.start_time,
    t.end_time,
    c.as_of - t.start_time AS recording_for,
    t.end_time - c.as_of AS ends_in,
    t.domain,
    t.app,
    t.stream,
    t.vhost
FROM (  -- a time outside 2000..2099 counts as missing: see time_out_of_range in data_quality.sql
    SELECT * REPLACE (if(year(timezone('UTC', start_time)) BETWEEN 2000 AND 2099, start_time, NULL) AS start_time,
                      if(year(timezone('UTC', end_time)) BETWEEN 2000 AND 2099, end_time, NULL) AS end_time)
    FROM pull_record_tasks) AS t
CROSS JOIN clock AS c
WHERE t.status_code = 'recording' AND t.deleted_at IS NULL
ORDER BY t.end_time NULLS LAST, t.task_id;
