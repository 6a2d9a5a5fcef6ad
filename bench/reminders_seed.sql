-- Reminders for the tasks bench/listing_seed.sql made for one user, once migration 0006 has added
-- remind_at: every other task with a due_at (1 in 5 tasks) is reminded an hour before it is due.
UPDATE tasks
SET remind_at = due_at - interval '1 hour'
WHERE user_id = %(user_id)s AND due_at IS NOT NULL AND mod(id, 2) = 0;
