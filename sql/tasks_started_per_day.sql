-- tasks_started_per_day.sql: how many tasks start each day, by status?
--
-- One row per (day, status_code) with at least one task: `tasks` is the number of tasks whose
-- StartTime falls on that calendar day. All statuses count, scheduled (not_started) ones
-- too, so days ahead of today show what is planned. Tasks without a start time are left out
-- (data_quality.sql counts them).
--
-- Deleted:   tasks that left the API's list (deleted_at set) are counted: a task that ran
--            and was purged later still happened.
-- Run:       duckdb -readonly volcengine_live.duckdb < sql/tasks_started_per_day.sql
-- Dataset:   the `SET schema` line below names the dlt dataset; edit it if your pipeline
--            uses another dataset_name (the notebook substitutes its `dataset_name` there).
-- Time zone: days are calendar days in Asia/Shanghai (UTC+8, no daylight saving), where most
--            users of this API work; edit the `SET TimeZone` line for another zone, e.g. 'UTC'.
SET schema = 'volcengine_live_dataset';
SET TimeZone = 'Asia/Shanghai';

SELECT
    start_time::DATE AS day,
    status_code,
    string_agg(DISTINCT status, ', ' ORDER BY status) AS status,
    count(*) AS tasks
FROM (  -- a time outside 2000..2099 counts as missing: see time_out_of_range in data_quality.sql
    SELECT * REPLACE (if(year(timezone('UTC', start_time)) BETWEEN 2000 AND 2099, start_time, NULL) AS start_time,
                      if(year(timezone('UTC', end_time)) BETWEEN 2000 AND 2099, end_time, NULL) AS end_time)
    FROM pull_record_tasks) AS pull_record_tasks
WHERE start_time IS NOT NULL
GROUP BY day, status_code
ORDER BY day, status_code;
