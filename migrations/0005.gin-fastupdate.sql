-- The search GIN indexes of 0003 take writes into a small pending list (fastupdate) instead of
-- placing each entry at once. With fastupdate off, every insert and every non-HOT update (any
-- PATCH: updated_at is indexed) placed each trigram of the title and description one by one:
-- about half of PostgreSQL's CPU per write under make bench-http (POST 600 -> 490 us, PATCH
-- 950 -> 540 us per request). The list is capped at 64 kB, the minimum, and merged in one batch
-- when full or at autovacuum: a search reads at most 8 pending pages, measured at under 0.05 ms
-- more per tag or word search (bench-listing's 100,000-task user, full list against empty).
-- depends: 0004.idempotency-keys

ALTER INDEX tasks_user_tags_idx SET (fastupdate = on, gin_pending_list_limit = 64);
ALTER INDEX tasks_user_title_trgm_idx SET (fastupdate = on, gin_pending_list_limit = 64);
ALTER INDEX tasks_user_description_trgm_idx SET (fastupdate = on, gin_pending_list_limit = 64);
