-- Idempotency-Key bookkeeping for POST. Every statement is scoped to the user who sent the key.
-- A key is remembered for 24 hours; an older row counts as absent, so purging is only tidying.

-- name: claim_idempotency_key
-- Take the key for this request: a new row, or an expired one taken over. No row back means the
-- key is live and held by an earlier request (this statement waits while that one is in flight).
-- EXCLUDED.created_at is now(): Citus allows only immutable functions in DO UPDATE.
INSERT INTO idempotency_keys AS k (user_id, key, request_hash, created_at)
VALUES (%(user_id)s, %(key)s, %(request_hash)s, now())
ON CONFLICT (user_id, key) DO UPDATE
    SET request_hash = EXCLUDED.request_hash, status = NULL, response = NULL,
        location = NULL, etag = NULL, created_at = EXCLUDED.created_at
    WHERE EXCLUDED.created_at - k.created_at > interval '24 hours'
RETURNING key;

-- name: get_idempotent_response
-- The response remembered for a live key.
SELECT request_hash, status, response, location, etag
FROM idempotency_keys
WHERE user_id = %(user_id)s AND key = %(key)s AND created_at >= now() - interval '24 hours';

-- name: save_idempotent_response
-- Remember the response of the request that holds the key.
UPDATE idempotency_keys
SET status = %(status)s, response = %(response)s, location = %(location)s, etag = %(etag)s
WHERE user_id = %(user_id)s AND key = %(key)s
RETURNING key;

-- name: purge_idempotency_keys
-- Forget up to %(batch)s of this user's expired keys, oldest first.
DELETE FROM idempotency_keys
WHERE user_id = %(user_id)s AND created_at < now() - interval '24 hours'
  AND key = ANY(ARRAY(SELECT key FROM idempotency_keys
                      WHERE user_id = %(user_id)s AND created_at < now() - interval '24 hours'
                      ORDER BY created_at
                      LIMIT %(batch)s))
RETURNING key;
