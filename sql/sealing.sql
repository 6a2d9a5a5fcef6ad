-- The secret that sealed tokens (platform/sealing.py) derive their keys from.

-- name: get_cursor_key
-- The secret sealed tokens' keys are derived from; kept in the database so every host shares it.
SELECT secret
FROM signing_keys
WHERE name = 'cursor';
