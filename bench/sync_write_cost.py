"""What the sync triggers (migrations/0007) add to each write, on PostgreSQL's side.

    .venv/bin/python bench/sync_write_cost.py [--tasks 10000] [--writes 2000] [--rounds 5]

Starts a throwaway embedded PostgreSQL, migrates it, gives one user `--tasks` tasks, then runs the
service's own insert_task, update_task and delete_task statements (sql/tasks.sql), each in its own
transaction as the views do, `--writes` at a time, in alternating rounds with migration 0007
applied (sync_seq, its index, the triggers) and rolled back (the schema before sync). delete_task
also asks whether a tombstone is past the retention, which the schema before sync cannot: those
rounds run the statement as it was then (PLAIN_DELETE), so DELETE shows all that sync adds. It reports
the backend's CPU time per statement (user + system, read from /proc for the connection's server
process, so client and network time are left out) and the wall time per statement, as medians
over the rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

import psycopg
from psycopg import sql

from todo_api.cli import MIGRATIONS_DIR, yoyo_backend
from todo_api.platform.db import load_queries
from todo_api.platform.embedded import EmbeddedPostgres

TICKS = os.sysconf("SC_CLK_TCK")
USER = "bench-writer"


def backend_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


SYNC_MIGRATION = "0007.incremental-sync"
PLAIN_DELETE = sql.SQL(
    "DELETE FROM tasks WHERE user_id = %(user_id)s AND id = %(task_id)s"
    " AND (%(expected_versions)s::integer[] IS NULL OR version = ANY(%(expected_versions)s::integer[]))"
    " RETURNING id, user_id, title, description, completed, completed_at, priority, tags, due_at,"
    " recurrence, timezone, remind_at, next_id, created_at, updated_at, version"
)


def migrate(url: str, *, with_sync: bool) -> None:
    """Apply every migration, then roll back the sync one unless `with_sync`."""
    from yoyo import read_migrations

    backend = yoyo_backend(url)
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations))
        if not with_sync:
            backend.rollback_migrations(backend.to_rollback(migrations.filter(lambda m: m.id == SYNC_MIGRATION)))
    backend.connection.close()


def run_round(conn: psycopg.Connection, queries: dict, writes: int, with_sync: bool) -> dict[str, tuple[float, float]]:
    """(CPU µs, wall µs) per statement for each kind of write."""
    pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
    task = {
        "title": "Bench",
        "description": None,
        "completed": False,
        "priority": "none",
        "tags": [],
        "due_at": None,
        "recurrence": None,
        "timezone": "UTC",
        "remind_at": None,
    }
    results = {}
    created: list[int] = []

    def timed(kind: str, statement, params_for) -> None:
        cpu, wall = backend_cpu_seconds(pid), time.perf_counter()
        for i in range(writes):
            row = conn.execute(statement, params_for(i)).fetchone()
            if kind == "INSERT":
                created.append(row[0])
        results[kind] = (
            (backend_cpu_seconds(pid) - cpu) * 1e6 / writes,
            (time.perf_counter() - wall) * 1e6 / writes,
        )

    timed("INSERT", queries["insert_task"], lambda i: {**task, "user_id": USER})
    fields = ["title"]
    timed(
        "UPDATE",
        queries["update_task"],
        lambda i: {
            **task,
            "user_id": USER,
            "task_id": created[i],
            "fields": fields,
            "title": f"t{i}",
            "expected_versions": None,
            "next_id": None,
            "unless_recurring": False,
        },
    )
    timed(
        "DELETE",
        queries["delete_task"] if with_sync else PLAIN_DELETE,
        lambda i: {"user_id": USER, "task_id": created[i], "expected_versions": None, "retention_days": 30},
    )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--writes", type=int, default=2_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    queries = load_queries()
    with tempfile.TemporaryDirectory(prefix="todo-bench-") as directory:
        server = EmbeddedPostgres(directory, durable=False).start()
        try:
            url = server.url()
            migrate(url, with_sync=True)
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(
                    "INSERT INTO tasks (user_id, title) SELECT %s, 'seed ' || n FROM generate_series(1, %s) AS n",
                    [USER, args.tasks],
                )
            samples: dict[str, dict[str, list[tuple[float, float]]]] = {"with": {}, "without": {}}
            for round_number in range(args.rounds * 2):
                triggers = "with" if round_number % 2 == 0 else "without"
                migrate(url, with_sync=triggers == "with")
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute("VACUUM ANALYZE tasks")
                    for kind, figures in run_round(conn, queries, args.writes, triggers == "with").items():
                        samples[triggers].setdefault(kind, []).append(figures)
                print(f"round {round_number + 1}: {triggers} sync", file=sys.stderr)
        finally:
            server.stop(mode="fast")
    print(f"| statement | CPU without | CPU with | wall without | wall with |  ({args.writes} writes x {args.rounds})")
    print("|---|---:|---:|---:|---:|")
    for kind in samples["with"]:
        row = []
        for index in (0, 1):
            for triggers in ("without", "with"):
                row.append(statistics.median(sample[index] for sample in samples[triggers][kind]))
        print(f"| {kind} | {row[0]:.0f} µs | {row[1]:.0f} µs | {row[2]:.0f} µs | {row[3]:.0f} µs |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
