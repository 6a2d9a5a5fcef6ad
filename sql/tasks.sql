-- Every statement on tasks. Each filters by user_id: ownership is enforced here, not only by routes.
-- Timestamps are compared and stored as timestamptz; the API layer renders them in UTC.

-- fragment: task_columns
-- A task's columns as the API returns it, in TaskSchema's order (tasks/schemas.py): every statement
-- that returns tasks says {task_columns}, so a new column is added here once.
id, user_id, title, description, completed, completed_at, priority, tags, due_at,
recurrence, timezone, remind_at, next_id, list_id, parent_id, position, created_at, updated_at, version

-- name: insert_task
-- Create a task for its owner, at %(position)s among its siblings, and return it. A list_id or
-- parent_id that is not the owner's fails the foreign key (tasks/operations.py answers a 400).
INSERT INTO tasks (user_id, title, description, completed, completed_at, priority, tags, due_at,
                   recurrence, timezone, remind_at, list_id, parent_id, position)
VALUES (%(user_id)s, %(title)s, %(description)s, %(completed)s,
        CASE WHEN %(completed)s THEN now() END,
        %(priority)s, %(tags)s, %(due_at)s, %(recurrence)s, %(timezone)s, %(remind_at)s,
        %(list_id)s, %(parent_id)s, %(position)s)
RETURNING {task_columns};

-- name: last_sibling_position
-- The last position among the siblings with %(list_id)s and %(parent_id)s (NULL: the inbox, the
-- top level), leaving out %(task_id)s (a task being moved; NULL: none); no row when there are none.
-- Run unprepared (tasks/tree.py): with the values in, PostgreSQL folds the NULL tests away and reads
-- one entry at the end of the group in tasks_user_list_position_idx.
SELECT position
FROM tasks
WHERE user_id = %(user_id)s
  AND (list_id = %(list_id)s OR (list_id IS NULL AND %(list_id)s::bigint IS NULL))
  AND (parent_id = %(parent_id)s OR (parent_id IS NULL AND %(parent_id)s::bigint IS NULL))
  AND id <> coalesce(%(task_id)s::bigint, 0)
-- list_id and parent_id first: the same on every row, but an IS NULL test does not make them constant
-- for the planner as an equality does; so ordered, the index gives the order (one entry read)
ORDER BY list_id DESC, parent_id DESC, position COLLATE "C" DESC, id DESC
LIMIT 1;

-- name: last_inbox_position
-- last_sibling_position for the inbox's top level, the group of every plain create: the same read,
-- without the NULL tests, so it can be prepared like every statement on the POST path.
SELECT position
FROM tasks
WHERE user_id = %(user_id)s AND list_id IS NULL AND parent_id IS NULL
ORDER BY list_id DESC, parent_id DESC, position COLLATE "C" DESC, id DESC
LIMIT 1;

-- name: sibling_position
-- The position of %(after_id)s if it is one of the siblings with %(list_id)s and %(parent_id)s and
-- not %(task_id)s itself (a move's `after`); no row otherwise. Run unprepared, as above.
SELECT position
FROM tasks
WHERE user_id = %(user_id)s AND id = %(after_id)s AND id <> %(task_id)s
  AND (list_id = %(list_id)s OR (list_id IS NULL AND %(list_id)s::bigint IS NULL))
  AND (parent_id = %(parent_id)s OR (parent_id IS NULL AND %(parent_id)s::bigint IS NULL));

-- name: next_sibling_position
-- The position of the sibling right after (%(after_position)s, %(after_id)s) in the order a user sees
-- (NULL: the first sibling), leaving out %(task_id)s; no row when there is none. Run unprepared.
SELECT position
FROM tasks
WHERE user_id = %(user_id)s
  AND (list_id = %(list_id)s OR (list_id IS NULL AND %(list_id)s::bigint IS NULL))
  AND (parent_id = %(parent_id)s OR (parent_id IS NULL AND %(parent_id)s::bigint IS NULL))
  AND id <> %(task_id)s
  AND (%(after_position)s::text IS NULL
       OR (position COLLATE "C", id) > (%(after_position)s::text COLLATE "C", %(after_id)s::bigint))
ORDER BY list_id, parent_id, position COLLATE "C", id  -- as in last_sibling_position
LIMIT 1;

-- name: lock_siblings
-- Every sibling with %(list_id)s and %(parent_id)s but %(task_id)s, in the order a user sees, locked
-- until the transaction ends: the group a rebalance rewrites. Run unprepared.
SELECT id, position
FROM tasks
WHERE user_id = %(user_id)s
  AND (list_id = %(list_id)s OR (list_id IS NULL AND %(list_id)s::bigint IS NULL))
  AND (parent_id = %(parent_id)s OR (parent_id IS NULL AND %(parent_id)s::bigint IS NULL))
  AND id <> %(task_id)s
ORDER BY list_id, parent_id, position COLLATE "C", id  -- as in last_sibling_position
FOR UPDATE;

-- name: set_positions
-- Give each task of %(ids)s the position at the same place in %(positions)s (a rebalance); each task
-- whose position changes gets version + 1.
UPDATE tasks
SET position = rewritten.position, updated_at = now(), version = version + 1
FROM unnest(%(ids)s::bigint[], %(positions)s::text[]) AS rewritten (id, position)
WHERE user_id = %(user_id)s AND tasks.id = rewritten.id AND tasks.position <> rewritten.position COLLATE "C"
RETURNING tasks.id;

-- name: lock_task_tree
-- Take the user's tree lock (migrations/0009): held to commit by every change of the user's task tree,
-- before any task row, so those changes happen one after another.
INSERT INTO task_tree_locks AS held (user_id, taken_at) VALUES (%(user_id)s, now())
ON CONFLICT (user_id) DO UPDATE SET taken_at = EXCLUDED.taken_at
RETURNING user_id;

-- name: task_ancestry
-- %(task_id)s and every task above it, nearest first: a would-be parent's level is the row count,
-- its list the first row's, and a move that would make a cycle finds the moved task among them.
WITH RECURSIVE chain (id, parent_id, list_id, recurrence, steps) AS (
    SELECT id, parent_id, list_id, recurrence, 1
    FROM tasks
    WHERE user_id = %(user_id)s AND id = %(task_id)s
    UNION ALL
    SELECT above.id, above.parent_id, above.list_id, above.recurrence, chain.steps + 1
    FROM chain JOIN tasks AS above ON above.user_id = %(user_id)s AND above.id = chain.parent_id
    WHERE chain.steps < 8
)
SELECT id, list_id, recurrence, steps
FROM chain
ORDER BY steps;

-- name: lock_subtree
-- %(task_id)s and every task below it, each with its depth (1: the task itself), locked until the
-- transaction ends: what a move carries along, a completion completes and a deletion deletes.
WITH RECURSIVE subtree (id, depth) AS (
    SELECT id, 1
    FROM tasks
    WHERE user_id = %(user_id)s AND id = %(task_id)s
    UNION ALL
    SELECT below.id, subtree.depth + 1
    FROM subtree JOIN tasks AS below ON below.user_id = %(user_id)s AND below.parent_id = subtree.id
    WHERE subtree.depth < 8
)
SELECT tasks.id, tasks.list_id, tasks.parent_id, tasks.position, tasks.recurrence, tasks.completed,
       tasks.version, subtree.depth
FROM tasks JOIN subtree ON tasks.id = subtree.id
WHERE user_id = %(user_id)s
ORDER BY subtree.depth, tasks.id
FOR UPDATE OF tasks;

-- name: move_task
-- Put a task at %(position)s under %(parent_id)s in %(list_id)s (its subtasks follow: move_subtasks).
UPDATE tasks
SET list_id = %(list_id)s, parent_id = %(parent_id)s, position = %(position)s,
    updated_at = now(), version = version + 1
WHERE user_id = %(user_id)s AND id = %(task_id)s
RETURNING {task_columns};

-- name: move_subtasks
-- The subtasks %(ids)s of a moved task into its new list: version + 1 each, when the list changes.
UPDATE tasks
SET list_id = %(list_id)s, updated_at = now(), version = version + 1
WHERE user_id = %(user_id)s AND id = ANY(%(ids)s::bigint[]) AND list_id IS DISTINCT FROM %(list_id)s::bigint
RETURNING id;

-- name: complete_subtasks
-- Complete the tasks %(ids)s (the subtasks of a task being completed, locked by lock_subtree) that
-- are not: each its own completed_at and version + 1.
UPDATE tasks
SET completed = true, completed_at = now(), updated_at = now(), version = version + 1
WHERE user_id = %(user_id)s AND id = ANY(%(ids)s::bigint[]) AND NOT completed
RETURNING id;

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
-- %(unless_recurring)s: only if the task as written has no recurrence and the write does not complete
-- a task with subtasks (else tasks/writes.py writes it).
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
       OR (CASE WHEN 'recurrence' = ANY(%(fields)s) THEN %(recurrence)s ELSE recurrence END) IS NULL
          -- a task with subtasks that this write completes: they are completed with it (writes.py)
          AND NOT ('completed' = ANY(%(fields)s) AND %(completed)s AND NOT completed
                   AND EXISTS (SELECT FROM tasks AS below WHERE user_id = %(user_id)s AND below.parent_id = tasks.id)))
RETURNING {task_columns};

-- name: set_task_completed
-- Set completed to %(completed)s, or toggle it when that is NULL, if the version still matches,
-- unless that completes a recurring task or one with subtasks (tasks/writes.py does those, with the
-- next occurrence or the subtasks).
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
  AND (completed OR NOT COALESCE(%(completed)s, true)
       OR NOT EXISTS (SELECT FROM tasks AS below WHERE user_id = %(user_id)s AND below.parent_id = tasks.id))
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

-- name: find_list
-- One of the owner's lists, to check a listing's list_id (the lists feature owns the table;
-- the features meet in the database).
SELECT id
FROM lists
WHERE user_id = %(user_id)s AND id = %(list_id)s;

-- name: share_list
-- One of the owner's lists, held (FOR KEY SHARE, as the foreign key's check would) until the
-- transaction ends: a task created in it takes the list before its own insert takes the user's sync
-- counter, the order a list's deletion takes them in (tasks/tree.py).
SELECT id
FROM lists
WHERE user_id = %(user_id)s AND id = %(list_id)s
FOR KEY SHARE;
