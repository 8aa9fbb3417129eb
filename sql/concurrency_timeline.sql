-- concurrency_timeline.sql: how many tasks record at once, over time?
--
-- One row per instant where a recording starts or ends, in time order: `concurrent` is the
-- number of tasks recording from that instant until the next row (a step function);
-- `starts` / `ends` are the events at that instant. A last row at now (starts = ends = 0)
-- carries the current level when tasks are still recording or the last event is older.
--
-- How it is computed: an event sweep, +1 at each recording's start and -1 at its end, summed
-- in time order. All events of one instant are applied together, ends before starts, so a
-- task ending at 12:00 and another starting at 12:00 are one recording at 12:00, never two.
-- Intervals are half-open, [start, end). A task still recording has no end event yet.
--
-- What counts as recorded (the same in every recorded_* and concurrency_* file): each task
-- except not_started ones (unknown statuses included), from StartTime to EndTime, clipped instant
-- now for tasks still recording (and for any EndTime still ahead). Left out: tasks with no
-- start, an end not after the start, or no end unless they are recording (data_quality.sql
-- counts them). Stopped (停用) tasks count to their scheduled EndTime because the API gives no
-- stop time, so the level is an upper bound where stopped tasks are involved.
--
-- Deleted:   a task that left the API's list (deleted_at set) still counts: a finished task
--            purged later still happened; one deleted while recording counts up to its
--            deleted_at, and is never recording "now".
-- Run:       duckdb -readonly volcengine_live.duckdb < sql/concurrency_timeline.sql
-- Dataset:   the `SET schema` line below names the dlt dataset; edit it if your pipeline
--            uses another dataset_name (the notebook substitutes its `dataset_name` there).
-- Time zone: instants are shown in Asia/Shanghai (UTC+8, no daylight saving); edit the
--            `SET TimeZone` line for another zone, e.g. 'UTC'.
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
        t.start_time AS rec_start,
        least(coalesce(t.end_time, c.as_of), coalesce(t.deleted_at, c.as_of), c.as_of) AS rec_end,
        (t.end_time IS NULL OR t.end_time > c.as_of)
            AND (t.deleted_at IS NULL OR t.deleted_at > c.as_of) AS still_open
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
events AS (
    SELECT rec_start AS instant, 1 AS delta FROM recorded
    UNION ALL
    SELECT rec_end AS instant, -1 AS delta FROM recorded WHERE NOT still_open
),
instants AS (
    -- The sweep, one instant at a time: its ends and starts are applied together.
    SELECT
        instant,
        count(*) FILTER (WHERE delta = 1) AS starts,
        count(*) FILTER (WHERE delta = -1) AS ends
    FROM events
    GROUP BY instant
),
timeline AS (
    SELECT instant, starts, ends, sum(starts - ends) OVER (ORDER BY instant) AS concurrent
    FROM instants
)
SELECT instant, starts, ends, concurrent::BIGINT AS concurrent
FROM timeline
UNION ALL
SELECT c.as_of, 0, 0, (SELECT sum(starts - ends) FROM instants)::BIGINT
FROM clock AS c
WHERE c.as_of > (SELECT max(instant) FROM instants)
ORDER BY instant;
