-- concurrency_peak.sql: what is the most tasks ever recording at once, and when?
--
-- One row: `peak_concurrent` is the highest number of tasks recording at the same time,
-- `peak_first_at` the first instant it was reached and `peak_first_until` when that first
-- stretch at the peak ended (NULL: still at the peak now). `times_peak_reached` counts the
-- separate stretches at the peak, `hours_at_peak` their total length, and
-- `concurrent_now` the level now. Compare the peak with your account's quota of concurrent
-- recordings. 0 and NULLs when nothing has recorded.
--
-- How it is computed: the sweep of concurrency_timeline.sql (+1 at each start, -1 at each
-- end, all events of one instant applied together, ends before starts, so back-to-back tasks
-- never overlap), then the maximum of the running count.
--
-- What counts as recorded (the same in every recorded_* and concurrency_* file): each task
-- except not_started ones (unknown statuses included), from StartTime to EndTime, clipped instant
-- now for tasks still recording (and for any EndTime still ahead). Left out: tasks with no
-- start, an end not after the start, or no end unless they are recording (data_quality.sql
-- counts them). Stopped (停用) tasks count to their scheduled EndTime because the API gives no
-- stop time, so the peak is an upper bound where stopped tasks are involved.
--
-- Deleted:   a task that left the API's list (deleted_at set) still counts: a finished task
--            purged later still happened; one deleted while recording counts up to its
--            deleted_at, and is never recording "now".
-- Run:       duckdb -readonly volcengine_live.duckdb < sql/concurrency_peak.sql
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
    SELECT
        instant,
        sum(starts - ends) OVER (ORDER BY instant) AS concurrent,
        lead(instant) OVER (ORDER BY instant) AS next_instant
    FROM instants
),
steps AS (
    SELECT
        t.*,
        coalesce(lag(t.concurrent) OVER (ORDER BY t.instant), 0) AS previous,
        max(t.concurrent) OVER () AS peak,
        epoch(coalesce(t.next_instant, c.as_of)) - epoch(t.instant) AS seconds
    FROM timeline AS t
    CROSS JOIN clock AS c
),
first_peak AS (
    SELECT min(instant) AS instant FROM steps WHERE concurrent = peak
)
SELECT
    coalesce(max(s.peak), 0)::BIGINT AS peak_concurrent,
    min(s.instant) FILTER (WHERE s.concurrent = s.peak) AS peak_first_at,
    min(s.instant) FILTER (WHERE s.instant > f.instant AND s.concurrent < s.peak) AS peak_first_until,
    count(*) FILTER (WHERE s.concurrent = s.peak AND s.previous < s.peak) AS times_peak_reached,
    coalesce(round(sum(s.seconds) FILTER (WHERE s.concurrent = s.peak) / 3600, 2), 0)
        AS hours_at_peak,
    coalesce(arg_max(s.concurrent, s.instant), 0)::BIGINT AS concurrent_now
FROM steps AS s
CROSS JOIN first_peak AS f;
