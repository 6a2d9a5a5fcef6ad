-- Undo 0005: the search GIN indexes place every entry at once again, as 0003 created them.
-- Turning fastupdate off leaves the pending list as it is; VACUUM tasks merges it.

ALTER INDEX tasks_user_tags_idx SET (fastupdate = off);
ALTER INDEX tasks_user_title_trgm_idx SET (fastupdate = off);
ALTER INDEX tasks_user_description_trgm_idx SET (fastupdate = off);
ALTER INDEX tasks_user_tags_idx RESET (gin_pending_list_limit);
ALTER INDEX tasks_user_title_trgm_idx RESET (gin_pending_list_limit);
ALTER INDEX tasks_user_description_trgm_idx RESET (gin_pending_list_limit);
