"""`make bench-citus` ends by printing the plans of a listing and a first sync on the coordinator,
after minutes of measurements: those statements must keep to the parameters the SQL takes today (a
stale one once made the run fail there, printing no figure at all)."""

from __future__ import annotations

from bench.http_bench import citus_plans


def test_the_plans_bench_citus_prints_run_against_todays_statements(database_url, api):
    api.create(title="Planned")
    text = citus_plans(database_url, api.user_id)
    assert "list_tasks (GET /tasks?limit=20):" in text and "sync_changes (GET /sync, first page):" in text
    assert "actual rows=1" in text  # EXPLAIN ANALYZE ran them, and the listing found the task
