-- Citus (docs/scaling.md): where the citus extension is present, every per-user table is distributed
-- by user_id, colocated with tasks, so that all of one user's rows live on one node and each request
-- runs on that node alone; shared tables become reference tables, copied to every node. On plain
-- PostgreSQL nothing is distributed. A later migration that creates a table runs
-- CALL distribute_by_user('its_name') (or make_reference_table), so the table is born distributed.
-- depends: 0007.incremental-sync

-- tasks.id: numbers from a sequence instead of an identity, because Citus refuses to undistribute a
-- table with an identity column (this file's rollback) or to change its shard count. The numbering
-- goes on from where the identity stood, on plain PostgreSQL too.
CREATE SEQUENCE tasks_id_seq_carried AS bigint;
DO $$ BEGIN PERFORM setval('tasks_id_seq_carried', last_value, is_called) FROM tasks_id_seq; END $$;
ALTER TABLE tasks ALTER COLUMN id DROP IDENTITY;
ALTER SEQUENCE tasks_id_seq_carried RENAME TO tasks_id_seq;
ALTER SEQUENCE tasks_id_seq OWNED BY tasks.id;
ALTER TABLE tasks ALTER COLUMN id SET DEFAULT nextval('tasks_id_seq');

-- A deletion takes the user's next change number and leaves its tombstone in two plain statements.
-- As one INSERT ... SELECT from a CTE (0007), Citus runs it on the worker in steps, through
-- intermediate results, which a DELETE of several users' tasks at once breaks ("received copy data
-- after EOF marker"). The same work on plain PostgreSQL.
CREATE OR REPLACE FUNCTION tasks_leave_tombstone() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    taken bigint;
BEGIN
    INSERT INTO sync_state AS s (user_id, last_seq) VALUES (OLD.user_id, 1)
    ON CONFLICT (user_id) DO UPDATE SET last_seq = s.last_seq + 1
    RETURNING last_seq INTO taken;
    INSERT INTO task_tombstones (user_id, sync_seq, task_id) VALUES (OLD.user_id, taken, OLD.id);
    RETURN NULL;
END
$$;

-- Distribute a table of per-user rows by user_id, colocated with tasks (tasks starts the group);
-- nothing without Citus. Citus copies the table's rows into its shards, which would fire its
-- triggers (renumbering every task for sync): they are set aside for the copy and created again on
-- the distributed table, where they touch only the same user's rows in colocated tables, on the same
-- node (citus.enable_unsafe_triggers; docs/scaling.md). Sequential mode: DDL may follow in the same
-- migration (CREATE FUNCTION, say), which Citus refuses after DDL sent over parallel connections.
CREATE PROCEDURE distribute_by_user(table_name regclass)
    LANGUAGE plpgsql AS $$
DECLARE
    set_aside record;
    triggers text[] := '{}';
    definition text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
    PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
    FOR set_aside IN SELECT tgname, pg_get_triggerdef(oid) AS definition
                     FROM pg_trigger WHERE tgrelid = table_name AND NOT tgisinternal LOOP
        triggers := triggers || set_aside.definition;
        EXECUTE format('DROP TRIGGER %I ON %s', set_aside.tgname, table_name);
    END LOOP;
    PERFORM create_distributed_table(table_name, 'user_id',
                                     colocate_with => CASE WHEN table_name = 'tasks'::regclass THEN 'none'
                                                           ELSE 'tasks' END);
    PERFORM truncate_local_data_after_distributing_table(table_name);
    FOREACH definition IN ARRAY triggers LOOP
        EXECUTE definition;
    END LOOP;
END
$$;

-- A table every user shares (few rows, rarely written): a copy on every node; nothing without Citus.
CREATE PROCEDURE make_reference_table(table_name regclass)
    LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);
        PERFORM create_reference_table(table_name);
        PERFORM truncate_local_data_after_distributing_table(table_name);
    END IF;
END
$$;

CALL distribute_by_user('tasks');
CALL distribute_by_user('sync_state');
CALL distribute_by_user('task_tombstones');
CALL distribute_by_user('idempotency_keys');
CALL make_reference_table('signing_keys');
