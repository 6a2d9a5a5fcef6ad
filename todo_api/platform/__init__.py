"""What every feature stands on, and that knows no feature: configuration, the database, logging,
errors and the envelope, HTTP helpers, sealed tokens, the gunicorn worker, health probes."""
