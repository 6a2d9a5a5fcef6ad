-- A random key, shared by every host through the database, that signs listing cursors.
-- depends: 0001.create-tasks

CREATE TABLE signing_keys (
    name   text  PRIMARY KEY,
    secret bytea NOT NULL CHECK (octet_length(secret) >= 32)
);

-- gen_random_uuid() draws from the server's strong random source.
INSERT INTO signing_keys (name, secret)
VALUES ('cursor', sha256((gen_random_uuid()::text || gen_random_uuid()::text || gen_random_uuid()::text)::bytea));
