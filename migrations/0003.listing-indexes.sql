-- Indexes for every listing a frontend makes: one (user_id, sort key, id) btree per sort key,
-- a GIN index for case-insensitive tag filters and trigram indexes for the substring search.
-- depends: 0002.cursor-signing-key

CREATE EXTENSION IF NOT EXISTS pg_trgm;

-- Tags as stored, lower-cased: what the tag filter compares with.
CREATE FUNCTION lower_tags(tags text[]) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT coalesce(array_agg(lower(tag)), '{}') FROM unnest(tags) AS tag);

CREATE INDEX tasks_user_updated_idx ON tasks (user_id, updated_at, id);
CREATE INDEX tasks_user_priority_idx ON tasks (user_id, priority, id);
CREATE INDEX tasks_user_title_idx ON tasks (user_id, title, id);
-- Tasks without due_at sort last in both directions: +infinity ascending, -infinity descending.
CREATE INDEX tasks_user_due_asc_idx ON tasks (user_id, (COALESCE(due_at, 'infinity'::timestamptz)), id);
CREATE INDEX tasks_user_due_desc_idx ON tasks (user_id, (COALESCE(due_at, '-infinity'::timestamptz)), id);
CREATE INDEX tasks_tags_idx ON tasks USING gin (lower_tags(tags));
CREATE INDEX tasks_title_trgm_idx ON tasks USING gin (title gin_trgm_ops);
CREATE INDEX tasks_description_trgm_idx ON tasks USING gin (description gin_trgm_ops);
