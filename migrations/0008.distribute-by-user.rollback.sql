-- Undo 0008: every table back on the coordinator alone (Citus moves the rows there, with the
-- triggers set aside as 0008 does), the deletion trigger's function as 0007 wrote it, the
-- procedures dropped, and tasks.id an identity again, numbering on from where the sequence stood.
DO $$
DECLARE
    distributed regclass;
    set_aside record;
    triggers text[];
    definition text;
BEGIN
    IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        RETURN;
    END IF;
    PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
    PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);  -- DDL follows
    FOR distributed IN SELECT logicalrelid FROM pg_dist_partition
                       WHERE logicalrelid = ANY('{signing_keys,idempotency_keys,task_tombstones,sync_state,tasks}'::regclass[])
    LOOP
        triggers := '{}';
        FOR set_aside IN SELECT tgname, pg_get_triggerdef(oid) AS definition
                         FROM pg_trigger WHERE tgrelid = distributed AND NOT tgisinternal LOOP
            triggers := triggers || set_aside.definition;
            EXECUTE format('DROP TRIGGER %I ON %s', set_aside.tgname, distributed);
        END LOOP;
        PERFORM undistribute_table(distributed);
        FOREACH definition IN ARRAY triggers LOOP
            EXECUTE definition;
        END LOOP;
    END LOOP;
END
$$;
CREATE OR REPLACE FUNCTION tasks_leave_tombstone() RETURNS trigger
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
DROP PROCEDURE make_reference_table(regclass);
DROP PROCEDURE distribute_by_user(regclass);

ALTER TABLE tasks ALTER COLUMN id DROP DEFAULT;
ALTER SEQUENCE tasks_id_seq RENAME TO tasks_id_seq_carried;
ALTER TABLE tasks ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY;  -- its sequence takes the name tasks_id_seq
DO $$ BEGIN PERFORM setval('tasks_id_seq', last_value, is_called) FROM tasks_id_seq_carried; END $$;
DROP SEQUENCE tasks_id_seq_carried;
