-- webhook_deliveries loses its foreign key to webhooks. Every delivery the tasks and lists triggers
-- queue ran the key's check, a SELECT ... FOR KEY SHARE that also writes a row lock on the webhook:
-- about 75 µs of PostgreSQL's CPU per write with two webhooks (paired median of 12 rounds, bench notes
-- in docs/webhooks.md), a tenth of the webhooks' whole cost to a write. And a write racing the
-- webhook's DELETE failed on the key (the check met the deleted row). Now delete_webhook drops the
-- deliveries itself, in its own statement, and `todo-api deliver` forgets a pending delivery whose
-- webhook is gone (what such a race leaves); claims join webhooks, so none is ever attempted.
-- depends: 0012.webhooks-lists

ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_webhook_fkey;
