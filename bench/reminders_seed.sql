-- Reminders for the tasks bench/listing_seed.sql made for one user, once migration 0006 has added
-- remind_at: every other task with a due_at (1 in 5 tasks) is reminded an hour before it is due.
-- In UTC wall time: timestamptz - interval is only STABLE, which Citus refuses in an UPDATE.
-- Two triggers are set aside for the UPDATE (a bench's seed, not a migration; enabled again after):
-- the sync trigger (0007) would update the user's counter row once per row, 100,000 times in one
-- transaction for a 1,000,000-task user, walking an ever longer chain of its versions (the fill
-- stalled there); the webhook trigger (0011) would queue an AFTER event per row, for users with no
-- webhook. Nothing the listings read comes from either.
ALTER TABLE tasks DISABLE TRIGGER tasks_sync_seq;
ALTER TABLE tasks DISABLE TRIGGER tasks_webhook_event;
UPDATE tasks
SET remind_at = (due_at AT TIME ZONE 'UTC' - interval '1 hour') AT TIME ZONE 'UTC'
WHERE user_id = %(user_id)s AND due_at IS NOT NULL AND mod(id, 2) = 0;
ALTER TABLE tasks ENABLE TRIGGER tasks_webhook_event;
ALTER TABLE tasks ENABLE TRIGGER tasks_sync_seq;
