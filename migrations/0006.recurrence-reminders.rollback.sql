-- Undo 0006: drop the reminder indexes and the recurrence and reminder columns.
DROP INDEX tasks_user_remind_desc_idx;
DROP INDEX tasks_user_remind_asc_idx;
DROP INDEX tasks_pending_remind_asc_idx;
ALTER TABLE tasks
    DROP CONSTRAINT tasks_recurrence_needs_due_at,
    DROP COLUMN next_id,
    DROP COLUMN remind_at,
    DROP COLUMN timezone,
    DROP COLUMN recurrence;
