-- Undo 0003: drop the listing indexes and the tag function (pg_trgm stays: others may use it).
DROP INDEX tasks_description_trgm_idx;
DROP INDEX tasks_title_trgm_idx;
DROP INDEX tasks_tags_idx;
DROP INDEX tasks_user_due_desc_idx;
DROP INDEX tasks_user_due_asc_idx;
DROP INDEX tasks_user_title_idx;
DROP INDEX tasks_user_priority_idx;
DROP INDEX tasks_user_updated_idx;
DROP FUNCTION lower_tags(text[]);
