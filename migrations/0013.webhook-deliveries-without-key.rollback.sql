-- Undo 0013: the deliveries of webhooks that are gone are dropped (the key would refuse them), then
-- the key again, as 0011 added it.
DELETE FROM webhook_deliveries d
WHERE NOT EXISTS (SELECT FROM webhooks w WHERE w.user_id = d.user_id AND w.id = d.webhook_id);
ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_webhook_fkey FOREIGN KEY (user_id, webhook_id)
    REFERENCES webhooks (user_id, id) ON DELETE CASCADE;
