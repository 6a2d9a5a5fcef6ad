-- Recurring tasks and reminders (API.md §3, §5): the rule, the zone whose wall clock it keeps, the
-- reminder instant, and the id of the occurrence a completion created. Existing rows read
-- recurrence NULL, timezone 'UTC', remind_at NULL, next_id NULL.
-- depends: 0005.gin-fastupdate

-- next_id has no foreign key: it keeps its value after that task is deleted (API.md §5).
-- Adding columns with constant defaults rewrites nothing (PostgreSQL 11+).
ALTER TABLE tasks
    ADD COLUMN recurrence text CHECK (char_length(recurrence) BETWEEN 1 AND 255),
    ADD COLUMN timezone   text NOT NULL DEFAULT 'UTC' CHECK (char_length(timezone) BETWEEN 1 AND 64),
    ADD COLUMN remind_at  timestamptz,
    ADD COLUMN next_id    bigint,
    ADD CONSTRAINT tasks_recurrence_needs_due_at CHECK (recurrence IS NULL OR due_at IS NOT NULL);

-- The due-reminders poll (status=pending&remind_before=<now>&sort=remind_at) and the pending list
-- sorted by remind_at: one range scan over the user's pending tasks, whatever their history.
-- Tasks without remind_at sort last (+infinity), as due_at does in 0003.
CREATE INDEX tasks_pending_remind_asc_idx ON tasks (user_id, (COALESCE(remind_at, 'infinity'::timestamptz)), id)
    WHERE NOT completed;
-- sort=remind_at and sort=-remind_at over every status (undated last: -infinity descending). A
-- pending list sorted by -remind_at walks this one backwards past completed tasks with later
-- reminders, which are few; a fourth index (pending, descending) would cost every write for that.
CREATE INDEX tasks_user_remind_asc_idx ON tasks (user_id, (COALESCE(remind_at, 'infinity'::timestamptz)), id);
CREATE INDEX tasks_user_remind_desc_idx ON tasks (user_id, (COALESCE(remind_at, '-infinity'::timestamptz)), id);
