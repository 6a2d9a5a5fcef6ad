-- Webhooks meet lists (API.md §10, §8, §9): a task's event carries its list_id, parent_id and
-- position; a list's changes send list.created, list.updated and list.deleted; the tasks deleted with
-- their list send nothing of their own (one list.deleted says it). Subtasks completed with their
-- parent need nothing here: each row's update fires the tasks trigger, one task.completed each.
-- depends: 0009.lists-subtasks-order 0011.webhooks

SET LOCAL citus.multi_shard_modify_mode TO 'sequential';  -- functions after DDL on distributed tables

-- A task as the API returns it (tasks/schemas.py dump_task; tests/test_webhooks.py holds the two equal).
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
        'list_id', task.list_id, 'parent_id', task.parent_id, 'position', task.position,
        'created_at', api_timestamp(task.created_at),
        'updated_at', api_timestamp(task.updated_at),
        'version', task.version)
$$;

-- A list as the API returns it (lists/schemas.py dump_list; tests/test_webhook_events.py holds them equal).
CREATE FUNCTION list_json(list anyelement) RETURNS jsonb
    LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object(
        'id', list.id, 'user_id', list.user_id, 'name', list.name, 'position', list.position,
        'created_at', api_timestamp(list.created_at),
        'updated_at', api_timestamp(list.updated_at),
        'version', list.version)
$$;

-- 0011's function, and one more rule for a deletion: a task whose list is already gone went with its
-- list (the foreign key's cascade runs after the list's row is deleted), and list.deleted says so.
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
        IF OLD.list_id IS NOT NULL AND NOT EXISTS (SELECT FROM lists WHERE user_id = owner AND id = OLD.list_id) THEN
            RETURN NULL;  -- deleted with its list
        END IF;
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

-- A list's writes the API counts (created, renamed or moved: its version moved, or deleted) queue
-- their event, as tasks' do; a user without an active webhook costs one probe of webhooks' key.
CREATE FUNCTION lists_enqueue_webhook_event() RETURNS trigger
    LANGUAGE plpgsql AS $$
DECLARE
    owner text := CASE WHEN TG_OP = 'DELETE' THEN OLD.user_id ELSE NEW.user_id END;
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.version = OLD.version THEN
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT FROM webhooks WHERE user_id = owner AND active) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM webhook_enqueue(owner, 'list.created', list_json(NEW), NEW.updated_at);
    ELSIF TG_OP = 'DELETE' THEN
        PERFORM webhook_enqueue(owner, 'list.deleted', list_json(OLD), now());
    ELSE
        PERFORM webhook_enqueue(owner, 'list.updated', list_json(NEW), NEW.updated_at);
    END IF;
    RETURN NULL;
END
$$;

SET LOCAL citus.enable_unsafe_triggers = on;  -- a trigger on a distributed table (docs/scaling.md)
CREATE TRIGGER lists_webhook_event AFTER INSERT OR UPDATE OR DELETE ON lists
    FOR EACH ROW EXECUTE FUNCTION lists_enqueue_webhook_event();
