-- Undo 0008 (deploy the code before it first: its statements no longer call api_timestamp).
DROP FUNCTION api_timestamp(timestamptz);
