-- Personal access tokens (API.md §1). Each statement names its user: the table is distributed by
-- user_id, and a token carries its user (docs/tokens.md), so even the lookup of a presented token
-- goes to one shard. Only the SHA-256 of a token is stored.

-- fragment: access_token_columns
-- A token's metadata as the API returns it (never its hash): every statement that returns tokens says it.
id, name, scopes, expires_at, created_at, last_used_at

-- name: lock_access_tokens_of_user
-- Serialise this user's token creations until the transaction ends, so that two at once cannot both
-- pass the limit's count (count_access_tokens, then insert_access_token). A transaction-scoped advisory lock on the user: no row needs to exist yet.
SELECT pg_advisory_xact_lock(hashtextextended('access_tokens:' || %(user_id)s, 0));

-- name: count_access_tokens
-- How many tokens the user holds (expired ones included): checked against the limit under the lock.
SELECT count(*) AS tokens
FROM access_tokens
WHERE user_id = %(user_id)s;

-- name: insert_access_token
-- Create a token for its owner; it expires %(expires_in_days)s days from now.
INSERT INTO access_tokens (user_id, name, scopes, token_hash, expires_at)
VALUES (%(user_id)s, %(name)s, %(scopes)s, %(token_hash)s, now() + make_interval(days => %(expires_in_days)s))
RETURNING {access_token_columns};

-- name: list_access_tokens
-- Every token of the user, newest first.
SELECT {access_token_columns}
FROM access_tokens
WHERE user_id = %(user_id)s
ORDER BY created_at DESC, id DESC;

-- name: delete_access_token
-- Revoke one token of its owner: the row goes, and with it every request the token could make.
DELETE FROM access_tokens
WHERE user_id = %(user_id)s AND id = %(token_id)s
RETURNING {access_token_columns};

-- fragment: access_token_lookup
-- The token presented on a request, by its owner and hash: one probe of the unique index. It answers
-- in plain values: whether it has expired and whether its last-used minute is older than this one, by
-- the database's clock, the one its expiry was set by; its scopes as one text ("tasks:read webhooks"),
-- cheaper to read than an array. The caller compares the hash again in constant time
-- (auth/tokens/credentials.py).
SELECT id, array_to_string(scopes, ' ') AS scopes, token_hash, expires_at <= now() AS expired,
       last_used_at IS NULL OR last_used_at < date_trunc('minute', now()) AS used_before_this_minute
FROM access_tokens
WHERE user_id = %(user_id)s AND token_hash = %(token_hash)s

-- name: find_access_token
-- The lookup alone, run through libpq directly (Database.fetch_values: every value as text), for a
-- request whose first statement cannot carry it (with_access_token).
{access_token_lookup};

-- name: with_access_token
-- The lookup, carried by a read of the token's own user in the same statement, so that a GET with a
-- personal access token makes one round trip, as with a JWT (Database.fetch_one, docs/tokens.md).
-- {statement} is a named SELECT of the request; it runs only for a live token: no token row, no
-- row at all; an expired token, its row with answered NULL. The newline before its closing
-- parenthesis ends any comment on its last line.
SELECT token.*, answer.*
FROM ({access_token_lookup}) AS token
LEFT JOIN LATERAL (
    SELECT true AS answered, statement.*
    FROM ({statement}
    ) AS statement
    WHERE NOT token.expired
) AS answer ON true;

-- name: touch_access_token
-- Note the minute a token was last used: a write only when the stored minute is older, so at most
-- one small write per token per minute however many requests it makes.
UPDATE access_tokens
SET last_used_at = date_trunc('minute', now())
WHERE user_id = %(user_id)s AND id = %(token_id)s
  AND (last_used_at IS NULL OR last_used_at < date_trunc('minute', now()))
RETURNING id;
