-- activity_per_period.sql: how many tasks start, and how many hours are recorded, per day or week?
--
-- One row per (period, status_code) with any activity, oldest first: `period_start` is the
-- first day of the period, `period` says whether it is a 'day' or a 'week' (ISO weeks,
-- Monday to Sunday: used when the window spans more than 120 days, so that bars stay
-- readable over years), `tasks_started` the tasks whose StartTime falls in it (all statuses,
-- scheduled ones too, so periods ahead of today show what is planned) and `recorded_hours`
-- the recording time that falls in it (a task crossing midnight is split between the days).
-- Sum over status_code for a period's total. The per-day numbers are those of
-- tasks_started_per_day.sql and recorded_hours_per_day.sql.
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
-- Run:       duckdb -readonly volcengine_live.duckdb < sql/activity_per_period.sql
-- Dataset:   the `SET schema` line below names the dlt dataset; edit it if your pipeline
--            uses another dataset_name (the notebook substitutes its `dataset_name` there).
-- Time zone: days are calendar days in Asia/Shanghai (UTC+8, no daylight saving), where most
--            users of this API work; edit the `SET TimeZone` line for another zone, e.g. 'UTC'.
-- Now:       open tasks are clipped at now(); `SET VARIABLE as_of = TIMESTAMPTZ '...'` first
--            (e.g. with duckdb -cmd) to clip them at another instant.
-- Window:    optional `SET VARIABLE since = TIMESTAMPTZ '...'` and `until` keep the tasks
--            starting and the hours recorded in [since, until);
--            `SET VARIABLE period = 'day'` (or 'week') forces the period.
SET schema = 'volcengine_live_dataset';
SET TimeZone = 'Asia/Shanghai';

WITH clock AS (
    SELECT
        coalesce(getvariable('as_of')::TIMESTAMPTZ, date_trunc('second', now())) AS as_of,
        coalesce(getvariable('since')::TIMESTAMPTZ, '-infinity'::TIMESTAMPTZ) AS since,
        coalesce(getvariable('until')::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ) AS until
),
started AS (
    SELECT t.start_time::DATE AS day, t.status_code, count(*) AS tasks
    FROM (  -- a time outside 2000..2099 counts as missing: see time_out_of_range in data_quality.sql
        SELECT * REPLACE (if(year(timezone('UTC', start_time)) BETWEEN 2000 AND 2099, start_time, NULL) AS start_time,
                          if(year(timezone('UTC', end_time)) BETWEEN 2000 AND 2099, end_time, NULL) AS end_time)
        FROM pull_record_tasks) AS t
    CROSS JOIN clock AS c
    WHERE t.start_time >= c.since AND t.start_time < c.until
    GROUP BY day, t.status_code
),
recorded AS (
    SELECT
        t.task_id,
        t.status_code,
        greatest(t.start_time, c.since) AS rec_start,
        least(coalesce(t.end_time, c.as_of), coalesce(t.deleted_at, c.as_of), c.as_of, c.until)
            AS rec_end
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
    WHERE r.rec_end > r.rec_start
),
hours AS (
    SELECT day, status_code, sum(seconds) AS seconds
    FROM (
        SELECT
            day_start::DATE AS day,
            status_code,
            epoch(least(rec_end, day_start + INTERVAL 1 DAY))
                - epoch(greatest(rec_start, day_start)) AS seconds
        FROM task_days
    )
    WHERE seconds > 0
    GROUP BY day, status_code
),
days AS (
    SELECT
        coalesce(s.day, h.day) AS day,
        coalesce(s.status_code, h.status_code) AS status_code,
        coalesce(s.tasks, 0) AS tasks,
        coalesce(h.seconds, 0) AS seconds
    FROM started AS s
    FULL JOIN hours AS h ON h.day = s.day AND h.status_code IS NOT DISTINCT FROM s.status_code
),
grain AS (
    SELECT coalesce(
        getvariable('period')::VARCHAR,
        CASE WHEN max(day) - min(day) > 120 THEN 'week' ELSE 'day' END
    ) AS period
    FROM days
)
SELECT
    CASE g.period WHEN 'week' THEN date_trunc('week', d.day)::DATE ELSE d.day END
        AS period_start,
    g.period,
    d.status_code,
    sum(d.tasks)::BIGINT AS tasks_started,
    round(sum(d.seconds) / 3600, 2) AS recorded_hours
FROM days AS d
CROSS JOIN grain AS g
GROUP BY ALL
ORDER BY period_start, d.status_code;
