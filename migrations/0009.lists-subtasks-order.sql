-- Lists, subtasks and manual order (API.md §8, §9; design in docs/lists.md): a lists table, and
-- each task's list_id, parent_id and position. Existing tasks end up in the inbox, at the top level,
-- ordered by creation. Positions are fractional-indexing keys compared byte-wise: COLLATE "C" in the
-- columns, the indexes and every comparison.
-- depends: 0008.distribute-by-user

-- On Citus: DDL on distributed tables and CREATE FUNCTION follow each other in this transaction, which
-- Citus allows over one connection per node only (on plain PostgreSQL a setting nothing reads).
DO $$ BEGIN PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true); END $$;

-- lists.id numbers from a sequence, as tasks.id does since 0008 (Citus and identity columns).
CREATE SEQUENCE lists_id_seq AS bigint;
CREATE TABLE lists (
    user_id    text        NOT NULL CHECK (char_length(user_id) BETWEEN 1 AND 255),
    id         bigint      NOT NULL DEFAULT nextval('lists_id_seq'),
    name       text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100 AND btrim(name) <> ''),
    position   text        COLLATE "C" NOT NULL CHECK (char_length(position) BETWEEN 1 AND 64),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    version    integer     NOT NULL DEFAULT 1 CHECK (version >= 1),
    sync_seq   bigint      NOT NULL,
    -- user_id first: distributes like tasks; a task's (user_id, list_id) references it.
    PRIMARY KEY (user_id, id)
);
ALTER SEQUENCE lists_id_seq OWNED BY lists.id;
-- GET /lists in position order, and the last list's position for a new one.
CREATE INDEX lists_user_position_idx ON lists (user_id, position COLLATE "C", id);
CREATE UNIQUE INDEX lists_user_sync_idx ON lists (user_id, sync_seq);

-- A deleted list leaves a tombstone beside the tasks' (same numbering, same retention): task_id then
-- holds the list's id.
ALTER TABLE task_tombstones ADD COLUMN is_list boolean NOT NULL DEFAULT false;

CREATE FUNCTION lists_leave_tombstone() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    taken bigint;
BEGIN
    INSERT INTO sync_state AS s (user_id, last_seq) VALUES (OLD.user_id, 1)
    ON CONFLICT (user_id) DO UPDATE SET last_seq = s.last_seq + 1
    RETURNING last_seq INTO taken;
    INSERT INTO task_tombstones (user_id, sync_seq, task_id, is_list) VALUES (OLD.user_id, taken, OLD.id, true);
    RETURN NULL;
END
$$;

-- Every write to a list takes the user's next change number, as a task's does (0007).
CREATE TRIGGER lists_sync_seq BEFORE INSERT OR UPDATE ON lists
    FOR EACH ROW EXECUTE FUNCTION tasks_take_sync_seq();
CREATE TRIGGER lists_tombstone AFTER DELETE ON lists
    FOR EACH ROW EXECUTE FUNCTION lists_leave_tombstone();

-- One row per user, locked (to commit) by every change of the user's task tree: a move, a create or
-- a delete under a parent. Held first, before any task row, so that the checks of depth and cycles
-- see every earlier change of the tree and no two moves can race into a cycle (docs/lists.md).
CREATE TABLE task_tree_locks (
    user_id  text        PRIMARY KEY,
    taken_at timestamptz NOT NULL DEFAULT now()
);

CALL distribute_by_user('lists');
CALL distribute_by_user('task_tree_locks');

-- The position of a task that existed before this migration: its creation time, then its id, as a
-- fractional-indexing key ("a0" and a fraction of fixed-width base-62 digits, no trailing zero), so
-- that a user's old tasks are in creation order and a new one goes after them ("a1").
CREATE FUNCTION base62(value bigint, width integer) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT string_agg(substr('0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz',
                                     (floor(value / 62::numeric ^ (width - digit)) % 62)::integer + 1, 1), ''
                              ORDER BY digit)
            FROM generate_series(1, width) AS digit);
CREATE FUNCTION legacy_task_position(created_at timestamptz, id bigint) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN 'a0' || rtrim(base62(greatest(0, (extract(epoch FROM created_at) * 1000000)::bigint), 10)
                         || base62(id, 11), '0');

ALTER TABLE tasks
    ADD COLUMN list_id   bigint,
    ADD COLUMN parent_id bigint,
    ADD COLUMN position  text COLLATE "C";
-- Each existing task gains a position a client must learn, so it takes a new change number (sync):
-- its old one plus the user's counter, all above every number handed out so far and unique (the old
-- ones were), then the counter doubles. Set here, with the numbering trigger aside: a trigger per row
-- would update the user's counter row a million times in one transaction, walking an ever longer
-- chain of its versions each time.
ALTER TABLE tasks DISABLE TRIGGER tasks_sync_seq;
UPDATE tasks
SET position = legacy_task_position(tasks.created_at, tasks.id), sync_seq = tasks.sync_seq + counter.last_seq
FROM sync_state AS counter
WHERE counter.user_id = tasks.user_id;
UPDATE sync_state SET last_seq = last_seq * 2;
ALTER TABLE tasks ENABLE TRIGGER tasks_sync_seq;
-- One subcommand a statement: Citus takes no ADD CONSTRAINT beside another.
ALTER TABLE tasks ALTER COLUMN position SET NOT NULL;
-- a row inserted outside the service (a clean-up script, a test) goes first, ties broken by id
ALTER TABLE tasks ALTER COLUMN position SET DEFAULT 'a0';
ALTER TABLE tasks ADD CONSTRAINT tasks_position_length CHECK (char_length(position) BETWEEN 1 AND 64);
ALTER TABLE tasks ADD CONSTRAINT tasks_not_own_parent CHECK (parent_id <> id);
-- a subtask has no recurrence (a parent's is checked by the write: tasks/writes.py)
ALTER TABLE tasks ADD CONSTRAINT tasks_subtask_not_recurring CHECK (parent_id IS NULL OR recurrence IS NULL);
-- Deleting a list deletes its tasks, deleting a task its subtasks, in the same statement; a task added
-- or moved into a list (under a task) being deleted waits for it and then fails its check.
ALTER TABLE tasks ADD CONSTRAINT tasks_list_fk
    FOREIGN KEY (user_id, list_id) REFERENCES lists (user_id, id) ON DELETE CASCADE;
ALTER TABLE tasks ADD CONSTRAINT tasks_parent_fk
    FOREIGN KEY (user_id, parent_id) REFERENCES tasks (user_id, id) ON DELETE CASCADE;
DROP FUNCTION legacy_task_position(timestamptz, bigint);
DROP FUNCTION base62(bigint, integer);

-- A sibling group in position order (list_id IS NULL: the inbox; parent_id IS NULL: top level): the
-- listings of a list and of the inbox, the last position for a new task, the neighbours of a move,
-- and the tasks a deleted list takes with it.
CREATE INDEX tasks_user_list_position_idx ON tasks (user_id, list_id, parent_id, position COLLATE "C", id);
-- A task's subtasks in position order, and the lookups of the parent foreign key (every deletion
-- asks for the deleted task's subtasks); only subtasks pay for it.
CREATE INDEX tasks_user_parent_position_idx ON tasks (user_id, parent_id, position COLLATE "C", id)
    WHERE parent_id IS NOT NULL;
