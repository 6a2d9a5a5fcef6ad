-- Realistic tasks for one user, fast: `count` rows in one INSERT ... SELECT, deterministic
-- (hashint4 of the row number, no random()), the newest created at `newest`, one every 150 s.
--   titles    15 verbs x 20 objects ("Buy milk", "Call the plumber"), 1 in 5,000 "... the notary"
--   notes     half have none; the rest one of 5 short sentences
--   tags      8-tag vocabulary, each on 1 task in 8 (about one tag per task), 1 in 2,000 "Passport"
--   priority  none 3/8, low 2/8, medium 2/8, high 1/8
--   due_at    2 in 5 tasks, 0-30 days after creation
--   completed 6 in 10 of the newest 2,000 tasks, 99 in 100 older ones (pending work is recent)
INSERT INTO tasks (user_id, title, description, completed, completed_at, priority, tags, due_at, created_at, updated_at)
SELECT %(user_id)s,
       verbs[1 + mod(h1, 15)] || ' ' || CASE WHEN mod(h2, 5000) = 0 THEN 'the notary' ELSE objects[1 + mod(h2, 20)] END,
       CASE WHEN mod(h3, 2) = 1 THEN notes[1 + mod(h3 / 2, 5)] END,
       done,
       CASE WHEN done THEN updated END,
       (ARRAY['none', 'none', 'none', 'low', 'low', 'medium', 'medium', 'high']::task_priority[])[1 + mod(h4, 8)],
       ARRAY(SELECT tag FROM unnest(vocabulary) WITH ORDINALITY AS t(tag, k) WHERE mod(h5 >> (3 * k::integer), 8) = 0)
           || CASE WHEN mod(h5, 2000) = 0 THEN ARRAY['Passport'] ELSE '{}' END,
       CASE WHEN mod(h6, 5) < 2 THEN created + mod(h6, 43200) * interval '1 minute' END,
       created,
       updated
FROM (
    SELECT *,
           created + mod(h1, 1000) * interval '1 minute' AS updated,
           CASE WHEN %(count)s - n < 2000 THEN mod(h7, 10) >= 4 ELSE mod(h7, 100) <> 0 END AS done
    FROM (
        SELECT n,
               hashint4(n * 7 + 1) & 2147483647 AS h1, hashint4(n * 7 + 2) & 2147483647 AS h2,
               hashint4(n * 7 + 3) & 2147483647 AS h3, hashint4(n * 7 + 4) & 2147483647 AS h4,
               hashint4(n * 7 + 5) & 2147483647 AS h5, hashint4(n * 7 + 6) & 2147483647 AS h6,
               hashint4(n * 7 + 7) & 2147483647 AS h7,
               %(newest)s::timestamptz - (%(count)s - n) * interval '150 seconds' AS created
        FROM generate_series(1, %(count)s) AS n
    ) AS hashed
) AS task,
LATERAL (
    SELECT ARRAY['Buy', 'Call', 'Email', 'Fix', 'Book', 'Pay', 'Plan', 'Review', 'Clean', 'Write', 'Read',
                 'Schedule', 'Return', 'Order', 'Check'] AS verbs,
           ARRAY['milk', 'the plumber', 'quarterly report', 'dentist appointment', 'birthday gift', 'car insurance',
                 'garden fence', 'slides for Monday', 'library books', 'tax return', 'team offsite', 'bike tyre',
                 'groceries', 'the landlord', 'invoice 42', 'kitchen sink', 'flight to Lisbon', 'passport photos',
                 'school forms', 'the electrician'] AS objects,
           ARRAY['Remember to check the details first.', 'Ask Sam about it.', 'See the email thread.',
                 'Before the weekend.', 'Needs the receipt.'] AS notes,
           ARRAY['home', 'work', 'errands', 'health', 'finance', 'family', 'urgent', 'someday'] AS vocabulary
) AS words
