"""What /metrics costs a request: the worker's CPU per GET of one task with metrics on and off.

    .venv/bin/python bench/metrics_cost.py [--requests 3000] [--rounds 5]

Sets PROMETHEUS_MULTIPROC_DIR (a fresh directory) before todo_api is imported, as gunicorn.conf.py
does, so every figure is written to its memory-mapped file as under gunicorn. Starts a throwaway
embedded PostgreSQL (migrated, `todo-api set-db-defaults` applied), builds two apps on it, one with
METRICS_ENABLED=false, and sends GET /api/<user>/tasks/<id> through each one's Flask test client in
interleaved rounds (on then off, off then on, ...), timed with `time.process_time()`; JSON log lines are
formatted and written to /dev/null, as they are part of every request's cost. Prints the median CPU
per request of each, their difference and ratio, and the after_request hook alone (metrics'
observe_request, timed in a loop inside one request context), which is what the difference should be
without the noise.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

METRICS_DIR = tempfile.mkdtemp(prefix="todo-metrics-cost-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = METRICS_DIR  # before prometheus_client is imported
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's todo_api

import jwt  # noqa: E402
from flask import g  # noqa: E402

from todo_api import create_app  # noqa: E402
from todo_api.cli import migrate, set_db_defaults  # noqa: E402
from todo_api.platform import metrics  # noqa: E402
from todo_api.platform.config import Settings  # noqa: E402
from todo_api.platform.embedded import EmbeddedPostgres  # noqa: E402
from todo_api.platform.logs import make_formatter  # noqa: E402

SECRET = "bench-secret-that-is-long-enough-0123456789"
USER = "bench-metrics"
HOOK_CALLS = 100_000


def make_app(database_url: str, enabled: bool):
    settings = Settings(
        database_url=database_url,
        better_auth_secret=SECRET,
        db_pool_min_size=1,
        db_pool_max_size=2,
        metrics_enabled=enabled,
    )
    return create_app(settings, configure_logs=False)


def log_to_devnull() -> None:
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 - lives as long as the process
    handler.setFormatter(make_formatter("json"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def cpu_us_per_request(client, path: str, headers: dict[str, str], requests: int) -> float:
    started = time.process_time()
    for _ in range(requests):
        response = client.get(path, headers=headers)
        if response.status_code != 200:
            raise SystemExit(f"{response.status_code}: {response.get_data(as_text=True)}")
    return (time.process_time() - started) / requests * 1e6


def hook_us(app, path: str) -> float:
    """observe_request alone, with the request's route matched as in a real request."""
    response = app.response_class(b"{}", status=200)
    with app.test_request_context(path):
        g.started = time.perf_counter()
        started = time.process_time()
        for _ in range(HOOK_CALLS):
            metrics.observe_request(response)
        return (time.process_time() - started) / HOOK_CALLS * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="timed requests per app and round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="todo-metrics-cost-pg-"))
    postgres = EmbeddedPostgres(workdir / "pg", durable=False).start()
    apps = []
    try:
        os.environ["DATABASE_URL"] = postgres.url()
        migrate()
        assert set_db_defaults()[1], "set-db-defaults did not take"
        log_to_devnull()
        apps = [make_app(postgres.url(), enabled) for enabled in (True, False)]
        clients = {"on": apps[0].test_client(), "off": apps[1].test_client()}
        token = jwt.encode({"sub": USER, "exp": datetime.now(UTC) + timedelta(hours=1)}, SECRET, algorithm="HS256")
        headers = {"Authorization": f"Bearer {token}"}
        created = clients["on"].post(f"/api/{USER}/tasks", json={"title": "Measured"}, headers=headers)
        path = f"/api/{USER}/tasks/{created.json['data']['id']}"
        for client in clients.values():
            cpu_us_per_request(client, path, headers, 300)  # warm-up: pools, prepared statements
        results: dict[str, list[float]] = {"on": [], "off": []}
        for round_number in range(args.rounds):
            order = ["on", "off"] if round_number % 2 == 0 else ["off", "on"]  # neither always goes first
            for name in order:
                results[name].append(cpu_us_per_request(clients[name], path, headers, args.requests))
        hook = statistics.median(hook_us(apps[0], path) for _ in range(args.rounds))
    finally:
        for app in apps:
            app.extensions["todo_api.db"].close()
        postgres.stop(mode="immediate")
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(METRICS_DIR, ignore_errors=True)

    on, off = statistics.median(results["on"]), statistics.median(results["off"])
    print(f"GET one task, worker CPU per request, µs ({args.requests} requests x {args.rounds} rounds, interleaved)")
    for name in ("on", "off"):
        each = ", ".join(f"{value:.0f}" for value in results[name])
        print(f"metrics {name:<4} {statistics.median(results[name]):7.1f}   ({each})")
    print(f"difference  {on - off:+7.1f} µs ({(on / off - 1) * 100:+.1f}%)")
    print(f"observe_request alone (multiprocess files): {hook:.2f} µs per request ({hook / off * 100:.1f}% of a GET)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
