"""Losing the primary (OPERATIONS.md): a commit never waits forever for a synchronous standby, a
write whose wait was cut short is never acknowledged, and a server that turns read-only is left
for the next host of DATABASE_URL. `make failover` runs the real thing (bench/failover.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from conftest import Api, assert_error, free_port, make_settings, migrate_all
from psycopg import sql

from todo_api import create_app
from todo_api.platform.embedded import EmbeddedPostgres

TIMEOUT_MS = 500
HANG = 15  # seconds: an answer later than this is taken for a hang


@pytest.fixture
def primary(tmp_path) -> Iterator[EmbeddedPostgres]:
    """A durable server (commits wait for standbys only with synchronous_commit on), migrated."""
    server = EmbeddedPostgres(tmp_path / "primary").start()
    migrate_all(server.url())
    yield server
    set_synchronous_standby(server, "")  # releases any commit still waiting
    server.stop(mode="immediate")


def set_synchronous_standby(server: EmbeddedPostgres, names: str) -> None:
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(sql.SQL("ALTER SYSTEM SET synchronous_standby_names = {}").format(sql.Literal(names)))
        conn.execute("SELECT pg_reload_conf()")


@pytest.fixture
def standby_missing(primary: EmbeddedPostgres) -> EmbeddedPostgres:
    """The primary waits, at each commit, for a standby that never connects. Restarted so that
    the setting holds for every backend from the first commit on."""
    set_synchronous_standby(primary, "missing_standby")
    primary.stop()
    primary.start()
    return primary


def answer_within(request: Callable[[], Any], seconds: float = HANG) -> tuple[Any, float]:
    """The answer to `request()` made in a thread, and how long it took; fails on a hang."""
    answers: list[Any] = []
    started = time.monotonic()
    thread = threading.Thread(target=lambda: answers.append(request()), daemon=True)
    thread.start()
    thread.join(seconds)
    if not answers:
        pytest.fail(f"no answer within {seconds} s: the request hangs")
    return answers[0], time.monotonic() - started


def wait_until(predicate: Callable[[], bool], seconds: float = HANG) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not true within {seconds} s")
        time.sleep(0.05)


def local(server: EmbeddedPostgres) -> psycopg.Connection[Any]:
    """The test's own connection: its commits do not wait for the standby."""
    return psycopg.connect(server.url(), autocommit=True, options="-c synchronous_commit=local")


def service_backends(server: EmbeddedPostgres) -> set[int]:
    with local(server) as conn:
        rows = conn.execute("SELECT pid FROM pg_stat_activity WHERE application_name = 'todo-api'").fetchall()
    return {pid for (pid,) in rows}


@pytest.fixture
def make_app():
    apps = []

    def make(url: str, **settings: Any):
        app = create_app(make_settings(url, **settings), configure_logs=False)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["todo_api.db"].close()


def test_a_create_whose_wait_for_the_standby_is_cut_short_is_503_and_its_retry_finds_it(standby_missing, make_app):
    app = make_app(standby_missing.url(), db_statement_timeout_ms=TIMEOUT_MS, db_pool_max_size=1)
    api = Api(app.test_client(), "sync-user")
    key = {"Idempotency-Key": "create-once"}

    response, _ = answer_within(lambda: api.post(json={"title": "Replicated?"}, headers=key))
    assert_error(response, 503, "service_unavailable")
    assert response.headers["Retry-After"] == "1"
    with local(standby_missing) as conn:  # committed here, but not acknowledged
        stored = conn.execute("SELECT id FROM tasks WHERE user_id = 'sync-user'").fetchall()
    assert len(stored) == 1

    retried, _ = answer_within(lambda: api.post(json={"title": "Replicated?"}, headers=key))
    assert_error(retried, 503, "service_unavailable")  # still unreplicated: still not acknowledged
    assert api.get().status_code == 200  # reads do not wait for the standby

    set_synchronous_standby(standby_missing, "")  # replication back (or given up on)
    replayed, _ = answer_within(lambda: api.post(json={"title": "Replicated?"}, headers=key))
    assert replayed.status_code == 201, replayed.json
    assert replayed.json["data"]["id"] == stored[0][0]
    with local(standby_missing) as conn:
        assert conn.execute("SELECT count(*) FROM tasks WHERE user_id = 'sync-user'").fetchone() == (1,)


def test_a_one_statement_write_waiting_for_the_standby_is_503_and_its_connection_is_dropped(standby_missing, make_app):
    app = make_app(standby_missing.url(), db_statement_timeout_ms=TIMEOUT_MS, db_pool_max_size=1)
    api = Api(app.test_client(), "one-statement-user")
    with local(standby_missing) as conn:
        (task_id,) = conn.execute(
            "INSERT INTO tasks (user_id, title) VALUES ('one-statement-user', 'Before') RETURNING id"
        ).fetchone()
    assert api.get(f"/{task_id}").status_code == 200
    (backend,) = service_backends(standby_missing)

    response, _ = answer_within(lambda: api.patch(f"/{task_id}", json={"title": "After"}))
    assert_error(response, 503, "service_unavailable")
    assert response.headers["Retry-After"] == "1"
    wait_until(lambda: backend not in service_backends(standby_missing))  # closed, not handed to another request
    assert api.get(f"/{task_id}").status_code == 200


def test_a_wait_for_the_standby_cancelled_by_someone_else_is_503_too(standby_missing, make_app):
    app = make_app(standby_missing.url(), db_statement_timeout_ms=60_000)  # the watchdog stays out of it
    api = Api(app.test_client(), "cancelled-user")
    answers: list[Any] = []
    request = threading.Thread(target=lambda: answers.append(api.post(json={"title": "Cancelled"})), daemon=True)
    request.start()

    def waiting_backends() -> list[tuple[int]]:
        with local(standby_missing) as conn:
            return conn.execute("SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'").fetchall()

    wait_until(lambda: len(waiting_backends()) == 1)
    with local(standby_missing) as conn:
        conn.execute("SELECT pg_cancel_backend(%s)", waiting_backends()[0])
    request.join(HANG)
    assert answers, "no answer after the cancel"
    assert_error(answers[0], 503, "service_unavailable")


def test_no_request_meets_a_connection_the_server_closed_while_it_was_idle(tmp_path, make_app):
    server = EmbeddedPostgres(tmp_path / "restarted", durable=False).start()
    try:
        migrate_all(server.url())
        app = make_app(server.url(), db_pool_min_size=2, db_pool_max_size=2)
        api = Api(app.test_client(), "idle-user")
        api.create(title="Before the restart")
        pool = app.extensions["todo_api.db"].pool
        wait_until(lambda: pool.get_stats()["pool_available"] == 2)

        server.stop(mode="fast")  # as a demoted primary does: every connection closed
        server.start()
        for _ in range(3):  # each pooled connection would be met once
            response = api.get()
            assert response.status_code == 200, response.json
            assert [task["title"] for task in response.json["data"]] == ["Before the restart"]
        stats = app.extensions["todo_api.db"].pool_stats()  # /metrics' tally: each dropped one handed back
        assert (stats["in_use"], stats["waiting"]) == (0, 0)
    finally:
        server.stop(mode="immediate")


def test_a_server_that_turns_read_only_is_left_for_the_next_host_without_a_restart(tmp_path, make_app):
    first = EmbeddedPostgres(tmp_path / "first", durable=False).start()
    second = EmbeddedPostgres(tmp_path / "second", durable=False).start()
    try:
        for server in (first, second):
            migrate_all(server.url())
        url = (
            f"postgresql://postgres@127.0.0.1:{free_port()},127.0.0.1:{first.port},127.0.0.1:{second.port}/todo"
            "?target_session_attrs=read-write"
        )
        app = make_app(url, db_pool_max_size=1)
        api = Api(app.test_client(), "moving-user")
        api.create(title="On the first")

        with psycopg.connect(first.url(), autocommit=True) as conn:  # as a demoted primary that stays up
            conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            conn.execute("SELECT pg_reload_conf()")
        database = app.extensions["todo_api.db"]
        read_only = sql.SQL("SELECT current_setting('default_transaction_read_only') AS setting")
        wait_until(lambda: database.fetch_one(read_only, {})["setting"] == "on")  # the pool's connection sees it

        refused = api.post(json={"title": "Refused"})
        assert_error(refused, 503, "service_unavailable")
        assert refused.headers["Retry-After"] == "1"
        assert api.post(json={"title": "On the second"}).status_code == 201
        for server, titles in ((first, [("On the first",)]), (second, [("On the second",)])):
            with psycopg.connect(server.url()) as conn:
                assert conn.execute("SELECT title FROM tasks WHERE user_id = 'moving-user'").fetchall() == titles
    finally:
        first.stop(mode="immediate")
        second.stop(mode="immediate")
