-- Incremental sync (API.md §6; design in docs/sync.md). Every statement is scoped to one user.

-- name: sync_changes
-- One page of changes after %(after)s, from one snapshot: the user's counter, then up to
-- %(page_size)s changes in change order (tasks in their current state and, when %(with_deleted)s,
-- tombstones), one row each; a single row with a NULL sync_seq when nothing changed. On the way it
-- forgets tombstones older than %(retention_days)s and raises forgotten_seq past them; the counter
-- row is locked before the tombstones, and only when one is due, so this reads without waiting.
WITH due AS (
    SELECT user_id
    FROM sync_state
    WHERE user_id = %(user_id)s
      AND EXISTS (SELECT FROM task_tombstones
                  WHERE user_id = %(user_id)s AND deleted_at < now() - make_interval(days => %(retention_days)s))
    FOR UPDATE
), purged AS (
    DELETE FROM task_tombstones
    WHERE user_id = %(user_id)s AND deleted_at < now() - make_interval(days => %(retention_days)s)
      AND EXISTS (SELECT FROM due)
    RETURNING sync_seq
), forgotten AS (
    UPDATE sync_state
    SET forgotten_seq = (SELECT max(sync_seq) FROM purged)
    WHERE user_id = %(user_id)s AND forgotten_seq < (SELECT max(sync_seq) FROM purged)
    RETURNING forgotten_seq
), state AS (
    SELECT coalesce(max(last_seq), 0) AS last_seq, coalesce(max(forgotten_seq), 0) AS forgotten_seq
    FROM sync_state
    WHERE user_id = %(user_id)s
), changes AS (
    (SELECT sync_seq, id, user_id, title, description, completed, completed_at, priority, tags, due_at,
            recurrence, timezone, remind_at, next_id, created_at, updated_at, version,
            NULL::timestamptz AS deleted_at
     FROM tasks
     WHERE user_id = %(user_id)s AND sync_seq > %(after)s
     ORDER BY sync_seq
     LIMIT %(page_size)s)
    UNION ALL
    (SELECT sync_seq, task_id, user_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
            NULL, NULL, NULL, NULL, NULL, NULL, NULL, deleted_at
     FROM task_tombstones
     WHERE user_id = %(user_id)s AND sync_seq > %(after)s AND %(with_deleted)s
     ORDER BY sync_seq
     LIMIT %(page_size)s)
    ORDER BY sync_seq
    LIMIT %(page_size)s
)
SELECT state.last_seq, state.forgotten_seq, changes.*
FROM state LEFT JOIN changes ON true
ORDER BY changes.sync_seq;
