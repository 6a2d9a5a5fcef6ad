-- Undo 0010: forget every personal access token (each one is refused from then on).
DROP TABLE access_tokens;
