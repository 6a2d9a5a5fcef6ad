"""`make bench-citus` ends by printing the plans of a listing and a first sync on the coordinator,
after minutes of measurements: those statements must keep to the parameters the SQL takes today (a
stale one once made the run fail there, printing no figure at all)."""

from __future__ import annotations

import importlib.util
import sys

from todo_api.cli import PROJECT_ROOT


def load_bench():
    """bench/http_bench.py as a module (the bench folder is not on pytest's path)."""
    spec = importlib.util.spec_from_file_location("http_bench", PROJECT_ROOT / "bench" / "http_bench.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_plans_bench_citus_prints_run_against_todays_statements(database_url, api):
    api.create(title="Planned")
    text = load_bench().citus_plans(database_url, api.user_id)
    assert "list_tasks (GET /tasks?limit=20):" in text and "sync_changes (GET /sync, first page):" in text
    assert "actual rows=1" in text  # EXPLAIN ANALYZE ran them, and the listing found the task
