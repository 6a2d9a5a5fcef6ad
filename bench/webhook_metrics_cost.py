"""What the webhook figures cost a /metrics scrape, by the number of delivery rows kept.

    .venv/bin/python bench/webhook_metrics_cost.py [--scrapes 40] [--rounds 6]

Starts a throwaway embedded PostgreSQL with one database per size (0, 10,000 and 100,000 rows in
webhook_deliveries: a tenth pending, three tenths failed, the rest succeeded, over 100 users, each
body ~500 bytes as a task's event is; VACUUM ANALYZE after, as autovacuum would), migrated, with
`todo-api set-db-defaults` applied, and an app on each. Scrapes GET /metrics through each app's
Flask test client in interleaved rounds (the order turned each round), and times, wall clock, the
whole scrape and the collector's database read alone (DeliveryCollector.read). Prints the median ms
of each per size.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the checkout's todo_api

import psycopg

from todo_api import create_app
from todo_api.cli import migrate, set_db_defaults
from todo_api.platform.config import Settings
from todo_api.platform.embedded import EmbeddedPostgres
from todo_api.webhooks.metrics import DeliveryCollector

SECRET = "bench-secret-that-is-long-enough-0123456789"
SIZES = (0, 10_000, 100_000)
USERS = 100

SEED_WEBHOOKS = """
INSERT INTO webhooks (user_id, url, events, secret)
SELECT 'bench-' || u, 'https://hooks.example.com/in', ARRAY['*'], 'whsec_bench' FROM generate_series(1, %(users)s) u
"""
SEED_DELIVERIES = """
INSERT INTO webhook_deliveries (user_id, webhook_id, event, payload, status, attempts, next_attempt_at, ended_at,
                                created_at)
SELECT w.user_id, w.id, 'task.created', jsonb_build_object('type', 'task.created', 'data', repeat('x', 450)),
       s.status, 1, CASE WHEN s.status = 'pending' THEN now() END, CASE WHEN s.status <> 'pending' THEN now() END,
       now() - make_interval(secs => i)
FROM generate_series(1, %(rows)s) i
CROSS JOIN LATERAL (SELECT CASE WHEN i %% 10 = 0 THEN 'pending' WHEN i %% 10 <= 3 THEN 'failed'
                                ELSE 'succeeded' END AS status) s
JOIN webhooks w ON w.user_id = 'bench-' || (i %% %(users)s + 1)
"""


def make_database(postgres: EmbeddedPostgres, rows: int) -> str:
    """A migrated database holding `rows` deliveries; its URL."""
    name = f"bench_{rows}"
    with psycopg.connect(postgres.url(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = postgres.url().rsplit("/", 1)[0] + "/" + name
    os.environ["DATABASE_URL"] = url
    migrate()
    assert set_db_defaults()[1], "set-db-defaults did not take"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED_WEBHOOKS, {"users": USERS})  # type: ignore[arg-type]  # trusted constant
        conn.execute(SEED_DELIVERIES, {"users": USERS, "rows": rows})  # type: ignore[arg-type]
        conn.execute("VACUUM ANALYZE webhook_deliveries")
    return url


def timed_ms(action, times: int) -> float:
    started = time.perf_counter()
    for _ in range(times):
        action()
    return (time.perf_counter() - started) / times * 1e3


def scrape(client) -> None:
    response = client.get("/metrics")
    if response.status_code != 200 or b"todo_api_webhook_metrics_up 1.0" not in response.data:
        raise SystemExit(f"a scrape failed: {response.status_code}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scrapes", type=int, default=40, help="timed scrapes per size and round")
    parser.add_argument("--rounds", type=int, default=6)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="todo-webhook-metrics-pg-"))
    postgres = EmbeddedPostgres(workdir / "pg", durable=False).start()
    apps = {}
    try:
        for rows in SIZES:
            settings = Settings(
                database_url=make_database(postgres, rows), better_auth_secret=SECRET, db_pool_max_size=2
            )
            apps[rows] = create_app(settings, configure_logs=False)
        clients = {rows: app.test_client() for rows, app in apps.items()}
        collectors = {rows: DeliveryCollector(app.extensions["todo_api.db"]) for rows, app in apps.items()}
        for rows in SIZES:  # warm-up: pools, caches
            timed_ms(lambda client=clients[rows]: scrape(client), 5)
        whole: dict[int, list[float]] = {rows: [] for rows in SIZES}
        read: dict[int, list[float]] = {rows: [] for rows in SIZES}
        for round_number in range(args.rounds):
            order = SIZES if round_number % 2 == 0 else SIZES[::-1]  # none always first
            for rows in order:
                whole[rows].append(timed_ms(lambda client=clients[rows]: scrape(client), args.scrapes))
                read[rows].append(timed_ms(collectors[rows].read, args.scrapes))
    finally:
        for app in apps.values():
            app.extensions["todo_api.db"].close()
        postgres.stop(mode="immediate")
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"GET /metrics, wall ms per scrape ({args.scrapes} scrapes x {args.rounds} rounds, interleaved)")
    print(f"{'delivery rows':>14} {'whole scrape':>13} {'webhook read':>13}   (read, each round)")
    for rows in SIZES:
        rounds = ", ".join(f"{value:.2f}" for value in read[rows])
        print(f"{rows:>14,} {statistics.median(whole[rows]):13.2f} {statistics.median(read[rows]):13.2f}   ({rounds})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
