-- Incremental sync (API.md §6; design in docs/sync.md). Every statement is scoped to one user.

-- name: sync_changes
-- One page of changes, from one snapshot: the user's counter, whether a tombstone is older than
-- %(retention_days)s (then the caller runs forget_deletions), and up to %(page_size)s changes in
-- change order, one row each (`kind`): tasks and lists changed after %(after)s in their current
-- state, and tombstones of either after %(deleted_after)s (NULL: none); a single row with a NULL
-- sync_seq when nothing changed.
-- It only reads: it takes no lock and waits for no writer.
WITH state AS (
    SELECT coalesce(max(last_seq), 0) AS last_seq, coalesce(max(forgotten_seq), 0) AS forgotten_seq,
           -- min() is one step down task_tombstones_user_deleted_idx, whatever the planner expects of the user
           (SELECT min(deleted_at) FROM task_tombstones WHERE user_id = %(user_id)s)
               < now() - make_interval(days => %(retention_days)s) AS deletions_due
    FROM sync_state
    WHERE user_id = %(user_id)s
), changes AS (
    (SELECT sync_seq, 'task' AS kind, {task_columns}, NULL::text AS name, NULL::timestamptz AS deleted_at
     FROM tasks
     WHERE user_id = %(user_id)s AND sync_seq > %(after)s
     ORDER BY sync_seq
     LIMIT %(page_size)s)
    UNION ALL
    -- a list in the task's columns (sql/tasks.sql): id and user_id, a NULL for each column a list does
    -- not have, its position, created_at, updated_at and version; its name in `name`
    (SELECT sync_seq, 'list', id, user_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            NULL, NULL, NULL, position, created_at, updated_at, version, name, NULL
     FROM lists
     WHERE user_id = %(user_id)s AND sync_seq > %(after)s
     ORDER BY sync_seq
     LIMIT %(page_size)s)
    UNION ALL
    -- id and user_id, then a NULL for each other column of {task_columns} and for `name`
    (SELECT sync_seq, CASE WHEN is_list THEN 'deleted_list' ELSE 'deleted' END, task_id, user_id,
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            NULL, deleted_at
     FROM task_tombstones
     WHERE user_id = %(user_id)s AND sync_seq > %(deleted_after)s
     ORDER BY sync_seq
     LIMIT %(page_size)s)
    ORDER BY sync_seq
    LIMIT %(page_size)s
)
SELECT state.last_seq, state.forgotten_seq, state.deletions_due, changes.*
FROM state LEFT JOIN changes ON true
ORDER BY changes.sync_seq;
