-- Personal access tokens (API.md §1): credentials a signed-in user makes for scripts and agents.
-- Only the SHA-256 of a token is kept; the token itself names its user (docs/tokens.md), so the
-- lookup of a presented token is by (user_id, token_hash): one shard on Citus, one index probe.
-- depends: 0008.distribute-by-user

-- Ids from a sequence rather than an identity: Citus refuses to undistribute a table with an
-- identity column (this file's rollback), as for tasks in 0008.
CREATE SEQUENCE access_tokens_id_seq AS bigint;

CREATE TABLE access_tokens (
    user_id      text        NOT NULL CHECK (char_length(user_id) BETWEEN 1 AND 255),
    id           bigint      NOT NULL DEFAULT nextval('access_tokens_id_seq'),
    name         text        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 100 AND btrim(name) <> ''),
    scopes       text[]      NOT NULL CHECK (cardinality(scopes) BETWEEN 1 AND 3
                                             AND scopes <@ ARRAY['tasks:read', 'tasks:write', 'webhooks']),
    token_hash   bytea       NOT NULL CHECK (octet_length(token_hash) = 32),  -- SHA-256 of the whole token
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    -- user_id first: the table distributes like tasks, and every statement names its user.
    PRIMARY KEY (user_id, id),
    UNIQUE (user_id, token_hash)
);
ALTER SEQUENCE access_tokens_id_seq OWNED BY access_tokens.id;

CALL distribute_by_user('access_tokens');
