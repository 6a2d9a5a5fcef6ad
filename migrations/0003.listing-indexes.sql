-- Indexes for every listing a frontend makes (API.md §4; plans in docs/listing-plans.md):
-- a (user_id, sort key, id) btree per sort key and direction, the same again over pending tasks
-- only, and GIN indexes that find a user's rows by tag or by substring when those are rare.
-- depends: 0002.cursor-signing-key

-- pg_trgm: trigram GIN for ILIKE '%text%'; btree_gin: user_id as the first column of a GIN index.
-- Both ship with PostgreSQL (contrib) and are available on Neon.
CREATE EXTENSION IF NOT EXISTS pg_trgm;
CREATE EXTENSION IF NOT EXISTS btree_gin;

-- Tags lower-cased: what the tag filter compares (both sides, so PostgreSQL's lower() decides).
CREATE FUNCTION lower_tags(tags text[]) RETURNS text[]
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    RETURN (SELECT coalesce(array_agg(lower(tag) ORDER BY position), '{}') FROM unnest(tags) WITH ORDINALITY AS t(tag, position));

-- Stored, so a filtered index scan reads it instead of calling lower_tags() on every row it skips.
ALTER TABLE tasks ADD COLUMN tags_lower text[] GENERATED ALWAYS AS (lower_tags(tags)) STORED;

-- One btree per sort order, each ending in id (the tie-breaker); scanned backwards for descending.
-- (user_id, created_at, id) exists since 0001. Tasks without due_at sort last in both directions:
-- +infinity ascending, -infinity descending, so due_at needs an index per direction.
CREATE INDEX tasks_user_updated_idx ON tasks (user_id, updated_at, id);
CREATE INDEX tasks_user_priority_idx ON tasks (user_id, priority, id);
CREATE INDEX tasks_user_title_idx ON tasks (user_id, title, id);
CREATE INDEX tasks_user_due_asc_idx ON tasks (user_id, (COALESCE(due_at, 'infinity'::timestamptz)), id);
CREATE INDEX tasks_user_due_desc_idx ON tasks (user_id, (COALESCE(due_at, '-infinity'::timestamptz)), id);

-- status=pending is the view people live in, and pending tasks are few among many completed ones:
-- without these, a pending list sorted by due date would skip every completed task due earlier.
CREATE INDEX tasks_pending_created_idx ON tasks (user_id, created_at, id) WHERE NOT completed;
CREATE INDEX tasks_pending_updated_idx ON tasks (user_id, updated_at, id) WHERE NOT completed;
CREATE INDEX tasks_pending_priority_idx ON tasks (user_id, priority, id) WHERE NOT completed;
CREATE INDEX tasks_pending_title_idx ON tasks (user_id, title, id) WHERE NOT completed;
CREATE INDEX tasks_pending_due_asc_idx ON tasks (user_id, (COALESCE(due_at, 'infinity'::timestamptz)), id)
    WHERE NOT completed;
CREATE INDEX tasks_pending_due_desc_idx ON tasks (user_id, (COALESCE(due_at, '-infinity'::timestamptz)), id)
    WHERE NOT completed;

-- A common tag or word fills a page within a few rows of an ordered scan; a rare one would not, so
-- the planner can instead collect the user's matching rows here and sort only those. fastupdate off:
-- a write pays for its entries at once (about 0.2 ms), rather than every search scanning a pending
-- list of recent writes until autovacuum merges it.
CREATE INDEX tasks_user_tags_idx ON tasks USING gin (user_id, tags_lower) WITH (fastupdate = off);
CREATE INDEX tasks_user_title_trgm_idx ON tasks USING gin (user_id, title gin_trgm_ops) WITH (fastupdate = off);
CREATE INDEX tasks_user_description_trgm_idx ON tasks USING gin (user_id, description gin_trgm_ops)
    WITH (fastupdate = off);
