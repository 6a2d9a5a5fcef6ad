-- Undo 0003: drop the listing indexes, the lower-cased tags and their function.
-- The extensions stay: other schemas in the database may use them.
DROP INDEX tasks_user_description_trgm_idx;
DROP INDEX tasks_user_title_trgm_idx;
DROP INDEX tasks_user_tags_idx;
DROP INDEX tasks_pending_due_desc_idx;
DROP INDEX tasks_pending_due_asc_idx;
DROP INDEX tasks_pending_title_idx;
DROP INDEX tasks_pending_priority_idx;
DROP INDEX tasks_pending_updated_idx;
DROP INDEX tasks_pending_created_idx;
DROP INDEX tasks_user_due_desc_idx;
DROP INDEX tasks_user_due_asc_idx;
DROP INDEX tasks_user_title_idx;
DROP INDEX tasks_user_priority_idx;
DROP INDEX tasks_user_updated_idx;
ALTER TABLE tasks DROP COLUMN tags_lower;
DROP FUNCTION lower_tags(text[]);
