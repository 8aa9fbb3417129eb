-- recording_coverage.sql: did every finished task leave its recording, as long as scheduled?
--
-- Joins the finished tasks (pull_record_tasks, status_code 'finished') to the files that
-- overlap their window on the same vhost/app/stream (record_files: rows carry no TaskId,
-- so time and stream are the only link). One row per finished task, and one per file that
-- no task describes; `finding` says which:
--
--   no_file   the task finished and left no file at all;
--   short     its files cover less of the schedule than it by more than `tolerance_seconds`
--             (default 60): `late_start_seconds` before the first file, `cut_seconds`
--             between files (a stream cut of over 180 s starts a new file),
--             `early_end_seconds` after the last one say where the time went;
--   complete  recorded as scheduled, within the tolerance;
--   no_task   a file that overlaps no task of any status on its vhost/app/stream (a
--             recording preset, a task deleted before it was ever loaded): task_id is NULL.
--
-- `recorded_seconds` is the time the task's files cover inside its window (files clipped to
-- it, overlapping files counted once), against `scheduled_seconds` (EndTime - StartTime);
-- `files` how many files overlap the window. For no_task rows both are the file's own.
-- `domain` is the task's (files carry only vhost/app/stream): NULL on no_task rows.
--
-- Left out: tasks that ended after the last file read (`max(seen_at)` of record_files; their
-- files may be listed by the next run), tasks that started before the earliest file loaded
-- (the file history was not read that far back: a first run reads its last 7 days only;
-- load older files with `initial_start_time`), tasks with no start or end or an end not
-- after the start, files with no start or end (data_quality.sql and the data_issues columns count
-- them). Stopped (停用) tasks are not checked (the API gives no stop time), but their files
-- are not orphans. A task that left the API's list (deleted_at) still counts: it happened.
-- With several accounts in one dataset, tasks and files meet across accounts on the same
-- vhost/app/stream: filter both tables by account first if they share names.
--
-- Run:       duckdb -readonly volcengine_live.duckdb < sql/recording_coverage.sql
-- Dataset:   the `SET schema` line below names the dlt dataset; edit it if your pipeline
--            uses another dataset_name (the notebook substitutes its `dataset_name` there).
-- Time zone: start_time and end_time are shown in it; the seconds do not depend on it.
-- Tolerance: `SET VARIABLE tolerance_seconds = 0` first (e.g. with duckdb -cmd) to call
--            any missing second short.
-- Window:    optional `SET VARIABLE since = TIMESTAMPTZ '...'` and `until` check only the
--            tasks (and orphan files) starting in [since, until).
SET schema = 'volcengine_live_dataset';
SET TimeZone = 'Asia/Shanghai';

WITH settings AS (
    SELECT
        coalesce(getvariable('tolerance_seconds')::DOUBLE, 60) AS tolerance,
        coalesce(getvariable('since')::TIMESTAMPTZ, '-infinity'::TIMESTAMPTZ) AS since,
        coalesce(getvariable('until')::TIMESTAMPTZ, 'infinity'::TIMESTAMPTZ) AS until,
        (SELECT max(seen_at) FROM record_files) AS files_read_at,
        (SELECT min(start_time) FROM record_files) AS files_from
),
files AS (
    SELECT file_id, vhost, app, stream, start_time, end_time
    FROM record_files
    WHERE start_time IS NOT NULL AND end_time IS NOT NULL AND end_time >= start_time
),
tasks AS (
    SELECT t.task_id, t.vhost, t.domain, t.app, t.stream, t.start_time, t.end_time
    FROM pull_record_tasks AS t
    CROSS JOIN settings AS s
    WHERE t.status_code = 'finished'
      AND t.end_time > t.start_time
      AND t.end_time <= s.files_read_at
      AND t.start_time >= s.files_from
      AND t.start_time >= s.since AND t.start_time < s.until
),
clipped AS (  -- each file's part inside the window of each task it overlaps
    SELECT
        t.task_id,
        greatest(f.start_time, t.start_time) AS piece_start,
        least(f.end_time, t.end_time) AS piece_end
    FROM tasks AS t
    JOIN files AS f
      ON f.vhost = t.vhost AND f.app = t.app AND f.stream = t.stream
     AND f.start_time < t.end_time AND f.end_time > t.start_time
),
ordered AS (  -- the furthest end of the pieces before each one: overlaps count once
    SELECT
        task_id,
        piece_start,
        piece_end,
        max(piece_end) OVER (
            PARTITION BY task_id ORDER BY piece_start, piece_end
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ) AS covered_to
    FROM clipped
),
covered AS (
    SELECT
        task_id,
        count(*) AS files,
        sum(greatest(epoch(piece_end) - epoch(greatest(piece_start, coalesce(covered_to, piece_start))), 0))
            AS recorded_seconds,
        sum(greatest(epoch(piece_start) - epoch(covered_to), 0)) AS cut_seconds,
        min(piece_start) AS first_start,
        max(piece_end) AS last_end
    FROM ordered
    GROUP BY task_id
),
per_task AS (
    SELECT
        t.task_id,
        NULL::VARCHAR AS file_id,
        t.vhost,
        t.domain,
        t.app,
        t.stream,
        t.start_time,
        t.end_time,
        epoch(t.end_time) - epoch(t.start_time) AS scheduled_seconds,
        coalesce(c.recorded_seconds, 0) AS recorded_seconds,
        coalesce(c.files, 0) AS files,
        coalesce(epoch(c.first_start) - epoch(t.start_time), 0) AS late_start_seconds,
        coalesce(c.cut_seconds, 0) AS cut_seconds,
        coalesce(epoch(t.end_time) - epoch(c.last_end), 0) AS early_end_seconds
    FROM tasks AS t
    LEFT JOIN covered AS c USING (task_id)
),
orphans AS (
    SELECT
        NULL::VARCHAR AS task_id,
        f.file_id,
        f.vhost,
        NULL::VARCHAR AS domain,
        f.app,
        f.stream,
        f.start_time,
        f.end_time,
        NULL::DOUBLE AS scheduled_seconds,
        epoch(f.end_time) - epoch(f.start_time) AS recorded_seconds,
        1 AS files
    FROM files AS f
    CROSS JOIN settings AS s
    WHERE f.start_time >= s.since AND f.start_time < s.until
      AND NOT EXISTS (
          SELECT 1
          FROM pull_record_tasks AS t
          WHERE t.vhost = f.vhost AND t.app = f.app AND t.stream = f.stream
            AND t.start_time < f.end_time AND coalesce(t.end_time, 'infinity') > f.start_time
      )
),
findings AS (
SELECT
    CASE
        WHEN p.files = 0 THEN 'no_file'
        WHEN p.scheduled_seconds - p.recorded_seconds > s.tolerance THEN 'short'
        ELSE 'complete'
    END AS finding,
    p.task_id,
    p.file_id,
    p.vhost,
    p.domain,
    p.app,
    p.stream,
    p.start_time,
    p.end_time,
    p.scheduled_seconds,
    p.recorded_seconds,
    p.scheduled_seconds - p.recorded_seconds AS missing_seconds,
    round(100.0 * p.recorded_seconds / p.scheduled_seconds, 1) AS pct_recorded,
    p.files,
    p.late_start_seconds,
    p.cut_seconds,
    p.early_end_seconds
FROM per_task AS p
CROSS JOIN settings AS s
UNION ALL
SELECT
    'no_task', task_id, file_id, vhost, domain, app, stream, start_time, end_time,
    scheduled_seconds, recorded_seconds, NULL, NULL, files, NULL, NULL, NULL
FROM orphans
)
SELECT *
FROM findings
ORDER BY
    CASE finding WHEN 'no_file' THEN 1 WHEN 'short' THEN 2 WHEN 'no_task' THEN 3 ELSE 4 END,
    start_time, task_id, file_id;
