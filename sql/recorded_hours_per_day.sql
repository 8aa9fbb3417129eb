-- recorded_hours_per_day.sql: how many hours are recorded each day?
--
-- One row per (day, status_code): `recorded_hours` is the recording time that falls on that
-- calendar day and `tasks` the number of tasks recording at some point of it. A task that
-- crosses midnight is split: 23:00-01:00 puts 1 hour on each day. Sum over status_code for
-- the day's total.
--
-- What counts as recorded (the same in every recorded_* and concurrency_* file): each task
-- except not_started ones (unknown statuses included), from StartTime to EndTime, clipped at
-- now for tasks still recording (and for any EndTime still ahead). Left out: tasks with no
-- start, an end not after the start, or no end unless they are recording (data_quality.sql
-- counts them). Stopped (停用) tasks count to their scheduled EndTime because the API gives no
-- stop time: read their hours as an upper bound, or filter on status_code.
--
-- Deleted:   a task that left the API's list (deleted_at set) still counts: a finished task
--            purged later still happened; one deleted while recording counts up to its
--            deleted_at, and is never recording "now".
-- Run:       duckdb -readonly volcengine_live.duckdb < sql/recorded_hours_per_day.sql
-- Dataset:   the `SET schema` line below names the dlt dataset; edit it if your pipeline
--            uses another dataset_name (the notebook substitutes its `dataset_name` there).
-- Time zone: days are calendar days in Asia/Shanghai (UTC+8, no daylight saving), where most
--            users of this API work; edit the `SET TimeZone` line for another zone, e.g. 'UTC'.
-- Now:       open tasks are clipped at now(); `SET VARIABLE as_of = TIMESTAMPTZ '...'` first
--            (e.g. with duckdb -cmd) to clip them at another instant.
SET schema = 'volcengine_live_dataset';
SET TimeZone = 'Asia/Shanghai';

WITH clock AS (
    SELECT coalesce(getvariable('as_of')::TIMESTAMPTZ, date_trunc('second', now())) AS as_of
),
recorded AS (
    SELECT
        t.task_id,
        t.status_code,
        t.start_time AS rec_start,
        least(coalesce(t.end_time, c.as_of), coalesce(t.deleted_at, c.as_of), c.as_of) AS rec_end
    FROM (  -- a time outside 2000..2099 counts as missing: see time_out_of_range in data_quality.sql
        SELECT * REPLACE (if(year(timezone('UTC', start_time)) BETWEEN 2000 AND 2099, start_time, NULL) AS start_time,
                          if(year(timezone('UTC', end_time)) BETWEEN 2000 AND 2099, end_time, NULL) AS end_time)
        FROM pull_record_tasks) AS t
    CROSS JOIN clock AS c
    WHERE t.status_code IS DISTINCT FROM 'not_started'
      AND t.start_time < c.as_of
      AND (t.end_time > t.start_time OR (t.end_time IS NULL AND t.status_code = 'recording'))
      AND (t.deleted_at IS NULL OR t.deleted_at > t.start_time)
),
task_days AS (
    -- One row per task and local calendar day it touches.
    SELECT
        r.*,
        unnest(generate_series(date_trunc('day', r.rec_start), r.rec_end, INTERVAL 1 DAY))
            AS day_start
    FROM recorded AS r
),
pieces AS (
    SELECT
        day_start::DATE AS day,
        status_code,
        task_id,
        epoch(least(rec_end, day_start + INTERVAL 1 DAY))
            - epoch(greatest(rec_start, day_start)) AS seconds
    FROM task_days
)
SELECT
    day,
    status_code,
    count(DISTINCT task_id) AS tasks,
    round(sum(seconds) / 3600, 2) AS recorded_hours
FROM pieces
WHERE seconds > 0
GROUP BY day, status_code
ORDER BY day, status_code;
