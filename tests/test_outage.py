"""A database outage is a prompt 503 with Retry-After, and the service recovers by itself."""

from __future__ import annotations

import time

import pytest
from conftest import Api, assert_error, make_settings, migrate_all

from todo_api import create_app
from todo_api.platform.embedded import EmbeddedPostgres

POOL_TIMEOUT = 1.0


@pytest.fixture
def own_postgres(tmp_path):
    """A server of this test's own, so stopping it disturbs no other test."""
    server = EmbeddedPostgres(tmp_path / "pg", durable=False).start()
    migrate_all(server.url())
    yield server
    server.stop(mode="immediate")


def wait_for(predicate, timeout: float) -> float:
    """Poll until predicate() is true; return the seconds it took (fails after timeout)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"not true within {timeout} s")


def test_outage_is_503_then_recovers_without_restart(own_postgres):
    app = create_app(make_settings(own_postgres.url(), db_pool_timeout=POOL_TIMEOUT), configure_logs=False)
    api = Api(app.test_client(), "outage-user")
    try:
        task = api.create(title="Before the outage")
        own_postgres.stop(mode="fast")

        for request in (
            lambda: api.get(),
            lambda: api.post(json={"title": "During"}),
            lambda: api.get(f"/{task['id']}"),
        ):
            started = time.monotonic()
            response = request()
            elapsed = time.monotonic() - started
            assert_error(response, 503, "service_unavailable")
            assert response.headers["Retry-After"].isdigit()
            assert elapsed < POOL_TIMEOUT + 2, f"503 took {elapsed:.1f} s"
        assert_error(app.test_client().get("/readyz"), 503, "service_unavailable")

        own_postgres.start()
        recovered_in = wait_for(lambda: api.get().status_code == 200, timeout=15)
        assert recovered_in < 10
        assert app.test_client().get("/readyz").status_code == 200
        titles = [t["title"] for t in api.get().json["data"]]
        assert titles == ["Before the outage"]  # the write answered 503 left nothing behind
    finally:
        app.extensions["todo_api.db"].close()


def test_statement_over_the_timeout_is_503_and_the_connection_is_reusable(own_postgres):
    import psycopg

    app = create_app(make_settings(own_postgres.url(), db_statement_timeout_ms=300), configure_logs=False)
    api = Api(app.test_client(), "slow-user")
    try:
        task = api.create(title="Locked")
        with psycopg.connect(own_postgres.url()) as locker:
            locker.execute("SELECT 1 FROM tasks WHERE id = %s FOR UPDATE", [task["id"]])
            started = time.monotonic()
            response = api.patch(f"/{task['id']}", json={"title": "Blocked"})
            assert time.monotonic() - started < 3
            assert_error(response, 503, "service_unavailable")
            assert "Retry-After" in response.headers
        assert api.patch(f"/{task['id']}", json={"title": "Free"}).status_code == 200
        assert api.get(f"/{task['id']}").json["data"]["title"] == "Free"
    finally:
        app.extensions["todo_api.db"].close()
