-- Lists and subtasks for one user's seeded tasks (bench/listing_seed.sql), deterministic: 20 lists;
-- every task whose id ends in 0 is the parent of the next three (ids ending in 1-3: its subtasks,
-- so 3 in 10 tasks are subtasks); 1 in 5 such groups (parent and subtasks together, as a subtask is
-- always in its parent's list) goes in one of the lists, the rest stay in the inbox. Positions are
-- the ones 0009 gave the tasks: creation order within each group of siblings. Two triggers on tasks
-- are set aside for the UPDATE (a bench's seed, not a migration; enabled again after): the sync
-- trigger (0007) would update the user's counter row once per row, hundreds of thousands of times
-- in one transaction; the webhook trigger (0011) would queue an AFTER event per row, for a user with
-- no webhook. The 20 lists' INSERT keeps the lists' triggers (0009, 0012): 20 rows.
ALTER TABLE tasks DISABLE TRIGGER tasks_sync_seq;
ALTER TABLE tasks DISABLE TRIGGER tasks_webhook_event;
WITH made AS (
    INSERT INTO lists (user_id, name, position)
    SELECT %(user_id)s, 'List ' || n, 'a' || substr('0123456789ABCDEFGHIJ', n, 1)
    FROM generate_series(1, 20) AS n
    RETURNING id
), listed AS (
    SELECT array_agg(id ORDER BY id) AS ids FROM made
)
UPDATE tasks
SET parent_id = CASE WHEN mod(id, 10) BETWEEN 1 AND 3 THEN id - mod(id, 10) END,
    list_id = CASE WHEN mod(hashint8(id - mod(id, 10)) & 2147483647, 5) = 0
                   THEN listed.ids[1 + mod(hashint8(id - mod(id, 10)) & 2147483647, 20)] END
FROM listed
WHERE user_id = %(user_id)s
  AND (mod(id, 10) BETWEEN 1 AND 3 AND EXISTS (SELECT FROM tasks AS parent
                                               WHERE parent.user_id = %(user_id)s AND parent.id = tasks.id - mod(tasks.id, 10))
       OR mod(hashint8(id - mod(id, 10)) & 2147483647, 5) = 0);
ALTER TABLE tasks ENABLE TRIGGER tasks_webhook_event;
ALTER TABLE tasks ENABLE TRIGGER tasks_sync_seq;
