-- duration_distribution.sql: how long are the tasks scheduled to run?
--
-- One row per duration bucket, shortest first, empty buckets included: `tasks` is the number
-- of tasks whose scheduled length (EndTime - StartTime) falls in [lower, upper), `pct` their
-- share, `total_hours` their summed length. Every status counts (scheduled tasks included);
-- tasks with a missing time or an end not after the start are left out (data_quality.sql
-- counts them). A task of exactly 1 hour falls in '1-2 h'.
--
-- Deleted:   tasks that left the API's list (deleted_at set) are counted: a task that ran
--            and was purged later still happened.
-- Run:       duckdb -readonly volcengine_live.duckdb < sql/duration_distribution.sql
-- Dataset:   the `SET schema` line below names the dlt dataset; edit it if your pipeline
--            uses another dataset_name (the notebook substitutes its `dataset_name` there).
-- Time zone: durations do not depend on it; the line is kept for symmetry with the others.
SET schema = 'volcengine_live_dataset';
SET TimeZone = 'Asia/Shanghai';

WITH buckets (bucket_order, bucket, lower_minutes, upper_minutes) AS (
    VALUES
        (1, '< 15 min', 0, 15),
        (2, '15-60 min', 15, 60),
        (3, '1-2 h', 60, 120),
        (4, '2-4 h', 120, 240),
        (5, '4-8 h', 240, 480),
        (6, '8-24 h', 480, 1440),
        (7, '>= 24 h', 1440, NULL)
),
durations AS (
    SELECT (epoch(end_time) - epoch(start_time)) / 60 AS minutes
    FROM (  -- a time outside 2000..2099 counts as missing: see time_out_of_range in data_quality.sql
        SELECT * REPLACE (if(year(timezone('UTC', start_time)) BETWEEN 2000 AND 2099, start_time, NULL) AS start_time,
                          if(year(timezone('UTC', end_time)) BETWEEN 2000 AND 2099, end_time, NULL) AS end_time)
        FROM pull_record_tasks) AS pull_record_tasks
    WHERE end_time > start_time
)
SELECT
    b.bucket,
    count(d.minutes) AS tasks,
    coalesce(round(100.0 * count(d.minutes) / nullif(sum(count(d.minutes)) OVER (), 0), 1), 0)
        AS pct,
    coalesce(round(sum(d.minutes) / 60, 2), 0) AS total_hours
FROM buckets AS b
LEFT JOIN durations AS d
    ON d.minutes >= b.lower_minutes
   AND (b.upper_minutes IS NULL OR d.minutes < b.upper_minutes)
GROUP BY b.bucket_order, b.bucket
ORDER BY b.bucket_order;
