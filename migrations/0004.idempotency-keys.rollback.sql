-- Undo 0004: forget every remembered idempotent response.
DROP TABLE idempotency_keys;
