-- data_quality.sql: can the other answers be trusted?
--
-- One row per check: `problem_rows` is how many rows fail it, `examples` up to three of them
-- (task ids, or the unknown status values), `ok` whether it is zero. Checks with severity
-- 'error' must be zero: a duplicate task_id means the merge on task_id failed and every
-- count is off. 'warning' rows are malformed source data that the other files leave out
-- (see their headers); 'info' rows need no action beyond a reload.
-- `flagged_by_source` counts the rows the source flagged in its `data_issues` column (read
-- that column for the reasons); `rejected_rows` counts the records the source set aside in
-- `pull_record_task_rejects` (no usable TaskId), with a reason each. Each is NULL when its
-- column or table does not exist. `deleted_from_list` counts the tasks the source found gone
-- from the API's list (`deleted_at` set): kept for history, left out of what is "now".
-- `time_out_of_range` counts times outside 2000..2099 (UTC): placeholders such as
-- 0001-01-01 or 9999-12-31, which the source flags and stores as null since issue 23 but an
-- older load may hold. Every other file reads them as missing (NULL): expanded into hours,
-- year 1 to now took 4.8 GB, and no chart, pandas or Python datetime holds year 10000.
--
-- Run:       duckdb -readonly volcengine_live.duckdb < sql/data_quality.sql
-- Dataset:   the `SET schema` line below names the dlt dataset; edit it if your pipeline
--            uses another dataset_name (the notebook substitutes its `dataset_name` there).
-- Time zone: the checks do not depend on it; the line is kept for symmetry with the others.
-- Now:       `stale_status` compares with now(); `SET VARIABLE as_of = TIMESTAMPTZ '...'`
--            first (e.g. with duckdb -cmd) to compare with another instant.
SET schema = 'volcengine_live_dataset';
SET TimeZone = 'Asia/Shanghai';

-- The rejects table and the source's data_issues column are optional: build the queries
-- that read them only if they exist (a missing table or column is an error in plain SQL).
SET VARIABLE volcengine_live_rejects_query = (
    SELECT CASE
        WHEN count(*) > 0 THEN 'SELECT count(*) AS n FROM pull_record_task_rejects'
        ELSE 'SELECT NULL::BIGINT AS n'
    END
    FROM duckdb_tables()
    WHERE database_name = current_database()
      AND schema_name = current_schema()
      AND table_name = 'pull_record_task_rejects'
);
SET VARIABLE volcengine_live_flagged_query = (
    SELECT CASE
        WHEN count(*) > 0 THEN
            'SELECT count(*) AS n, list(task_id ORDER BY task_id)[1:3] AS examples '
            || 'FROM pull_record_tasks WHERE data_issues IS NOT NULL'
        ELSE 'SELECT NULL::BIGINT AS n, []::VARCHAR[] AS examples'
    END
    FROM duckdb_columns()
    WHERE database_name = current_database()
      AND schema_name = current_schema()
      AND table_name = 'pull_record_tasks'
      AND column_name = 'data_issues'
);

WITH clock AS (
    SELECT coalesce(getvariable('as_of')::TIMESTAMPTZ, date_trunc('second', now())) AS as_of
),
known (status, status_code) AS (
    VALUES ('停用', 'stopped'), ('未开始', 'not_started'), ('生效中', 'recording'),
           ('已结束', 'finished')
),
tasks AS (
    SELECT t.*, k.status_code AS expected_code, c.as_of
    FROM pull_record_tasks AS t
    LEFT JOIN known AS k ON k.status = t.status
    CROSS JOIN clock AS c
),
duplicates AS (
    SELECT task_id FROM pull_record_tasks GROUP BY task_id HAVING count(*) > 1
),
checks (check_order, check_name, severity, problem_rows, examples, description) AS (
    SELECT 1, 'duplicate_task_ids', 'error', count(*), list(task_id ORDER BY task_id)[1:3],
           'task_ids stored more than once (the merge key)'
    FROM duplicates
    UNION ALL
    SELECT 2, 'missing_task_id', 'error', count(*) FILTER (WHERE task_id IS NULL OR task_id = ''),
           [], 'rows without a TaskId'
    FROM tasks
    UNION ALL
    SELECT 3, 'missing_start_time', 'warning', count(*) FILTER (WHERE start_time IS NULL),
           list(task_id ORDER BY task_id) FILTER (WHERE start_time IS NULL)[1:3],
           'no StartTime: left out of every time-based answer'
    FROM tasks
    UNION ALL
    SELECT 4, 'missing_end_time', 'warning', count(*) FILTER (WHERE end_time IS NULL),
           list(task_id ORDER BY task_id) FILTER (WHERE end_time IS NULL)[1:3],
           'no EndTime: left out of durations, and of recorded hours unless recording'
    FROM tasks
    UNION ALL
    SELECT 5, 'end_before_start', 'warning', count(*) FILTER (WHERE end_time < start_time),
           list(task_id ORDER BY task_id) FILTER (WHERE end_time < start_time)[1:3],
           'EndTime earlier than StartTime: left out of durations and recorded hours'
    FROM tasks
    UNION ALL
    SELECT 6, 'missing_vhost', 'warning', count(*) FILTER (WHERE coalesce(vhost, '') = ''),
           list(task_id ORDER BY task_id) FILTER (WHERE coalesce(vhost, '') = '')[1:3],
           'empty or missing Vhost'
    FROM tasks
    UNION ALL
    SELECT 7, 'missing_domain', 'warning', count(*) FILTER (WHERE coalesce(domain, '') = ''),
           list(task_id ORDER BY task_id) FILTER (WHERE coalesce(domain, '') = '')[1:3],
           'empty or missing Domain: grouped under NULL or empty by domain'
    FROM tasks
    UNION ALL
    SELECT 8, 'missing_app', 'warning', count(*) FILTER (WHERE coalesce(app, '') = ''),
           list(task_id ORDER BY task_id) FILTER (WHERE coalesce(app, '') = '')[1:3],
           'empty or missing App'
    FROM tasks
    UNION ALL
    SELECT 9, 'missing_stream', 'warning', count(*) FILTER (WHERE coalesce(stream, '') = ''),
           list(task_id ORDER BY task_id) FILTER (WHERE coalesce(stream, '') = '')[1:3],
           'empty or missing Stream'
    FROM tasks
    UNION ALL
    SELECT 10, 'unknown_status', 'warning', count(*) FILTER (WHERE expected_code IS NULL),
           list(DISTINCT coalesce(status, 'NULL') ORDER BY coalesce(status, 'NULL'))
               FILTER (WHERE expected_code IS NULL)[1:3],
           'Status not one of 停用/未开始/生效中/已结束 (examples are the values)'
    FROM tasks
    UNION ALL
    SELECT 11, 'status_code_mismatch', 'warning',
           count(*) FILTER (WHERE status_code IS DISTINCT FROM expected_code),
           list(task_id ORDER BY task_id)
               FILTER (WHERE status_code IS DISTINCT FROM expected_code)[1:3],
           'a known Status whose status_code is not its English code'
    FROM tasks
    WHERE expected_code IS NOT NULL
    UNION ALL
    SELECT 12, 'stale_status', 'info',
           count(*) FILTER (WHERE deleted_at IS NULL
                               AND ((status_code = 'not_started' AND start_time <= as_of)
                                    OR (status_code = 'recording' AND end_time <= as_of))),
           list(task_id ORDER BY task_id)
               FILTER (WHERE deleted_at IS NULL
                          AND ((status_code = 'not_started' AND start_time <= as_of)
                               OR (status_code = 'recording' AND end_time <= as_of)))[1:3],
           'not_started past its start or recording past its end: reload to refresh'
    FROM tasks
    UNION ALL
    SELECT 13, 'flagged_by_source', 'info', n, examples,
           'rows whose data_issues column says what is wrong (NULL: no such column)'
    FROM query(getvariable('volcengine_live_flagged_query'))
    UNION ALL
    SELECT 14, 'rejected_rows', 'warning',
           (SELECT n FROM query(getvariable('volcengine_live_rejects_query'))), [],
           'rows the source set aside in pull_record_task_rejects (NULL: no such table)'
    UNION ALL
    SELECT 15, 'deleted_from_list', 'info', count(*) FILTER (WHERE deleted_at IS NOT NULL),
           list(task_id ORDER BY task_id) FILTER (WHERE deleted_at IS NOT NULL)[1:3],
           'tasks that left the API''s list (deleted_at set): kept in history, out of "now"'
    FROM tasks
    UNION ALL
    SELECT 16, 'time_out_of_range', 'warning',
           count(*) FILTER (WHERE year(timezone('UTC', start_time)) NOT BETWEEN 2000 AND 2099
                               OR year(timezone('UTC', end_time)) NOT BETWEEN 2000 AND 2099),
           list(task_id ORDER BY task_id)
               FILTER (WHERE year(timezone('UTC', start_time)) NOT BETWEEN 2000 AND 2099
                          OR year(timezone('UTC', end_time)) NOT BETWEEN 2000 AND 2099)[1:3],
           'StartTime or EndTime outside 2000..2099 (UTC), e.g. 0001-01-01: missing elsewhere'
    FROM tasks
)
SELECT
    check_name AS "check",
    severity,
    problem_rows,
    coalesce(problem_rows, 0) = 0 AS ok,
    coalesce(array_to_string(examples, ', '), '') AS examples,
    description
FROM checks
ORDER BY check_order;
