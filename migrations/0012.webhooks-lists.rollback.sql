-- Undo 0012: the lists' trigger and list_json, and 0011's task_json and tasks trigger function again.
SET LOCAL citus.enable_unsafe_triggers = on;
SET LOCAL citus.multi_shard_modify_mode TO 'sequential';  -- DDL on distributed tables, then functions
DROP TRIGGER lists_webhook_event ON lists;
DROP FUNCTION lists_enqueue_webhook_event();
DROP FUNCTION list_json(anyelement);

CREATE OR REPLACE FUNCTION task_json(task anyelement) RETURNS jsonb
    LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', task.id, 'user_id', task.user_id, 'title', task.title,
        'description', task.description, 'completed', task.completed,
        'completed_at', api_timestamp(task.completed_at),
        'priority', task.priority, 'tags', task.tags,
        'due_at', api_timestamp(task.due_at),
        'recurrence', task.recurrence, 'timezone', task.timezone,
        'remind_at', api_timestamp(task.remind_at),
        'next_id', task.next_id,
        'created_at', api_timestamp(task.created_at),
        'updated_at', api_timestamp(task.updated_at),
        'version', task.version)
$$;

CREATE OR REPLACE FUNCTION tasks_enqueue_webhook_event() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    owner text := CASE WHEN TG_OP = 'DELETE' THEN OLD.user_id ELSE NEW.user_id END;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.version = OLD.version THEN
        RETURN NULL;  -- bookkeeping, not a change a client made
    END IF;
    IF NOT EXISTS (SELECT FROM webhooks WHERE user_id = owner AND active) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM webhook_enqueue(owner, 'task.created', task_json(NEW), NEW.updated_at);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM webhook_enqueue(owner, 'task.deleted', task_json(OLD), now());
    ELSIF NEW.completed <> OLD.completed THEN
        PERFORM webhook_enqueue(owner, CASE WHEN NEW.completed THEN 'task.completed' ELSE 'task.uncompleted' END,
                                task_json(NEW), NEW.updated_at);
    ELSE
        PERFORM webhook_enqueue(owner, 'task.updated', task_json(NEW), NEW.updated_at);
    END IF;
    RETURN NULL;
END
$$;
