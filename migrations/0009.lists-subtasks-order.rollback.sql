-- Undo 0009: tasks lose their list, parent and position (every task is in one flat bag again), the
-- lists, their tombstones and the tree locks are dropped. Sequential on Citus (DDL, then DROP FUNCTION).
DO $$ BEGIN PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true); END $$;
ALTER TABLE tasks DROP CONSTRAINT tasks_parent_fk;  -- one subcommand a statement, for Citus
ALTER TABLE tasks DROP CONSTRAINT tasks_list_fk;
ALTER TABLE tasks DROP COLUMN position;
ALTER TABLE tasks DROP COLUMN parent_id;
ALTER TABLE tasks DROP COLUMN list_id;
DELETE FROM task_tombstones WHERE is_list;
ALTER TABLE task_tombstones DROP COLUMN is_list;
DROP TABLE task_tree_locks;
DROP TABLE lists;
DROP FUNCTION lists_leave_tombstone();
