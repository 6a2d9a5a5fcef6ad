"""Move benchmark (issue 25): does a move cost the same among 10,000 siblings as among 10?

    .venv/bin/python bench/moves.py [--runs 200] [--siblings 10000] [--table PATH]

Starts a throwaway embedded PostgreSQL (durable=False), applies the migrations, and gives one user
two parents: one with `--siblings` subtasks, one with 10 (seeded in one INSERT each, with the keys
a rebalance would give them, then VACUUM ANALYZE). Then POST /api/{user}/tasks/{id}/move through the
real Flask app (create_app and its test client: auth, schema, locks, SQL, JSON; no network): each
round moves a random sibling of each group right after another random sibling of the same group,
the two groups in alternating order, so a noisy neighbour slows both alike. Prints each group's
median latency and the ratio (target ≤ 1.5).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from todo_api import create_app  # noqa: E402
from todo_api.cli import migrate  # noqa: E402
from todo_api.platform import positions  # noqa: E402
from todo_api.platform.config import Settings  # noqa: E402
from todo_api.platform.embedded import EmbeddedPostgres  # noqa: E402

SECRET = "bench-secret-that-is-long-enough-0123456789"
USER = "bench-moves"
SMALL = 10
TARGET = 1.5
MAX_SECONDS = 120.0


def seed(url: str, sizes: list[int]) -> list[list[int]]:
    """A parent for each size with that many subtasks, in order; each group's ids in order."""
    groups = []
    with psycopg.connect(url, autocommit=True) as conn:
        for size in sizes:
            parent = conn.execute(
                "INSERT INTO tasks (user_id, title, position) VALUES (%s, 'group', %s) RETURNING id",
                [USER, positions.between(None, None)],
            ).fetchone()[0]
            rows = conn.execute(
                "INSERT INTO tasks (user_id, title, parent_id, position)"
                " SELECT %s, 'sibling ' || n, %s, key FROM unnest(%s::text[]) WITH ORDINALITY AS k (key, n)"
                " ORDER BY n RETURNING id",
                [USER, parent, positions.spread(size)],
            ).fetchall()
            groups.append(sorted(row[0] for row in rows))
        conn.execute("VACUUM ANALYZE tasks")
    return groups


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200, help="timed moves per group")
    parser.add_argument("--siblings", type=int, default=10_000, help="siblings of the large group")
    parser.add_argument("--table", type=Path, help="also write the result table here (Markdown)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="todo-bench-moves-") as directory:
        server = EmbeddedPostgres(directory, durable=False).start()
        try:
            os.environ["DATABASE_URL"] = server.url()
            migrate()
            groups = seed(server.url(), [args.siblings, SMALL])
            settings = Settings(
                database_url=server.url(), better_auth_secret=SECRET, db_pool_max_size=2, log_level="WARNING"
            )
            app = create_app(settings, configure_logs=False)
            try:
                medians, runs = measure(app, groups, args.runs)
            finally:
                app.extensions["todo_api.db"].close()
        finally:
            server.stop(mode="fast")
    large, small = medians
    ratio = large / small
    verdict = "yes" if ratio <= TARGET else "**no**"
    table = "\n".join(
        [
            f"| POST …/move, after a random sibling | among {args.siblings:,} | among {SMALL} | ratio | ≤ {TARGET} |",
            "|---|---:|---:|---:|---|",
            f"| median latency | {large:.2f} ms | {small:.2f} ms | {ratio:.2f} | {verdict} |",
            "",
            f"Median of {runs} moves per group after 10 warm-ups, the groups taking turns, through the Flask app.",
        ]
    )
    print(table)
    if args.table:
        args.table.parent.mkdir(parents=True, exist_ok=True)
        args.table.write_text(table + "\n")
    return 0 if ratio <= TARGET else 1


def measure(app, groups: list[list[int]], runs: int) -> tuple[list[float], int]:
    """Each group's median move latency (ms) over `runs` rounds, the groups in alternating order."""
    client = app.test_client()
    now = datetime.now(UTC)
    token = jwt.encode({"sub": USER, "iat": now, "exp": now + timedelta(hours=2)}, SECRET, "HS256")
    headers = {"Authorization": f"Bearer {token}"}
    rng = random.Random(25)

    def move(group: list[int]) -> None:
        task, after = rng.sample(group, 2)
        response = client.post(f"/api/{USER}/tasks/{task}/move", json={"after": after}, headers=headers)
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {response.get_data(as_text=True)}")

    for _ in range(10):
        for group in groups:
            move(group)
    timings: list[list[float]] = [[] for _ in groups]
    deadline = time.monotonic() + MAX_SECONDS
    for round_number in range(runs):
        order = range(len(groups)) if round_number % 2 == 0 else reversed(range(len(groups)))
        for index in order:
            started = time.perf_counter()
            move(groups[index])
            timings[index].append((time.perf_counter() - started) * 1000)
        if time.monotonic() > deadline:
            break
    return [statistics.median(values) for values in timings], len(timings[0])


if __name__ == "__main__":
    sys.exit(main())
