-- Undo 0007: no more change numbers or tombstones (outstanding sync tokens stop working).
DROP TRIGGER tasks_tombstone ON tasks;
DROP TRIGGER tasks_sync_seq ON tasks;
DROP FUNCTION tasks_leave_tombstone();
DROP FUNCTION tasks_take_sync_seq();
DROP INDEX tasks_user_sync_idx;
ALTER TABLE tasks DROP COLUMN sync_seq;
DROP TABLE task_tombstones;
DROP TABLE sync_state;
