-- Undo 0009: every table back on the coordinator alone (Citus moves the rows there), the procedures
-- dropped, and tasks.id an identity again, numbering on from where the sequence stood.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_extension WHERE extname = 'citus') THEN
        PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
        PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);  -- DDL follows
        PERFORM undistribute_table(logicalrelid)
        FROM pg_dist_partition
        WHERE logicalrelid = ANY('{signing_keys,idempotency_keys,task_tombstones,sync_state,tasks}'::regclass[]);
    END IF;
END
$$;
DROP PROCEDURE make_reference_table(regclass);
DROP PROCEDURE distribute_by_user(regclass);

ALTER TABLE tasks ALTER COLUMN id DROP DEFAULT;
ALTER SEQUENCE tasks_id_seq RENAME TO tasks_id_seq_carried;
ALTER TABLE tasks ALTER COLUMN id ADD GENERATED ALWAYS AS IDENTITY;
DO $$
BEGIN
    PERFORM setval(pg_get_serial_sequence('tasks', 'id'), last_value, is_called) FROM tasks_id_seq_carried;
END
$$;
DROP SEQUENCE tasks_id_seq_carried;
