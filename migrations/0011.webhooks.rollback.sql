-- Undo 0011: the trigger and functions, then the tables (Citus drops their shards with them).
SET LOCAL citus.enable_unsafe_triggers = on;
SET LOCAL citus.multi_shard_modify_mode TO 'sequential';  -- DDL on distributed tables, then functions
DROP TRIGGER tasks_webhook_event ON tasks;
DROP FUNCTION tasks_enqueue_webhook_event();
DROP FUNCTION webhook_send_due_reminders(text);
DROP FUNCTION webhook_enqueue(text, text, jsonb, timestamptz);
DROP FUNCTION task_json(anyelement);
DROP FUNCTION api_timestamp(timestamptz);
DROP TABLE task_reminders;
DROP TABLE webhook_deliveries;
DROP TABLE webhooks;
