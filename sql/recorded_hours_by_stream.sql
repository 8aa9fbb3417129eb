-- recorded_hours_by_stream.sql: which streams record the most?
--
-- One row per stream (domain, app, stream), most hours first: `recorded_hours` is the total
-- recording time of its tasks, `tasks` how many of its tasks recorded, `pct` its share of all
-- recorded hours. A stream is named inside its app and domain (domain/app/stream), so the
-- same stream name under two apps is two rows.
--
-- What counts as recorded (the same in every recorded_* and concurrency_* file): each task
-- except not_started ones (unknown statuses included), from StartTime to EndTime, clipped at
-- now for tasks still recording (and for any EndTime still ahead). Left out: tasks with no
-- start, an end not after the start, or no end unless they are recording (data_quality.sql
-- counts them). Stopped (停用) tasks count to their scheduled EndTime because the API gives no
-- stop time: read their hours as an upper bound.
--
-- Deleted:   a task that left the API's list (deleted_at set) still counts: a finished task
--            purged later still happened; one deleted while recording counts up to its
--            deleted_at, and is never recording "now".
-- Run:       duckdb -readonly volcengine_live.duckdb < sql/recorded_hours_by_stream.sql
-- Dataset:   the `SET schema` line below names the dlt dataset; edit it if your pipeline
--            uses another dataset_name (the notebook substitutes its `dataset_name` there).
-- Time zone: totals do not depend on it; the line is kept for symmetry with the others.
-- Now:       open tasks are clipped at now(); `SET VARIABLE as_of = TIMESTAMPTZ '...'` first
--            (e.g. with duckdb -cmd) to clip them at another instant.
-- Window:    optional `SET VARIABLE since = TIMESTAMPTZ '...'` and `until` count only the
--            hours recorded in [since, until).
SET schema = 'volcengine_live_dataset';
SET TimeZone = 'Asia/Shanghai';

WITH clock AS (
    SELECT
        coalesce(getvariable('as_of')::TIMESTAMPTZ, date_trunc('second', now())) AS as_of,
        coalesce(getvariable('since')::TIMESTAMPTZ, '-infinity'::TIMESTAMPTZ) AS since,
        coalesce(getvariable('until')::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ) AS until
),
recorded AS (
    SELECT
        t.task_id,
        t.domain,
        t.app,
        t.stream,
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
      AND t.start_time < c.until
      AND coalesce(t.end_time, c.as_of) > c.since
)
SELECT
    domain,
    app,
    stream,
    count(*) AS tasks,
    round(sum(epoch(rec_end) - epoch(rec_start)) / 3600, 2) AS recorded_hours,
    round(100.0 * sum(epoch(rec_end) - epoch(rec_start))
        / sum(sum(epoch(rec_end) - epoch(rec_start))) OVER (), 1) AS pct
FROM recorded
GROUP BY domain, app, stream
ORDER BY recorded_hours DESC, domain NULLS LAST, app NULLS LAST, stream NULLS LAST;
