-- Reminders for the tasks bench/listing_seed.sql made for one user, once migration 0006 has added
-- remind_at: every other task with a due_at (1 in 5 tasks) is reminded an hour before it is due.
-- In UTC wall time: timestamptz - interval is only STABLE, which Citus refuses in an UPDATE.
UPDATE tasks
SET remind_at = (due_at AT TIME ZONE 'UTC' - interval '1 hour') AT TIME ZONE 'UTC'
WHERE user_id = %(user_id)s AND due_at IS NOT NULL AND mod(id, 2) = 0;
