"""What POST, PATCH, DELETE and an idle sync cost in process, on both sides of the connection.

    .venv/bin/python bench/sync_request_cost.py [--requests 500] [--rounds 5]

Starts a throwaway embedded PostgreSQL (migrated, `todo-api set-db-defaults` applied), builds the
app with a pool of one connection, and sends each request through Flask's test client, one at a
time: POST a task, PATCH it, GET …/sync with a token at the user's latest change (nothing new),
DELETE a task, and DELETE a task when one of the user's deletions is more than a day past
SYNC_RETENTION_DAYS (a tombstone backdated before each, untimed): such a deletion also forgets the
deletions past the retention, which a user who deletes daily makes happen once a day. Each request
is timed alone: its wall time, the worker's CPU (`time.process_time()`) and the PostgreSQL
backend's CPU (user + system from /proc for the connection's server process; /proc counts it in
clock ticks, so that one is the mean over a round).
It prints the median over `--rounds` interleaved rounds of `--requests` of each kind. It imports the
todo_api of the checkout it sits in: to compare two commits, run a copy of this file in each
checkout, one after the other, more than once.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import psycopg
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's todo_api, before any installed one

from todo_api import create_app
from todo_api.cli import migrate, set_db_defaults
from todo_api.platform import sealing as tokens
from todo_api.platform.config import Settings
from todo_api.platform.embedded import EmbeddedPostgres
from todo_api.sync.routes import TOKEN as SYNC_TOKEN

SECRET = "bench-secret-that-is-long-enough-0123456789"
USER = "bench-syncer"
TICKS = os.sysconf("SC_CLK_TCK")
KINDS = ("POST", "PATCH", "sync, nothing new", "DELETE", "DELETE that forgets one")


def backend_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


class Bench:
    def __init__(self, url: str):
        settings = Settings(
            database_url=url, better_auth_secret=SECRET, db_pool_min_size=1, db_pool_max_size=1, log_level="WARNING"
        )
        self.app = create_app(settings, configure_logs=False)
        logging.getLogger().setLevel(logging.WARNING)
        self.client = self.app.test_client()
        token = jwt.encode({"sub": USER, "exp": datetime.now(UTC) + timedelta(hours=2)}, SECRET, algorithm="HS256")
        self.headers = {"Authorization": f"Bearer {token}"}
        self.base = f"/api/{USER}"
        self.side = psycopg.connect(url, autocommit=True)  # untimed setup, outside the app's pool
        self.pid = self.app.extensions["todo_api.db"].fetch_one(sql.SQL("SELECT pg_backend_pid() AS pid"), {})["pid"]
        self.created: list[int] = []

    def expect(self, response, status: int) -> dict:
        if response.status_code != status:
            raise SystemExit(f"{response.status_code}: {response.get_data(as_text=True)}")
        return response.json

    def post(self) -> None:
        task = self.expect(self.client.post(f"{self.base}/tasks", json={"title": "Bench"}, headers=self.headers), 201)
        self.created.append(task["data"]["id"])

    def patch(self, n: int) -> None:
        path = f"{self.base}/tasks/{self.created[n % len(self.created)]}"
        self.expect(self.client.patch(path, json={"title": f"Bench {n}"}, headers=self.headers), 200)

    def sync(self, token: str) -> None:
        self.expect(self.client.get(f"{self.base}/sync", query_string={"token": token}, headers=self.headers), 200)

    def delete(self) -> None:
        self.expect(self.client.delete(f"{self.base}/tasks/{self.created.pop()}", headers=self.headers), 200)

    def latest_token(self) -> str:
        position = self.side.execute("SELECT last_seq FROM sync_state WHERE user_id = %s", [USER]).fetchone()[0]
        with self.app.app_context():
            return tokens.app_codec().seal(SYNC_TOKEN, position.to_bytes(8, "big"), user_id=USER)

    def one_deletion_to_forget(self) -> None:
        self.side.execute(
            "UPDATE task_tombstones SET deleted_at = now() - interval '32 days'"
            " WHERE user_id = %s AND sync_seq = (SELECT min(sync_seq) FROM task_tombstones WHERE user_id = %s)",
            [USER, USER],
        )

    def timed(self, request: Callable[[], None]) -> tuple[float, float, float]:
        """(wall, worker CPU, backend CPU) of one request, in µs."""
        backend, cpu, wall = backend_cpu_seconds(self.pid), time.process_time(), time.perf_counter()
        request()
        return (
            (time.perf_counter() - wall) * 1e6,
            (time.process_time() - cpu) * 1e6,
            (backend_cpu_seconds(self.pid) - backend) * 1e6,
        )

    def round(self, requests: int) -> dict[str, list[tuple[float, float, float]]]:
        samples: dict[str, list[tuple[float, float, float]]] = {kind: [] for kind in KINDS}
        for _ in range(requests):
            samples["POST"].append(self.timed(self.post))
        for n in range(requests):
            samples["PATCH"].append(self.timed(lambda n=n: self.patch(n)))
        self.sync(self.latest_token())  # a sync that finds one due forgets it here, untimed
        token = self.latest_token()
        for _ in range(requests):
            samples["sync, nothing new"].append(self.timed(lambda: self.sync(token)))
        for _ in range(requests // 2):
            samples["DELETE"].append(self.timed(self.delete))
            self.one_deletion_to_forget()
            samples["DELETE that forgets one"].append(self.timed(self.delete))
        return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=500, help="timed requests per kind and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tasks", type=int, default=10_000, help="tasks the user has beforehand")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="todo-sync-cost-"))
    postgres = EmbeddedPostgres(workdir / "pg", durable=False).start()
    try:
        os.environ["DATABASE_URL"] = postgres.url()
        migrate()
        assert set_db_defaults()[1], "set-db-defaults did not take"
        with psycopg.connect(postgres.url(), autocommit=True) as conn:
            conn.execute("SET statement_timeout = 0")  # the seed is no request
            conn.execute(
                "INSERT INTO tasks (user_id, title) SELECT %s, 'seed ' || n FROM generate_series(1, %s) AS n",
                [USER, args.tasks],
            )
            conn.execute("VACUUM ANALYZE")
        bench = Bench(postgres.url())
        bench.round(100)  # warm-up: statements prepared, caches filled
        medians: dict[str, list[tuple[float, float, float]]] = {kind: [] for kind in KINDS}
        for _ in range(args.rounds):
            for kind, samples in bench.round(args.requests).items():
                wall, worker, backend = zip(*samples, strict=True)
                medians[kind].append((statistics.median(wall), statistics.median(worker), statistics.mean(backend)))
        bench.app.extensions["todo_api.db"].close()
        bench.side.close()
    finally:
        postgres.stop(mode="immediate")
    print(f"| request | wall | worker CPU | PostgreSQL CPU |  (median of {args.rounds} rounds of {args.requests})")
    print("|---|---:|---:|---:|")
    for kind, rounds in medians.items():
        wall, worker, backend = (statistics.median(value[i] for value in rounds) for i in range(3))
        print(f"| {kind} | {wall:.0f} µs | {worker:.0f} µs | {backend:.0f} µs |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
