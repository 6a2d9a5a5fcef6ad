"""On Citus: what a write costs with sync's numbering in triggers (migrations/0007, distributed with
citus.enable_unsafe_triggers by 0008) against the same numbering written into each statement (CTEs).

    .venv/bin/python bench/citus_write_cost.py [--writes 500] [--rounds 3]

Starts a throwaway Citus cluster (a coordinator and two workers, scripts/citus_cluster.py), migrates
it, and for one user runs INSERT, UPDATE and DELETE of a task, each in its own transaction, `--writes`
at a time, in alternating rounds: with the triggers, and with the triggers dropped and each statement
taking the user's next change number itself. It reports the CPU time of the whole cluster per write
(every process under the three postmasters) and the wall time per write, medians over the rounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.citus_cluster import CitusCluster, find_tarball  # noqa: E402
from todo_api.cli import migrate  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
USER = "bench-writer"

WITH_TRIGGERS = {
    "INSERT": "INSERT INTO tasks (user_id, title) VALUES (%(user_id)s, 'Bench') RETURNING id",
    "UPDATE": """UPDATE tasks SET title = %(title)s, updated_at = now(), version = version + 1
                 WHERE user_id = %(user_id)s AND id = %(task_id)s RETURNING id""",
    "DELETE": "DELETE FROM tasks WHERE user_id = %(user_id)s AND id = %(task_id)s RETURNING id",
}
# A user's first write creates the counter row (as the trigger does); later ones find it.
TAKE_FIRST_NUMBER = """INSERT INTO sync_state AS s (user_id, last_seq) VALUES (%(user_id)s, 1)
                       ON CONFLICT (user_id) DO UPDATE SET last_seq = s.last_seq + 1 RETURNING last_seq"""
TAKE_NUMBER = "UPDATE sync_state SET last_seq = last_seq + 1 WHERE user_id = %(user_id)s RETURNING last_seq"
IN_THE_STATEMENTS = {
    "INSERT": f"""WITH taken AS ({TAKE_FIRST_NUMBER}),
                  created AS (INSERT INTO tasks (user_id, title, sync_seq)
                              SELECT %(user_id)s, 'Bench', last_seq FROM taken RETURNING id)
                  SELECT id FROM created""",
    "UPDATE": f"""WITH taken AS ({TAKE_NUMBER})
                  UPDATE tasks SET title = %(title)s, updated_at = now(), version = version + 1,
                                   sync_seq = taken.last_seq
                  FROM taken WHERE user_id = %(user_id)s AND id = %(task_id)s RETURNING id""",
    "DELETE": f"""WITH gone AS (DELETE FROM tasks WHERE user_id = %(user_id)s AND id = %(task_id)s RETURNING id),
                  taken AS ({TAKE_NUMBER}),
                  left_behind AS (INSERT INTO task_tombstones (user_id, sync_seq, task_id)
                                  SELECT %(user_id)s, last_seq, id FROM gone, taken RETURNING 1)
                  SELECT id FROM gone""",
}


def cluster_cpu_seconds(postmasters: list[int]) -> float:
    total = 0.0
    for postmaster in postmasters:
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        for pid in [str(postmaster), *children]:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / TICKS
    return total


def set_triggers(conn: psycopg.Connection, definitions: list[str], *, on: bool) -> None:
    with conn.transaction():
        conn.execute("SET LOCAL citus.enable_unsafe_triggers = on")
        for name in ("tasks_sync_seq", "tasks_tombstone"):
            conn.execute(f"DROP TRIGGER IF EXISTS {name} ON tasks")
        if on:
            for definition in definitions:
                conn.execute(definition)


def run_round(conn: psycopg.Connection, statements: dict[str, str], writes: int, postmasters: list[int]):
    """(cluster CPU µs, wall µs) per write, for each kind."""
    results = {}
    created: list[int] = []
    for kind, statement in statements.items():
        cpu, wall = cluster_cpu_seconds(postmasters), time.perf_counter()
        for i in range(writes):
            params = {"user_id": USER, "title": f"t{i}", "task_id": None if kind == "INSERT" else created[i]}
            row = conn.execute(statement, params).fetchone()
            if kind == "INSERT":
                created.append(row[0])
        results[kind] = (
            (cluster_cpu_seconds(postmasters) - cpu) * 1e6 / writes,
            (time.perf_counter() - wall) * 1e6 / writes,
        )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    tarball = find_tarball()
    if tarball is None:
        print("needs a Citus tarball: set CITUS_TARBALL (see scripts/citus_cluster.py)", file=sys.stderr)
        return 2
    samples: dict[str, dict[str, list[tuple[float, float]]]] = {"triggers": {}, "statements": {}}
    with tempfile.TemporaryDirectory(prefix="todo-bench-") as directory:
        os.chmod(directory, 0o755)
        cluster = CitusCluster(Path(directory), tarball).start()
        try:
            os.environ["DATABASE_URL"] = cluster.url()
            migrate()
            postmasters = [int((node.pgdata / "postmaster.pid").read_text().split()[0]) for node in cluster.nodes]
            with psycopg.connect(cluster.url(), autocommit=True) as conn:
                definitions = [
                    row[0]
                    for row in conn.execute(
                        "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = 'tasks'::regclass"
                        " AND tgname IN ('tasks_sync_seq', 'tasks_tombstone')"
                    )
                ]
                assert len(definitions) == 2, definitions
                for round_number in range(args.rounds * 2):
                    way = "triggers" if round_number % 2 == 0 else "statements"
                    set_triggers(conn, definitions, on=way == "triggers")
                    statements = WITH_TRIGGERS if way == "triggers" else IN_THE_STATEMENTS
                    for kind, figures in run_round(conn, statements, args.writes, postmasters).items():
                        samples[way].setdefault(kind, []).append(figures)
                    print(f"round {round_number + 1}: {way}", file=sys.stderr)
        finally:
            cluster.stop()
    print(f"{args.writes} writes x {args.rounds} rounds each way, medians\n")
    print("| write | cluster CPU, triggers | in the statements | wall, triggers | in the statements |")
    print("|---|---:|---:|---:|---:|")
    for kind in WITH_TRIGGERS:
        cells = [
            statistics.median(sample[index] for sample in samples[way][kind])
            for index in (0, 1)
            for way in ("triggers", "statements")
        ]
        print(f"| {kind} | {cells[0]:,.0f} µs | {cells[1]:,.0f} µs | {cells[2]:,.0f} µs | {cells[3]:,.0f} µs |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
