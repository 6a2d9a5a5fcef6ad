-- Every statement on webhooks and their deliveries (API.md §10). The API's statements each filter by
-- user_id; the delivery process's scans (`find_*`, `forget_*`) look across users on purpose and run
-- only in `todo-api deliver` (docs/webhooks.md). `count_deliveries_by_status` looks across users too,
-- in the web service, once per /metrics scrape, with the single-shard guard lifted for its own
-- transaction (docs/metrics.md).

-- fragment: webhook_columns
-- A webhook's columns as the API returns it, in WebhookSchema's order (webhooks/schemas.py); never the secret.
id, user_id, url, events, description, active, disabled_reason, created_at, updated_at, version

-- fragment: delivery_columns
-- A delivery's columns as the API returns it (webhooks/schemas.py dump_delivery).
id, webhook_id, event, created_at, status, attempts, last_attempt_at, last_status, last_error, next_attempt_at

-- name: lock_user_webhooks
-- Serialise one user's webhook registrations until the transaction ends, so that two at once cannot
-- both pass the limit: the count that follows sees the other's committed row.
SELECT pg_advisory_xact_lock(hashtextextended('webhooks ' || %(user_id)s, 0));

-- name: insert_webhook
-- Register a webhook unless the owner has %(limit)s already; returns it with its secret, or nothing.
INSERT INTO webhooks (user_id, url, events, description, active, secret)
SELECT %(user_id)s, %(url)s, %(events)s, %(description)s, %(active)s, %(secret)s
WHERE (SELECT count(*) FROM webhooks WHERE user_id = %(user_id)s) < %(limit)s
RETURNING {webhook_columns}, secret;

-- name: list_webhooks
-- The owner's webhooks, oldest first (at most 10).
SELECT {webhook_columns}
FROM webhooks
WHERE user_id = %(user_id)s
ORDER BY id;

-- name: get_webhook
-- One webhook of its owner.
SELECT {webhook_columns}
FROM webhooks
WHERE user_id = %(user_id)s AND id = %(webhook_id)s;

-- name: get_webhook_version
-- The current version of one webhook, to tell "no such webhook" (404) from "version moved on" (412).
SELECT version
FROM webhooks
WHERE user_id = %(user_id)s AND id = %(webhook_id)s;

-- name: update_webhook
-- Set the fields named in %(fields)s if the version is one of %(expected_versions)s (NULL: any);
-- turning it active clears disabled_reason.
UPDATE webhooks
SET url             = CASE WHEN 'url' = ANY(%(fields)s) THEN %(url)s ELSE url END,
    events          = CASE WHEN 'events' = ANY(%(fields)s) THEN %(events)s ELSE events END,
    description     = CASE WHEN 'description' = ANY(%(fields)s) THEN %(description)s ELSE description END,
    active          = CASE WHEN 'active' = ANY(%(fields)s) THEN %(active)s ELSE active END,
    disabled_reason = CASE WHEN 'active' = ANY(%(fields)s) AND %(active)s THEN NULL ELSE disabled_reason END,
    updated_at      = now(),
    version         = version + 1
WHERE user_id = %(user_id)s AND id = %(webhook_id)s
  AND (%(expected_versions)s::integer[] IS NULL OR version = ANY(%(expected_versions)s::integer[]))
RETURNING {webhook_columns};

-- name: delete_webhook
-- Remove a webhook if the version still matches, and its deliveries with it, in one statement (no
-- foreign key does it: migration 0013); returns the webhook.
WITH gone AS (
    DELETE FROM webhooks
    WHERE user_id = %(user_id)s AND id = %(webhook_id)s
      AND (%(expected_versions)s::integer[] IS NULL OR version = ANY(%(expected_versions)s::integer[]))
    RETURNING {webhook_columns}
), dropped AS (
    DELETE FROM webhook_deliveries
    WHERE user_id = %(user_id)s AND webhook_id IN (SELECT id FROM gone)
)
SELECT * FROM gone;

-- name: insert_test_delivery
-- Queue a webhook.test event for this webhook alone, its body %(payload)s; returns the delivery.
INSERT INTO webhook_deliveries (user_id, webhook_id, event, payload)
VALUES (%(user_id)s, %(webhook_id)s, 'webhook.test', %(payload)s)
RETURNING {delivery_columns};

-- name: list_deliveries
-- One page of a webhook's deliveries, newest first, after the cursor's (created_at, id) when given,
-- plus one row to tell whether another page exists.
SELECT {delivery_columns}
FROM webhook_deliveries
WHERE user_id = %(user_id)s AND webhook_id = %(webhook_id)s
  AND (%(after_created_at)s::timestamptz IS NULL
       OR (created_at, id) < (%(after_created_at)s::timestamptz, %(after_id)s::uuid))
ORDER BY created_at DESC, id DESC
LIMIT %(page_size)s;

-- --- the delivery process ------------------------------------------------------------------

-- name: find_users_with_due_deliveries
-- Users with a delivery due to an active webhook, over every user (every shard on Citus): the claim
-- that follows is one user's statement.
SELECT DISTINCT d.user_id
FROM webhook_deliveries d
JOIN webhooks w ON w.user_id = d.user_id AND w.id = d.webhook_id
WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND w.active
LIMIT %(limit)s;

-- name: claim_due_deliveries
-- Take up to %(limit)s of the user's due deliveries to active webhooks, skipping those another
-- process holds, for one attempt each: the attempt is counted and next_attempt_at pushed past its
-- deadline (%(lease_seconds)s), so the claim commits at once and a killed process's attempt is tried
-- again after that. Returns what an attempt needs: where to, the secret, the body.
WITH due AS (
    SELECT d.id
    FROM webhook_deliveries d
    JOIN webhooks w ON w.user_id = d.user_id AND w.id = d.webhook_id
    WHERE d.user_id = %(user_id)s AND d.status = 'pending' AND d.next_attempt_at <= now() AND w.active
    ORDER BY d.next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE OF d SKIP LOCKED
)
UPDATE webhook_deliveries d
SET attempts        = d.attempts + 1,
    last_attempt_at = now(),
    next_attempt_at = (now() AT TIME ZONE 'UTC' + make_interval(secs => %(lease_seconds)s)) AT TIME ZONE 'UTC'
FROM due, webhooks w
WHERE d.user_id = %(user_id)s AND d.id = due.id AND w.user_id = %(user_id)s AND w.id = d.webhook_id
RETURNING d.user_id, d.id, d.webhook_id, d.event, d.payload, d.attempts, w.url, w.secret;

-- name: finish_attempt
-- Record the attempt numbered %(attempts)s: %(status)s 'succeeded' or 'failed' ends the delivery,
-- 'pending' schedules the next one %(retry_in_seconds)s from now. Only if that attempt's claim still
-- holds (no other process took the delivery since: at least once, never a lost outcome).
UPDATE webhook_deliveries
SET status          = %(status)s,
    last_status     = %(last_status)s,
    last_error      = %(last_error)s,
    -- shifted in UTC wall time (timestamp + interval): Citus takes only immutable arithmetic in a SET
    next_attempt_at = (now() AT TIME ZONE 'UTC' + make_interval(secs => %(retry_in_seconds)s)
                       + CASE WHEN %(status)s = 'pending' THEN interval '0' END) AT TIME ZONE 'UTC',
    ended_at        = now() + CASE WHEN %(status)s <> 'pending' THEN interval '0' END
WHERE user_id = %(user_id)s AND id = %(delivery_id)s AND attempts = %(attempts)s AND status = 'pending'
RETURNING id;

-- name: hand_back_attempt
-- An attempt the process gave up on while stopping: uncounted, and due again at once.
UPDATE webhook_deliveries
SET attempts = attempts - 1, next_attempt_at = now()
WHERE user_id = %(user_id)s AND id = %(delivery_id)s AND attempts = %(attempts)s AND status = 'pending'
RETURNING id;

-- name: disable_gone_webhook
-- The endpoint answered 410: the webhook becomes inactive, "gone", at its next version, and its other
-- pending deliveries fail (the one that met the 410 is recorded by finish_attempt).
WITH disabled AS (
    UPDATE webhooks
    SET active = false, disabled_reason = 'gone', updated_at = now(), version = version + 1
    WHERE user_id = %(user_id)s AND id = %(webhook_id)s AND active
    RETURNING id
)
UPDATE webhook_deliveries
SET status = 'failed', next_attempt_at = NULL, ended_at = now(),
    last_error = 'not attempted: the endpoint answered 410 Gone to another delivery'
WHERE user_id = %(user_id)s AND webhook_id = %(webhook_id)s AND status = 'pending'
  AND id <> %(delivery_id)s AND EXISTS (SELECT FROM disabled)
RETURNING id;

-- name: find_users_with_reminder_webhooks
-- Users with an active webhook subscribed to reminder.due (webhooks is small: at most 10 a user).
SELECT DISTINCT user_id
FROM webhooks
WHERE active AND events && ARRAY['reminder.due', '*'];

-- name: send_due_reminders
-- Fire the user's due reminders once each (migrations/0011 webhook_send_due_reminders).
SELECT webhook_send_due_reminders(%(user_id)s) AS fired;

-- name: forget_ended_deliveries
-- Retention: ended deliveries older than %(retention_days)s, over every user.
DELETE FROM webhook_deliveries
WHERE status <> 'pending' AND ended_at < now() - make_interval(days => %(retention_days)s);

-- name: forget_orphaned_deliveries
-- Pending deliveries whose webhook is gone, over every user: a write's trigger that read the webhook
-- just before its DELETE committed queued one the DELETE did not see (no claim ever takes it: claims
-- join webhooks). Reads the pending deliveries through webhook_deliveries_due_idx.
DELETE FROM webhook_deliveries d
WHERE d.status = 'pending' AND d.next_attempt_at IS NOT NULL
  AND NOT EXISTS (SELECT FROM webhooks w WHERE w.user_id = d.user_id AND w.id = d.webhook_id);

-- name: forget_old_reminders
-- Reminder markers past the 24-hour window can never matter again.
DELETE FROM task_reminders
WHERE remind_at < now() - interval '2 days';

-- --- /metrics (webhooks/metrics.py) -------------------------------------------------------

-- name: allow_delivery_metrics_fan_out
-- For this transaction only: the statement that follows may read every shard (on Citus, the
-- single-shard guard citus.multi_task_query_log_level is off; a placeholder setting nobody reads on
-- plain PostgreSQL), and gives up after %(timeout_ms)s ms. The one fan-out of the web service.
SELECT set_config('citus.multi_task_query_log_level', 'off', true),
       set_config('statement_timeout', %(timeout_ms)s, true);

-- name: count_deliveries_by_status
-- Over every user: deliveries pending, the age in seconds of the oldest pending one (0 when none),
-- and the ended ones still kept (WEBHOOK_RETENTION_DAYS) by outcome. One row, one pass.
SELECT count(*) FILTER (WHERE status = 'pending') AS pending,
       count(*) FILTER (WHERE status = 'succeeded') AS succeeded,
       count(*) FILTER (WHERE status = 'failed') AS failed,
       COALESCE(greatest(extract(epoch FROM now() - min(created_at) FILTER (WHERE status = 'pending')), 0), 0)::float8
           AS oldest_pending_seconds
FROM webhook_deliveries;
