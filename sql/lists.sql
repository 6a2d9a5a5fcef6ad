-- Every statement on lists (API.md §8). Each filters by user_id, as those on tasks do.
-- Positions are compared byte-wise: COLLATE "C" (migrations/0009).

-- fragment: list_columns
-- A list's columns as the API returns it, in ListSchema's order (lists/schemas.py).
id, user_id, name, position, created_at, updated_at, version

-- name: lock_lists
-- Take the user's tree lock (migrations/0009; tasks.sql's lock_task_tree): lists are the top of the
-- tree. Held to commit, it makes a user's list creates count and place one after the other.
INSERT INTO task_tree_locks AS held (user_id, taken_at) VALUES (%(user_id)s, now())
ON CONFLICT (user_id) DO UPDATE SET taken_at = EXCLUDED.taken_at
RETURNING user_id;

-- name: insert_list
-- Create a list at %(position)s, unless the owner has %(limit)s lists already (no row then).
INSERT INTO lists (user_id, name, position)
SELECT %(user_id)s, %(name)s, %(position)s
WHERE (SELECT count(*) FROM lists WHERE user_id = %(user_id)s) < %(limit)s
RETURNING {list_columns};

-- name: last_list_position
-- The position of the owner's last list; no row when there is none.
SELECT position
FROM lists
WHERE user_id = %(user_id)s
ORDER BY position COLLATE "C" DESC, id DESC
LIMIT 1;

-- name: list_lists
-- Every list of the owner (at most 1,000), in the order a user sees.
SELECT {list_columns}
FROM lists
WHERE user_id = %(user_id)s
ORDER BY position COLLATE "C", id;

-- name: get_list
-- One list of its owner.
SELECT {list_columns}
FROM lists
WHERE user_id = %(user_id)s AND id = %(list_id)s;

-- name: get_list_version
-- The current version of one list, to tell "no such list" (404) from "version moved on" (412).
SELECT version
FROM lists
WHERE user_id = %(user_id)s AND id = %(list_id)s;

-- name: rename_list
-- Rename a list if the version is one of %(expected_versions)s (NULL: any).
UPDATE lists
SET name = %(name)s, updated_at = now(), version = version + 1
WHERE user_id = %(user_id)s AND id = %(list_id)s
  AND (%(expected_versions)s::integer[] IS NULL OR version = ANY(%(expected_versions)s::integer[]))
RETURNING {list_columns};

-- name: lock_list
-- One list of its owner, locked until the transaction ends: a task cannot be added or moved into
-- it meanwhile (the foreign key's check waits), and a move of the list sees its neighbours settled.
SELECT {list_columns}
FROM lists
WHERE user_id = %(user_id)s AND id = %(list_id)s
FOR UPDATE;

-- name: list_neighbour_positions
-- For a move after %(after_id)s (NULL: first): that list's position (NULL when after_id is NULL,
-- no row when it is not one of the owner's lists or is the moved list) and the next list's.
WITH after AS (
    SELECT position, id
    FROM lists
    WHERE user_id = %(user_id)s AND id = %(after_id)s AND id <> %(list_id)s
)
SELECT (SELECT position FROM after) AS before,
       (SELECT position
        FROM lists
        WHERE user_id = %(user_id)s AND id <> %(list_id)s
          AND (%(after_id)s::bigint IS NULL
               OR (position COLLATE "C", id) > (SELECT position COLLATE "C", id FROM after))
        ORDER BY position COLLATE "C", id
        LIMIT 1) AS following
WHERE %(after_id)s::bigint IS NULL OR EXISTS (SELECT FROM after);

-- name: lock_other_lists
-- Every list of the owner but %(list_id)s, in order, locked: the group a rebalance rewrites.
SELECT id
FROM lists
WHERE user_id = %(user_id)s AND id <> %(list_id)s
ORDER BY position COLLATE "C", id
FOR UPDATE;

-- name: set_list_positions
-- Give each list of %(ids)s the position at the same place in %(positions)s (a rebalance); each
-- whose position changes gets version + 1.
UPDATE lists
SET position = rewritten.position, updated_at = now(), version = version + 1
FROM unnest(%(ids)s::bigint[], %(positions)s::text[]) AS rewritten (id, position)
WHERE user_id = %(user_id)s AND lists.id = rewritten.id AND lists.position <> rewritten.position COLLATE "C"
RETURNING lists.id;

-- name: move_list
-- Put a list at %(position)s.
UPDATE lists
SET position = %(position)s, updated_at = now(), version = version + 1
WHERE user_id = %(user_id)s AND id = %(list_id)s
RETURNING {list_columns};

-- name: count_list_tasks
-- How many tasks a list holds (subtasks included): what its deletion takes with it.
SELECT count(*) AS tasks
FROM tasks
WHERE user_id = %(user_id)s AND list_id = %(list_id)s;

-- name: delete_list
-- Delete a list; the foreign key deletes its tasks in the same statement (migrations/0009).
DELETE FROM lists
WHERE user_id = %(user_id)s AND id = %(list_id)s
RETURNING {list_columns};
