-- Webhooks (API.md §10): each user's endpoints, and the outbox of their deliveries, written by a
-- trigger on tasks in the same transaction as the change (a change that commits always yields its
-- events, one that rolls back none), and reminders sent once per task and remind_at value. The
-- delivery process (`todo-api deliver`) reads the outbox. docs/webhooks.md has the design.
-- depends: 0008.distribute-by-user

-- Citus: one connection per node for the whole migration, so that the functions created after the
-- tables may follow their DDL (harmless on plain PostgreSQL: a custom setting nobody reads).
SET LOCAL citus.multi_shard_modify_mode TO 'sequential';

-- webhooks.id: numbers from a sequence rather than an identity, as tasks (0008: Citus and identities).
CREATE SEQUENCE webhooks_id_seq AS bigint;

CREATE TABLE webhooks (
    user_id         text        NOT NULL,
    id              bigint      NOT NULL DEFAULT nextval('webhooks_id_seq'),
    url             text        NOT NULL,
    events          text[]      NOT NULL,
    description     text,
    active          boolean     NOT NULL DEFAULT true,
    disabled_reason text,
    secret          text        NOT NULL,  -- whsec_...: the service signs with it, so it is kept as is
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    version         integer     NOT NULL DEFAULT 1,
    -- user_id first: distributed by user with tasks; the trigger's probe is this index.
    CONSTRAINT webhooks_pkey PRIMARY KEY (user_id, id),
    CONSTRAINT webhooks_url_length CHECK (char_length(url) BETWEEN 1 AND 2048),
    CONSTRAINT webhooks_events_given CHECK (cardinality(events) >= 1 AND array_position(events, NULL) IS NULL),
    CONSTRAINT webhooks_description_length CHECK (char_length(description) <= 200),
    CONSTRAINT webhooks_disabled_only_when_inactive CHECK (disabled_reason IS NULL OR NOT active),
    CONSTRAINT webhooks_version_positive CHECK (version >= 1)
);
ALTER SEQUENCE webhooks_id_seq OWNED BY webhooks.id;

-- The outbox: one row per event and webhook. `id` is the webhook-id header (the same on every retry).
-- `payload` is the body as first written ({type, timestamp, data}), so every attempt sends the same.
-- While pending, next_attempt_at is when it may be tried next; a claimed attempt pushes it past the
-- attempt's deadline (a lease), so a killed process's attempt is tried again once that passes.
CREATE TABLE webhook_deliveries (
    user_id         text        NOT NULL,
    id              uuid        NOT NULL DEFAULT gen_random_uuid(),
    webhook_id      bigint      NOT NULL,
    event           text        NOT NULL,
    payload         jsonb       NOT NULL,
    status          text        NOT NULL DEFAULT 'pending',
    attempts        integer     NOT NULL DEFAULT 0,
    next_attempt_at timestamptz DEFAULT now(),
    last_attempt_at timestamptz,
    last_status     integer,
    last_error      text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    ended_at        timestamptz,
    CONSTRAINT webhook_deliveries_pkey PRIMARY KEY (user_id, id),
    CONSTRAINT webhook_deliveries_status_known CHECK (status IN ('pending', 'succeeded', 'failed')),
    CONSTRAINT webhook_deliveries_pending_is_scheduled CHECK ((status = 'pending') = (next_attempt_at IS NOT NULL)),
    CONSTRAINT webhook_deliveries_ended_when_done CHECK ((status = 'pending') = (ended_at IS NULL)),
    CONSTRAINT webhook_deliveries_attempts_counted CHECK (attempts >= 0)
);
-- A webhook's delivery log, newest first (…/deliveries), walked by keyset.
CREATE INDEX webhook_deliveries_log_idx ON webhook_deliveries (user_id, webhook_id, created_at, id);
-- What is due, over every user: the delivery process's scan.
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
-- Ended deliveries past WEBHOOK_RETENTION_DAYS, for the retention purge.
CREATE INDEX webhook_deliveries_ended_idx ON webhook_deliveries (ended_at) WHERE status <> 'pending';

-- One row per reminder fired: a task's remind_at value is sent once, whichever delivery process
-- gets there first (the primary key decides). Rows older than the 24-hour window are forgotten.
CREATE TABLE task_reminders (
    user_id   text        NOT NULL,
    task_id   bigint      NOT NULL,
    remind_at timestamptz NOT NULL,
    sent_at   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT task_reminders_pkey PRIMARY KEY (user_id, task_id, remind_at)
);

CALL distribute_by_user('webhooks');
CALL distribute_by_user('webhook_deliveries');
CALL distribute_by_user('task_reminders');
-- Deleting a webhook drops its deliveries (API.md §10), in the DELETE's own statement. Added once both
-- tables are distributed: Citus takes a key between colocated tables, not one from a local table.
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_webhook_fkey FOREIGN KEY (user_id, webhook_id)
    REFERENCES webhooks (user_id, id) ON DELETE CASCADE;

-- A timestamp as the API writes it (platform/fields.py format_timestamp): RFC 3339 in UTC with Z,
-- microseconds only when there are some, whatever the session's TimeZone. One to_char: it runs five
-- times for every event a write queues.
CREATE FUNCTION api_timestamp(moment timestamptz) RETURNS text
    LANGUAGE sql STABLE AS $$
    SELECT replace(to_char(moment AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'), '.000000Z', 'Z')
$$;

-- A task as the API returns it (tasks/schemas.py dump_task; tests/test_webhooks.py holds the two
-- equal), from its row. Polymorphic, because on a Citus shard the row's type is the shard's
-- (tasks_102008), not tasks; the fields are read by name either way. A new task column is one more
-- key here, in a later migration's CREATE OR REPLACE.
CREATE FUNCTION task_json(task anyelement) RETURNS jsonb
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

-- Queue `event` with `data`, stamped `at`, for each of the owner's active webhooks subscribed to it (or
-- to "*"). Plain INSERT ... VALUES, one per webhook: Citus runs each on the shard where the write runs.
-- Every kind of event goes through here (tasks' trigger, reminders; lists' trigger later).
CREATE FUNCTION webhook_enqueue(owner text, event text, data jsonb, at timestamptz) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    hook bigint;
    body jsonb;
    queued integer := 0;
BEGIN
    FOR hook IN SELECT id FROM webhooks
                WHERE user_id = owner AND active AND events && ARRAY[event, '*'] LOOP
        body := COALESCE(body, jsonb_build_object('type', event, 'timestamp', api_timestamp(at), 'data', data));
        INSERT INTO webhook_deliveries (user_id, webhook_id, event, payload) VALUES (owner, hook, event, body);
        queued := queued + 1;
    END LOOP;
    RETURN queued;
END
$$;

-- Every write to a task that the API counts (its version moved, or it was created or deleted) queues
-- its event. A user without an active webhook costs one probe of webhooks' primary key and nothing else.
-- The event's timestamp is the write's: the task's updated_at (the transaction's time, which Citus
-- takes from the coordinator), and for a deletion the time of the transaction on the shard.
CREATE FUNCTION tasks_enqueue_webhook_event() RETURNS trigger
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

-- Fire the owner's due reminders (API.md §10): each pending task whose remind_at passed within the
-- last 24 hours, once per remind_at value (a new value arms it again; a completed or deleted task is
-- not found). The marker's primary key makes a second process's insert find a conflict: sent once.
-- Reads tasks through tasks_pending_remind_asc_idx. Returns how many reminders it fired.
CREATE FUNCTION webhook_send_due_reminders(owner text) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    due record;
    fired integer := 0;
BEGIN
    FOR due IN SELECT t.id, t.remind_at, task_json(t) AS task
               FROM tasks t
               WHERE t.user_id = owner AND NOT t.completed
                 AND COALESCE(t.remind_at, 'infinity'::timestamptz) <= now()
                 AND COALESCE(t.remind_at, 'infinity'::timestamptz) > now() - interval '24 hours'
                 AND NOT EXISTS (SELECT FROM task_reminders r
                                 WHERE r.user_id = owner AND r.task_id = t.id AND r.remind_at = t.remind_at) LOOP
        INSERT INTO task_reminders (user_id, task_id, remind_at) VALUES (owner, due.id, due.remind_at)
        ON CONFLICT DO NOTHING;
        IF FOUND THEN
            PERFORM webhook_enqueue(owner, 'reminder.due', due.task, now());
            fired := fired + 1;
        END IF;
    END LOOP;
    RETURN fired;
END
$$;

SET LOCAL citus.enable_unsafe_triggers = on;  -- a trigger on a distributed table (docs/scaling.md)
CREATE TRIGGER tasks_webhook_event AFTER INSERT OR UPDATE OR DELETE ON tasks
    FOR EACH ROW EXECUTE FUNCTION tasks_enqueue_webhook_event();
