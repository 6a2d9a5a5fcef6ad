-- Incremental sync (API.md §6): every write to a user's tasks takes the next number of that
-- user's change counter, and a deletion leaves a tombstone, so "what changed since position p" is
-- one index range scan per table. Why this never misses a write, and the lock order: docs/sync.md.
-- depends: 0005.gin-fastupdate

-- One row per user: the last change number handed out, and the highest one of a tombstone that was
-- since forgotten (a token before it is 410). The row lock, held to commit, orders a user's writes.
CREATE TABLE sync_state (
    user_id       text   PRIMARY KEY,
    last_seq      bigint NOT NULL CHECK (last_seq >= 0),
    forgotten_seq bigint NOT NULL DEFAULT 0 CHECK (forgotten_seq BETWEEN 0 AND last_seq)
);

-- A deleted task, as sync reports it, until SYNC_RETENTION_DAYS have passed.
CREATE TABLE task_tombstones (
    user_id    text        NOT NULL,
    sync_seq   bigint      NOT NULL,
    task_id    bigint      NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now(),
    -- user_id first: distributes like tasks; sync reads a user's tombstones in change order.
    PRIMARY KEY (user_id, sync_seq)
);
-- The retention purge finds a user's oldest tombstones here.
CREATE INDEX task_tombstones_user_deleted_idx ON task_tombstones (user_id, deleted_at);

-- Existing tasks get change numbers 1..n per user (in id order), so a first sync returns them.
ALTER TABLE tasks ADD COLUMN sync_seq bigint;
UPDATE tasks
SET sync_seq = numbered.seq
FROM (SELECT user_id, id, row_number() OVER (PARTITION BY user_id ORDER BY id) AS seq FROM tasks) AS numbered
WHERE tasks.user_id = numbered.user_id AND tasks.id = numbered.id;
ALTER TABLE tasks ALTER COLUMN sync_seq SET NOT NULL;
INSERT INTO sync_state (user_id, last_seq)
SELECT user_id, max(sync_seq) FROM tasks GROUP BY user_id;
CREATE UNIQUE INDEX tasks_user_sync_idx ON tasks (user_id, sync_seq);

-- Every insert and update of a task, whatever statement makes it, takes the user's next change
-- number. The counter row stays locked until the transaction ends, so a user's numbers are taken
-- in the order their transactions commit (lock order: the task row, then the counter row).
CREATE FUNCTION tasks_take_sync_seq() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sync_state AS s (user_id, last_seq) VALUES (NEW.user_id, 1)
    ON CONFLICT (user_id) DO UPDATE SET last_seq = s.last_seq + 1
    RETURNING last_seq INTO NEW.sync_seq;
    RETURN NEW;
END
$$;

-- Every deletion leaves a tombstone under the user's next change number.
CREATE FUNCTION tasks_leave_tombstone() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    WITH taken AS (
        INSERT INTO sync_state AS s (user_id, last_seq) VALUES (OLD.user_id, 1)
        ON CONFLICT (user_id) DO UPDATE SET last_seq = s.last_seq + 1
        RETURNING last_seq
    )
    INSERT INTO task_tombstones (user_id, sync_seq, task_id) SELECT OLD.user_id, last_seq, OLD.id FROM taken;
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_sync_seq BEFORE INSERT OR UPDATE ON tasks
    FOR EACH ROW EXECUTE FUNCTION tasks_take_sync_seq();
CREATE TRIGGER tasks_tombstone AFTER DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION tasks_leave_tombstone();
