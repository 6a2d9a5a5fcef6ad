"""The webhook figures of /metrics (webhooks/metrics.py): what the deliveries table holds, read at
scrape time, whatever the API and the delivery process did; no user id or URL in a label; the guard
of make test-citus lifted for that one statement only; and a scrape that gives them up, promptly,
when the database does not answer.

The table is shared with the rest of the session, so each test reads the figures before and after its
own deliveries and checks the difference (the tests run one at a time, with no delivery process).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator

import psycopg
import pytest
from conftest import SECRET, free_port, make_settings, unguarded
from prometheus_client.parser import text_string_to_metric_families
from test_metrics import Samples, parse, scrape, value
from test_metrics_gunicorn import fresh_get
from test_outage import own_postgres, wait_for  # noqa: F401  (a fixture: a server of the test's own)
from test_webhook_delivery import DEV, User, deliver_due
from webhook_receiver import Answer, Receiver, running_receiver

from todo_api import create_app
from todo_api.platform.db import Database
from todo_api.webhooks import metrics as webhook_metrics
from todo_api.webhooks.deliver import Deliverer

PENDING = "todo_api_webhook_deliveries_pending"
OLDEST = "todo_api_webhook_oldest_pending_seconds"
ENDED = "todo_api_webhook_deliveries_ended"
UP = "todo_api_webhook_metrics_up"
THIRTY_DAYS = 30 * 86400


@pytest.fixture(scope="module")
def webhook_app(database_url):
    """The API with webhooks to loopback allowed (the receiver), and a pool of one connection, so that
    the statement after a scrape runs on the scrape's own connection."""
    settings = make_settings(database_url, db_pool_min_size=1, db_pool_max_size=1)
    application = create_app(dataclasses.replace(settings, webhooks=DEV), configure_logs=False)
    yield application
    application.extensions["todo_api.db"].close()


@pytest.fixture(scope="module")
def deliverer(database_url) -> Iterator[Deliverer]:
    """The delivery code as `todo-api deliver` runs it, on a pool of its own (unguarded: it scans)."""
    pool = Database(unguarded(database_url), min_size=1, max_size=2, timeout=5, statement_timeout_ms=5000)
    yield Deliverer(pool, DEV, jitter=lambda: 0.0)
    pool.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """Answers 204 on /ok and 410 Gone elsewhere."""
    with running_receiver() as running:
        running.answer = lambda request: Answer(204 if request.path == "/ok" else 410)
        yield running


@pytest.fixture
def hook_user(webhook_app, conn) -> Iterator[User]:
    created = User(webhook_app)
    yield created
    conn.execute("DELETE FROM webhooks WHERE user_id = %s", [created.user_id])  # and its deliveries


def figures(samples: Samples) -> dict[str, float]:
    return {
        "pending": value(samples, PENDING),
        "succeeded": value(samples, ENDED, outcome="succeeded"),
        "failed": value(samples, ENDED, outcome="failed"),
    }


def test_deliveries_pending_and_ended_by_outcome_are_the_tables_figures(webhook_app, hook_user, receiver, deliverer):
    client = webhook_app.test_client()
    before = figures(scrape(client))
    hook_user.webhook(receiver.url + "/ok")
    hook_user.webhook(receiver.url + "/gone")
    hook_user.task()
    hook_user.task()
    queued = figures(scrape(client))
    assert {k: queued[k] - before[k] for k in queued} == {"pending": 4, "succeeded": 0, "failed": 0}

    # Both to /ok succeed; the first to /gone meets a 410, which fails the other with it.
    assert sorted(d.status for d in deliver_due(deliverer, hook_user.user_id)) == ["failed"] * 2 + ["succeeded"] * 2
    delivered = figures(scrape(client))
    assert {k: delivered[k] - before[k] for k in delivered} == {"pending": 0, "succeeded": 2, "failed": 2}

    hook_user.task()  # to /ok alone: the other webhook is disabled as gone
    after = figures(scrape(client))
    assert {k: after[k] - before[k] for k in after} == {"pending": 1, "succeeded": 2, "failed": 2}


def test_the_oldest_pending_deliverys_age_is_its_age_until_it_ends(webhook_app, hook_user, receiver, deliverer, conn):
    client = webhook_app.test_client()
    hook_user.webhook(receiver.url + "/ok")
    hook_user.task()
    fresh = value(scrape(client), OLDEST)
    assert fresh >= 0
    # Thirty days old: older than any other test's delivery in this session.
    conn.execute(
        "UPDATE webhook_deliveries SET created_at = now() - interval '30 days' WHERE user_id = %s",
        [hook_user.user_id],
    )
    started = time.monotonic()
    aged = value(scrape(client), OLDEST)
    assert THIRTY_DAYS <= aged <= THIRTY_DAYS + (time.monotonic() - started) + 1
    assert [d.status for d in deliver_due(deliverer, hook_user.user_id)] == ["succeeded"]
    assert value(scrape(client), OLDEST) < THIRTY_DAYS  # it ended: no longer the oldest pending


def test_no_user_id_or_url_in_any_label(webhook_app, hook_user, receiver):
    hook_user.webhook(receiver.url + "/ok?key=private-key")
    hook_user.task(title="Secret title")
    text = webhook_app.test_client().get("/metrics").get_data(as_text=True)
    for private in (hook_user.user_id, receiver.url, "private-key", "Secret title"):
        assert private not in text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:  # the port as a label value (as digits it may be inside a figure)
            assert not any(str(receiver.port) in value for value in sample.labels.values()), sample
        if family.name.startswith("todo_api_webhook_"):
            for sample in family.samples:
                assert set(sample.labels) <= {"outcome"}
                assert sample.labels.get("outcome", "succeeded") in webhook_metrics.OUTCOMES


def test_the_guard_is_lifted_for_the_scrapes_transaction_only(webhook_app, citus):
    """On Citus (make test-citus) the app's connections refuse a statement over several shards; the
    scrape's statement runs, and the next one on the same connection is refused again."""
    if not citus:
        pytest.skip("the single-shard guard exists on Citus only")
    assert value(scrape(webhook_app.test_client()), UP) == 1
    with pytest.raises(psycopg.Error, match="multi-task query"):
        webhook_app.extensions["todo_api.db"].fetch_one("count_deliveries_by_status", {})


def test_with_the_database_down_a_scrape_leaves_the_webhook_figures_out_promptly():
    """Nothing listens at the URL, and DB_POOL_TIMEOUT is long: the collector's own wait is short."""
    url = f"postgresql://todo@127.0.0.1:{free_port()}/todo"
    app = create_app(make_settings(url, db_pool_timeout=30.0), configure_logs=False)
    try:
        started = time.monotonic()
        response = app.test_client().get("/metrics")
        elapsed = time.monotonic() - started
    finally:
        app.extensions["todo_api.db"].close()
    assert response.status_code == 200
    samples = parse(response.get_data(as_text=True))
    assert value(samples, UP) == 0
    assert not [name for name, _ in samples if name.startswith("todo_api_webhook_") and name != UP]
    assert ("todo_api_db_pool_size", ()) in samples  # the rest of /metrics is served
    assert elapsed < webhook_metrics.READ_TIMEOUT_SECONDS + 2, f"the scrape took {elapsed:.1f} s"


def test_an_empty_table_is_zeros_and_a_stopped_server_is_up_0_until_it_is_back(own_postgres):  # noqa: F811
    app = create_app(make_settings(own_postgres.url(), db_pool_timeout=30.0), configure_logs=False)
    client = app.test_client()
    try:
        empty = scrape(client)
        assert {**figures(empty), "oldest": value(empty, OLDEST), "up": value(empty, UP)} == {
            "pending": 0,
            "succeeded": 0,
            "failed": 0,
            "oldest": 0,
            "up": 1,
        }
        own_postgres.stop(mode="fast")
        started = time.monotonic()
        down = scrape(client)
        elapsed = time.monotonic() - started
        assert (value(down, UP), (PENDING, ()) in down) == (0, False)
        assert elapsed < webhook_metrics.READ_TIMEOUT_SECONDS + 2, f"the scrape took {elapsed:.1f} s"
        own_postgres.start()
        wait_for(lambda: value(scrape(client), UP) == 1, timeout=15)
    finally:
        app.extensions["todo_api.db"].close()


@pytest.mark.process
def test_under_two_workers_every_scrape_shows_the_databases_figure_not_a_sum(start_gunicorn, database_url, conn):
    user_id = "metrics-webhooks-gunicorn-user"
    webhook = conn.execute(
        "INSERT INTO webhooks (user_id, url, events, secret) "
        "VALUES (%s, 'https://hooks.example.com/', '{*}', 'whsec_x') RETURNING id",
        [user_id],
    ).fetchone()["id"]
    try:
        conn.execute(
            "INSERT INTO webhook_deliveries (user_id, webhook_id, event, payload) "
            "SELECT %s, %s, 'webhook.test', '{}' FROM generate_series(1, 3)",
            [user_id, webhook],
        )
        pending = conn.execute("SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending'").fetchone()["n"]
        server = start_gunicorn({"DATABASE_URL": database_url, "BETTER_AUTH_SECRET": SECRET}, workers=2)
        for _ in range(8):  # each on a connection of its own: either worker answers
            response = fresh_get(f"{server.url}/metrics")
            assert response.status_code == 200
            samples = parse(response.text)
            assert (value(samples, UP), value(samples, PENDING)) == (1, pending)
    finally:
        conn.execute("DELETE FROM webhooks WHERE user_id = %s", [user_id])
