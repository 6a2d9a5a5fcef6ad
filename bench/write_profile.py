"""The worker's own CPU per write request, in process: POST, PATCH, PUT and PATCH …/complete.

    .venv/bin/python bench/write_profile.py [--requests 2000] [--rounds 3] [--profile PATCH]

Starts a throwaway embedded PostgreSQL (migrated, `todo-api set-db-defaults` applied as
docs/performance.md recommends), builds the app as tests/conftest.py does, with its JSON log lines
formatted and written to /dev/null (they are part of every write's cost), and sends each kind of
write through Flask's test client: a warm-up, then `--requests` of them timed with
`time.process_time()`, in `--rounds` interleaved rounds. It prints the client CPU per request (the
median over the rounds; the database's own CPU is not counted) and, with `--profile NAME`, the
cProfile of that write's requests by CPU time (cumulative, then own). No gunicorn and no network:
this is the Python a worker runs per request, the part `make bench-http` cannot separate from the
rest. It imports the todo_api of the checkout it sits in: to compare two commits, run a copy of
this file in each checkout (with either's .venv), one after the other, more than once; runs differ
by up to ±40 us per request on a busy machine (docs/write-performance.md).
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import cycle
from pathlib import Path

import jwt
from psycopg import sql

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's todo_api, before any installed one

from todo_api import create_app
from todo_api.cli import migrate, set_db_defaults
from todo_api.platform.config import Settings
from todo_api.platform.embedded import EmbeddedPostgres
from todo_api.platform.logs import make_formatter

SECRET = "bench-secret-that-is-long-enough-0123456789"
USER = "bench-writer"

POST_BODY = {
    "title": "Write the quarterly report",
    "description": "Numbers from finance, the summary from the team leads.",
    "priority": "high",
    "tags": ["work", "report"],
    "due_at": "2026-12-01T09:00:00+01:00",
}
PATCH_BODIES = [
    {"title": "Write the quarterly report, second draft", "completed": True},
    {"priority": "low"},
    {"title": "Write the quarterly report", "completed": False},
]
COMPLETE_BODIES = [None, {"completed": True}, {"completed": False}]


def make_client(database_url: str, log_format: str):
    settings = Settings(database_url=database_url, better_auth_secret=SECRET, db_pool_min_size=1, db_pool_max_size=2)
    app = create_app(settings, configure_logs=False)
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
    handler.setFormatter(make_formatter(log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    return app, app.test_client()


def scenarios(client, task_ids: list[int]) -> dict[str, Callable[[int], object]]:
    """Each write as a function of the request's number; every answer is checked for its status."""
    token = jwt.encode({"sub": USER, "exp": datetime.now(UTC) + timedelta(hours=2)}, SECRET, algorithm="HS256")
    headers = {"Authorization": f"Bearer {token}"}
    base = f"/api/{USER}/tasks"
    patches = cycle(PATCH_BODIES)
    completes = cycle(COMPLETE_BODIES)

    def expect(response, status: int) -> None:
        if response.status_code != status:
            raise SystemExit(f"{response.status_code}: {response.get_data(as_text=True)}")

    def post(n: int) -> None:
        expect(client.post(base, json=POST_BODY, headers=headers), 201)

    def patch(n: int) -> None:
        expect(client.patch(f"{base}/{task_ids[n % len(task_ids)]}", json=next(patches), headers=headers), 200)

    def put(n: int) -> None:
        expect(client.put(f"{base}/{task_ids[n % len(task_ids)]}", json=POST_BODY, headers=headers), 200)

    def complete(n: int) -> None:
        body = next(completes)
        path = f"{base}/{task_ids[n % len(task_ids)]}/complete"
        expect(
            client.patch(path, headers=headers) if body is None else client.patch(path, json=body, headers=headers), 200
        )

    return {"POST": post, "PATCH": patch, "PUT": put, "complete": complete}


def cpu_us_per_request(write: Callable[[int], object], requests: int) -> float:
    started = time.process_time()
    for n in range(requests):
        write(n)
    return (time.process_time() - started) / requests * 1e6


def measure(writes: dict[str, Callable[[int], object]], requests: int, rounds: int) -> None:
    results: dict[str, list[float]] = {name: [] for name in writes}
    for _ in range(rounds):
        for name, write in writes.items():
            results[name].append(cpu_us_per_request(write, requests))
    print(f"client CPU per request, µs ({requests} requests x {rounds} rounds; median, then each round)")
    for name, values in results.items():
        each = ", ".join(f"{value:.0f}" for value in values)
        print(f"{name:<9} {statistics.median(values):6.0f}   ({each})")


def profile(write: Callable[[int], object], requests: int, top: int) -> None:
    profiler = cProfile.Profile(time.process_time)  # CPU, as timed above: not the waits
    profiler.runcall(cpu_us_per_request, write, requests)
    stats = pstats.Stats(profiler).strip_dirs()
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per write and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm-up", type=int, default=300)
    parser.add_argument("--log-format", choices=("json", "text"), default="json")
    parser.add_argument("--profile", choices=("POST", "PATCH", "PUT", "complete"), help="cProfile this write")
    parser.add_argument("--top", type=int, default=40, help="profile lines to print")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="todo-write-profile-"))
    postgres = EmbeddedPostgres(workdir / "pg", durable=False).start()
    try:
        os.environ["DATABASE_URL"] = postgres.url()
        migrate()
        assert set_db_defaults()[1], "set-db-defaults did not take"
        app, client = make_client(postgres.url(), args.log_format)
        writes = scenarios(client, [])
        for n in range(200):  # the tasks that PATCH, PUT and complete write to
            writes["POST"](n)
        rows = app.extensions["todo_api.db"].fetch_all(sql.SQL("SELECT id FROM tasks ORDER BY id"), {})
        writes = scenarios(client, [row["id"] for row in rows])
        for write in writes.values():
            for n in range(args.warm_up):
                write(n)

        if args.profile:
            profile(writes[args.profile], args.requests, args.top)
        else:
            measure(writes, args.requests, args.rounds)
        app.extensions["todo_api.db"].close()
    finally:
        postgres.stop(mode="immediate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
