-- Undo 0002: drop the signing keys (outstanding cursors stop verifying).
DROP TABLE signing_keys;
