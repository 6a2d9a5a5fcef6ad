-- Idempotency-Key on POST: the first response to each (user, key), replayed to retries for 24 hours.
-- depends: 0003.listing-indexes

CREATE TABLE idempotency_keys (
    user_id      text        NOT NULL,
    key          text        NOT NULL CHECK (char_length(key) BETWEEN 1 AND 255),
    request_hash text        NOT NULL,              -- sha256 of the body as canonical JSON
    status       smallint,                          -- NULL while the first request is in flight
    response     json,                              -- the response's `data`, kept as written
    location     text,
    etag         text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    -- user_id first: keys are scoped to their user, and the table distributes like tasks.
    PRIMARY KEY (user_id, key)
);

-- The per-user purge of expired keys walks this.
CREATE INDEX idempotency_keys_user_created_idx ON idempotency_keys (user_id, created_at);
