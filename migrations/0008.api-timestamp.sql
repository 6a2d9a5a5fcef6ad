-- A timestamp as API.md §3 shows it: RFC 3339 in UTC with a Z suffix, to the microsecond, and
-- without a fraction when it has none (as Python's isoformat() writes it). The task statements in
-- sql/ return their timestamps through it, so the service hands PostgreSQL's text to the client
-- instead of parsing each timestamp into a datetime and formatting it back (docs/performance.md).
-- STABLE (to_char is) and a plain SQL body: PostgreSQL inlines it into each statement.
-- depends: 0006.recurrence-reminders

CREATE FUNCTION api_timestamp(ts timestamptz) RETURNS text
    LANGUAGE sql STABLE PARALLEL SAFE
    RETURN CASE
        WHEN ts = date_trunc('second', ts) THEN to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
        ELSE to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
    END;
