-- Every statement on tasks. Each filters by user_id: ownership is enforced here, not only by routes.
-- Timestamps are compared and stored as timestamptz; the API layer renders them in UTC.

-- fragment: task_columns
-- A task's columns as the API returns it, in TaskSchema's order (tasks/schemas.py): every statement
-- that returns tasks says {task_columns}, so a new column is added here once.
id, user_id, title, description, completed, completed_at, priority, tags, due_at,
recurrence, timezone, remind_at, next_id, created_at, updated_at, version

-- name: insert_task
-- Create a task for its owner and return it.
INSERT INTO tasks (user_id, title, description, completed, completed_at, priority, tags, due_at,
                   recurrence, timezone, remind_at)
VALUES (%(user_id)s, %(title)s, %(description)s, %(completed)s,
        CASE WHEN %(completed)s THEN now() END,
        %(priority)s, %(tags)s, %(due_at)s, %(recurrence)s, %(timezone)s, %(remind_at)s)
RETURNING {task_columns};

-- name: get_task
-- One task of its owner.
SELECT {task_columns}
FROM tasks
WHERE user_id = %(user_id)s AND id = %(task_id)s;

-- name: lock_task
-- One task of its owner, locked until the transaction ends: a write that must see the stored task
-- (a PATCH of the rule's fields, a completion that may create the next occurrence) reads it here.
SELECT {task_columns}
FROM tasks
WHERE user_id = %(user_id)s AND id = %(task_id)s
FOR UPDATE;

-- name: get_task_version
-- The current version of one task, to tell "no such task" (404) from "version moved on" (412).
SELECT version
FROM tasks
WHERE user_id = %(user_id)s AND id = %(task_id)s;

-- name: update_task
-- Set the fields named in %(fields)s (PUT names them all, PATCH those given), if the version
-- is one of %(expected_versions)s (NULL: any). completed_at follows a real flip of completed;
-- next_id is set once, by the write that completes a recurring task (%(next_id)s, else NULL).
-- %(unless_recurring)s: only if the task as written has no recurrence (else tasks/writes.py writes it).
-- completed_at is kept, or stamped now() by the write that completes the task, or else NULL: GREATEST
-- takes whichever of its two CASEs is not NULL, so now() stays outside them (Citus refuses now()
-- inside a CASE or COALESCE of an UPDATE; it puts the transaction's time in as a constant elsewhere).
UPDATE tasks
SET title        = CASE WHEN 'title' = ANY(%(fields)s) THEN %(title)s ELSE title END,
    description  = CASE WHEN 'description' = ANY(%(fields)s) THEN %(description)s ELSE description END,
    priority     = CASE WHEN 'priority' = ANY(%(fields)s) THEN %(priority)s::task_priority ELSE priority END,
    tags         = CASE WHEN 'tags' = ANY(%(fields)s) THEN %(tags)s ELSE tags END,
    due_at       = CASE WHEN 'due_at' = ANY(%(fields)s) THEN %(due_at)s ELSE due_at END,
    recurrence   = CASE WHEN 'recurrence' = ANY(%(fields)s) THEN %(recurrence)s ELSE recurrence END,
    timezone     = CASE WHEN 'timezone' = ANY(%(fields)s) THEN %(timezone)s ELSE timezone END,
    remind_at    = CASE WHEN 'remind_at' = ANY(%(fields)s) THEN %(remind_at)s ELSE remind_at END,
    next_id      = COALESCE(next_id, %(next_id)s::bigint),
    completed    = CASE WHEN 'completed' = ANY(%(fields)s) THEN %(completed)s ELSE completed END,
    completed_at = GREATEST(
                     CASE WHEN NOT 'completed' = ANY(%(fields)s) OR %(completed)s = completed THEN completed_at END,
                     now() + CASE WHEN 'completed' = ANY(%(fields)s) AND %(completed)s AND NOT completed
                                  THEN interval '0' END),
    updated_at   = now(),
    version      = version + 1
WHERE user_id = %(user_id)s AND id = %(task_id)s
  AND (%(expected_versions)s::integer[] IS NULL OR version = ANY(%(expected_versions)s::integer[]))
  AND (NOT %(unless_recurring)s
       OR (CASE WHEN 'recurrence' = ANY(%(fields)s) THEN %(recurrence)s ELSE recurrence END) IS NULL)
RETURNING {task_columns};

-- name: set_task_completed
-- Set completed to %(completed)s, or toggle it when that is NULL, if the version still matches,
-- unless that completes a recurring task (tasks/writes.py does that, with its next occurrence).
-- completed_at as in update_task.
UPDATE tasks
SET completed    = COALESCE(%(completed)s, NOT completed),
    completed_at = GREATEST(
                     CASE WHEN COALESCE(%(completed)s, NOT completed) = completed THEN completed_at END,
                     now() + CASE WHEN COALESCE(%(completed)s, NOT completed) AND NOT completed
                                  THEN interval '0' END),
    updated_at   = now(),
    version      = version + 1
WHERE user_id = %(user_id)s AND id = %(task_id)s
  AND (%(expected_versions)s::integer[] IS NULL OR version = ANY(%(expected_versions)s::integer[]))
  AND (recurrence IS NULL OR NOT COALESCE(%(completed)s, NOT completed))
RETURNING {task_columns};

-- name: delete_task
-- Delete one task if the version still matches, and return it as it was, with whether the user has
-- a tombstone more than a day past %(retention_days)s (then the caller runs forget_deletions,
-- below): a user who deletes daily pays for forgetting once a day, not at every deletion.
WITH deleted AS (
    DELETE FROM tasks
    WHERE user_id = %(user_id)s AND id = %(task_id)s
      AND (%(expected_versions)s::integer[] IS NULL OR version = ANY(%(expected_versions)s::integer[]))
    RETURNING {task_columns}
)
SELECT {task_columns},
       (SELECT min(deleted_at) FROM task_tombstones WHERE user_id = %(user_id)s)
           < now() - make_interval(days => %(retention_days)s + 1) AS deletions_due
FROM deleted;

-- name: list_tasks
-- One page of the owner's tasks, plus one row to tell whether another page exists.
-- listing.py fills {filters}, {after}, {sort_key} and {direction} from fixed fragments only.
SELECT {task_columns}
FROM tasks
WHERE user_id = %(user_id)s {filters} {after}
ORDER BY {sort_key} {direction}, id {direction}
LIMIT %(page_size)s;

-- name: count_tasks
-- How many of the owner's tasks match the filters ({filters} as in list_tasks).
SELECT count(*) AS total
FROM tasks
WHERE user_id = %(user_id)s {filters};

-- name: forget_deletions
-- Tombstones are what deleting a task leaves for sync (sql/sync.sql); this is their retention.
-- Forget up to %(batch)s of the user's tombstones older than %(retention_days)s, oldest first, and
-- raise forgotten_seq to the highest number forgotten (a token below it is then 410). The counter
-- row is locked first, and only when a tombstone is due (lock order: docs/sync.md).
WITH due AS (
    SELECT user_id
    FROM sync_state
    WHERE user_id = %(user_id)s
      AND (SELECT min(deleted_at) FROM task_tombstones WHERE user_id = %(user_id)s)
          < now() - make_interval(days => %(retention_days)s)
    FOR UPDATE
), batch AS (
    SELECT sync_seq
    FROM task_tombstones
    WHERE user_id = %(user_id)s AND deleted_at < now() - make_interval(days => %(retention_days)s)
      AND EXISTS (SELECT FROM due)
    ORDER BY deleted_at
    LIMIT %(batch)s
), forgotten AS (
    DELETE FROM task_tombstones
    WHERE user_id = %(user_id)s AND sync_seq = ANY(ARRAY(SELECT sync_seq FROM batch))
    RETURNING sync_seq
), raised AS (
    UPDATE sync_state
    SET forgotten_seq = (SELECT max(sync_seq) FROM forgotten)
    WHERE user_id = %(user_id)s AND forgotten_seq < (SELECT max(sync_seq) FROM forgotten)
    RETURNING forgotten_seq
)
SELECT (SELECT count(*) FROM forgotten) AS forgotten, (SELECT forgotten_seq FROM raised) AS forgotten_seq;
