-- concurrency_envelope.sql: how many tasks record at once, day by day (hour by hour)?
--
-- One row per day (per hour when the window spans at most 7 days), oldest first:
-- `peak_concurrent` is the most tasks recording at the same time within it,
-- `mean_concurrent` the time-weighted average level over it (the recorded hours of the bucket
-- divided by its length) and `recorded_hours` the recording time that falls in it. `bucket`
-- says which width was used ('hour' or 'day'). Buckets with nothing recording are included
-- (0), so the rows are an even grid from the first recording (or `since`) to now. This is
-- concurrency_timeline.sql summarised so that it stays readable over years: the peak line
-- is what to compare with your account's quota, the mean shows the everyday load.
--
-- How it is computed: the sweep of concurrency_timeline.sql (+1 at each start, -1 at each
-- end, all events of one instant applied together, ends before starts, so back-to-back tasks
-- never overlap); each constant stretch of it is cut at the bucket edges.
--
-- What counts as recorded (the same in every recorded_* and concurrency_* file): each task
-- except not_started ones (unknown statuses included), from StartTime to EndTime, clipped at
-- now for tasks still recording (and for any EndTime still ahead). Left out: tasks with no
-- start, an end not after the start, or no end unless they are recording (data_quality.sql
-- counts them). Stopped (停用) tasks count to their scheduled EndTime because the API gives no
-- stop time, so the levels are an upper bound where stopped tasks are involved.
--
-- Deleted:   a task that left the API's list (deleted_at set) still counts: a finished task
--            purged later still happened; one deleted while recording counts up to its
--            deleted_at, and is never recording "now".
-- Run:       duckdb -readonly volcengine_live.duckdb < sql/concurrency_envelope.sql
-- Dataset:   the `SET schema` line below names the dlt dataset; edit it if your pipeline
--            uses another dataset_name (the notebook substitutes its `dataset_name` there).
-- Time zone: days and hours are those of Asia/Shanghai (UTC+8, no daylight saving); edit
--            the `SET TimeZone` line for another zone, e.g. 'UTC'.
-- Now:       open tasks are clipped at now(); `SET VARIABLE as_of = TIMESTAMPTZ '...'` first
--            (e.g. with duckdb -cmd) to clip them at another instant.
-- Window:    optional `SET VARIABLE since = TIMESTAMPTZ '...'` and `until` limit the buckets
--            (tasks that started before `since` still count while they record);
--            `SET VARIABLE bucket = 'hour'` (or 'day') forces the width.
SET schema = 'volcengine_live_dataset';
SET TimeZone = 'Asia/Shanghai';

WITH clock AS (
    SELECT
        least(
            coalesce(getvariable('as_of')::TIMESTAMPTZ, date_trunc('second', now())),
            coalesce(getvariable('until')::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ)
        ) AS as_of,
        getvariable('since')::TIMESTAMPTZ AS since
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
steps AS (
    -- Constant stretches [step_start, step_end) of the level `concurrent`.
    SELECT
        i.instant AS step_start,
        coalesce(lead(i.instant) OVER (ORDER BY i.instant), c.as_of) AS step_end,
        sum(i.starts - i.ends) OVER (ORDER BY i.instant) AS concurrent
    FROM instants AS i
    CROSS JOIN clock AS c
),
span AS (
    SELECT
        coalesce(c.since, (SELECT min(rec_start) FROM recorded)) AS window_start,
        c.as_of AS window_end
    FROM clock AS c
),
grain AS (
    SELECT
        s.*,
        coalesce(
            getvariable('bucket')::VARCHAR,
            CASE WHEN epoch(s.window_end) - epoch(s.window_start) <= 7 * 86400
                THEN 'hour' ELSE 'day' END
        ) AS bucket
    FROM span AS s
    WHERE s.window_start < s.window_end
),
buckets AS (
    SELECT
        g.bucket,
        g.window_start,
        g.window_end,
        unnest(generate_series(
            CASE g.bucket
                WHEN 'hour' THEN date_trunc('hour', g.window_start)
                ELSE date_trunc('day', g.window_start)
            END,
            g.window_end,
            CASE g.bucket WHEN 'hour' THEN INTERVAL 1 HOUR ELSE INTERVAL 1 DAY END
        )) AS bucket_start
    FROM grain AS g
),
edges AS (
    SELECT
        b.*,
        b.bucket_start
            + CASE b.bucket WHEN 'hour' THEN INTERVAL 1 HOUR ELSE INTERVAL 1 DAY END
            AS bucket_end,
        greatest(b.bucket_start, b.window_start) AS cut_start,
        least(
            b.bucket_start
                + CASE b.bucket WHEN 'hour' THEN INTERVAL 1 HOUR ELSE INTERVAL 1 DAY END,
            b.window_end
        ) AS cut_end
    FROM buckets AS b
    WHERE b.bucket_start < b.window_end
),
pieces AS (
    SELECT
        e.bucket_start,
        s.concurrent,
        epoch(least(s.step_end, e.cut_end)) - epoch(greatest(s.step_start, e.cut_start))
            AS seconds
    FROM edges AS e
    JOIN steps AS s ON s.step_start < e.cut_end AND s.step_end > e.cut_start
)
SELECT
    e.bucket_start,
    e.bucket,
    coalesce(max(p.concurrent) FILTER (WHERE p.seconds > 0), 0)::BIGINT AS peak_concurrent,
    round(
        coalesce(sum(p.concurrent * p.seconds) FILTER (WHERE p.seconds > 0), 0)
            / (epoch(e.cut_end) - epoch(e.cut_start)),
        2
    ) AS mean_concurrent,
    round(coalesce(sum(p.concurrent * p.seconds) FILTER (WHERE p.seconds > 0), 0) / 3600, 2)
        AS recorded_hours
FROM edges AS e
LEFT JOIN pieces AS p ON p.bucket_start = e.bucket_start
WHERE e.cut_end > e.cut_start
GROUP BY e.bucket_start, e.bucket, e.cut_start, e.cut_end
ORDER BY e.bucket_start;
