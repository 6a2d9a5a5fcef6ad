"""todo_api.db: every statement runs under DB_STATEMENT_TIMEOUT_MS, scoped to its own transaction."""

from __future__ import annotations

import os
import time
import uuid

import psycopg
import pytest
from conftest import INSIDE_PGBOUNCER, connect, direct_and_preparing, sibling_url
from psycopg import sql

from todo_api import cli
from todo_api.platform.db import Database, defaults_hold

SETTING = sql.SQL(
    "SELECT current_setting('statement_timeout') AS timeout, current_setting('transaction_isolation') AS isolation, "
    "current_setting('transaction_read_only') AS read_only"
)


@pytest.fixture
def database(database_url):
    prepared = os.environ.get("DB_PREPARED_STATEMENTS", "true") != "false"  # false through PgBouncer 1.18
    db = Database(
        database_url, min_size=1, max_size=1, timeout=2, statement_timeout_ms=1234, prepared_statements=prepared
    )
    yield db
    db.close()


def session_timeout(db: Database) -> str:
    """The setting on the (only) pooled connection, outside any request's transaction."""
    with db.pool.connection() as conn:
        return conn.execute("SHOW statement_timeout").fetchone()["statement_timeout"]


def test_one_statement_runs_under_the_timeout_and_it_does_not_outlive_the_statement(database):
    before = session_timeout(database)
    row = database.fetch_one(SETTING, {})
    assert row == {"timeout": "1234ms", "isolation": "read committed", "read_only": "off"}
    assert database.fetch_all(SETTING, {}) == [row]
    assert session_timeout(database) == before != "1234ms"  # transaction-scoped: safe behind PgBouncer


def test_a_transaction_runs_under_the_timeout_and_one_snapshot_is_a_read_only_repeatable_read(database):
    with database.transaction() as run:
        assert run.fetch_one(SETTING, {}) == {"timeout": "1234ms", "isolation": "read committed", "read_only": "off"}
    with database.transaction(one_snapshot=True) as run:
        assert run.fetch_one(SETTING, {}) == {"timeout": "1234ms", "isolation": "repeatable read", "read_only": "on"}
    assert session_timeout(database) != "1234ms"


def test_a_failed_statement_leaves_the_connection_ready_for_the_next(database):
    with pytest.raises(psycopg.errors.DivisionByZero):
        database.fetch_one(sql.SQL("SELECT 1 / 0"), {})
    assert database.fetch_one(SETTING, {})["timeout"] == "1234ms"


@direct_and_preparing
def test_a_direct_connection_keeps_preparing_under_names_no_other_connection_uses(database_url, caplog):
    statement = sql.SQL("SELECT %(n)s::integer AS n")
    names = []
    for _ in range(2):  # two pools, one connection each
        db = Database(database_url, min_size=1, max_size=1, timeout=2, statement_timeout_ms=1234)
        try:
            for n in range(6):  # psycopg prepares a statement on its 5th run
                assert db.fetch_one(statement, {"n": n}) == {"n": n}
            with db.pool.connection() as conn:
                prepared = conn.execute("SELECT name, statement FROM pg_prepared_statements").fetchall()
        finally:
            db.close()
        assert "SELECT $1::integer AS n" in [row["statement"] for row in prepared]
        names.append({row["name"] for row in prepared})
    assert not names[0] & names[1]
    assert not [record for record in caplog.records if getattr(record, "event", None) == "db.prepared_statements_off"]


@direct_and_preparing
def test_a_transaction_prepares_nothing(database):
    statement = sql.SQL("SELECT %(n)s::integer AS n")
    for n in range(6):
        with database.transaction() as run:
            assert run.fetch_one(statement, {"n": n}) == {"n": n}
    with database.pool.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone() == {"n": 0}


@direct_and_preparing
def test_a_prepared_statement_lost_on_the_server_is_run_again_unprepared_and_preparing_stops(database, caplog):
    """What a pooler that cannot carry prepared statements does, made deterministic: the server
    forgets the statement psycopg prepared (DEALLOCATE ALL inside a DO block, which psycopg does not
    notice as it notices a plain DEALLOCATE ALL), so the next run meets
    "prepared statement does not exist". The statement runs again unprepared, one warning names
    DB_PREPARED_STATEMENTS, and nothing is prepared from then on."""
    statement = sql.SQL("SELECT %(n)s::integer AS n")
    for n in range(6):  # psycopg prepares a statement on its 5th run
        assert database.fetch_one(statement, {"n": n}) == {"n": n}
    with database.pool.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone()["n"] >= 1
        conn.execute("DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$")
    for n in range(6, 14):
        assert database.fetch_one(statement, {"n": n}) == {"n": n}
    with database.pool.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone() == {"n": 0}
    warnings = [r for r in caplog.records if getattr(r, "event", None) == "db.prepared_statements_off"]
    assert len(warnings) == 1 and "DB_PREPARED_STATEMENTS" in warnings[0].getMessage()


@direct_and_preparing
def test_a_failed_transaction_keeps_the_statements_prepared_on_its_connection(database):
    """psycopg meets a rollback with DEALLOCATE ALL, which behind a pooler lands on whichever server
    connection is free and destroys other clients' statements (tests/test_pgbouncer.py). Our
    transactions change no schema, so their rollback leaves every prepared statement in place."""
    statement = sql.SQL("SELECT %(n)s::integer AS n")
    for n in range(6):
        assert database.fetch_one(statement, {"n": n}) == {"n": n}
    with pytest.raises(psycopg.errors.DivisionByZero), database.transaction() as run:
        run.fetch_one(sql.SQL("SELECT 1 / 0"), {})
    with database.pool.connection() as conn:
        prepared = [row["statement"] for row in conn.execute("SELECT statement FROM pg_prepared_statements")]
    assert "SELECT $1::integer AS n" in prepared


# Where the timeout and UTC are the role's defaults in the database (todo-api set-db-defaults), no
# transaction sets them, and they still hold: PgBouncer runs this file again in transaction mode
# (tests/test_pgbouncer.py), where only such defaults reach every server connection.

SOURCE = sql.SQL(
    "SELECT current_setting('statement_timeout') AS timeout, current_setting('TimeZone') AS zone, "
    "(SELECT source FROM pg_settings WHERE name = 'statement_timeout') AS source"
)
SLEEP = sql.SQL("SELECT pg_sleep(2)")


@pytest.fixture(scope="module")
def defaults_url(database_url):
    """A database where this role's defaults are a 300 ms timeout and UTC, set by the operator's command,
    and every server connection to it opened since (as PgBouncer's RECONNECT would)."""
    with connect(database_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = 'todo_db_defaults'").fetchone() is None:
            conn.execute("CREATE DATABASE todo_db_defaults")
            # before any connection to it: PgBouncer gives each client the TimeZone of its first one
            conn.execute("ALTER DATABASE todo_db_defaults SET TimeZone = 'UTC'")
    url = sibling_url(database_url, "todo_db_defaults")
    env = {"DATABASE_URL": url, "DB_STATEMENT_TIMEOUT_MS": "300"}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        patch.delenv("BETTER_AUTH_SECRET", raising=False)  # the command needs no auth configuration
        assert cli.main(["set-db-defaults"]) == 0
    with connect(database_url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = 'todo_db_defaults'")
    deadline = time.monotonic() + 5
    while True:  # PgBouncer, if any, notices its closed server connections and opens new ones
        try:
            with connect(url, autocommit=True) as conn:
                if defaults_hold(conn, 300):
                    return url
        except psycopg.OperationalError:
            pass
        assert time.monotonic() < deadline, "a new connection does not start with the defaults"
        time.sleep(0.1)


def open_database(url: str, statement_timeout_ms: int) -> Database:
    prepared = os.environ.get("DB_PREPARED_STATEMENTS", "true") != "false"
    return Database(
        url, min_size=1, max_size=2, timeout=2, statement_timeout_ms=statement_timeout_ms, prepared_statements=prepared
    )


def assert_cancelled_at_the_timeout(db: Database) -> None:
    """A 2 s statement is cancelled, alone and in a transaction."""
    with pytest.raises(psycopg.errors.QueryCanceled):
        db.fetch_one(SLEEP, {})
    with pytest.raises(psycopg.errors.QueryCanceled), db.transaction() as run:
        run.fetch_one(SLEEP, {})


def test_where_the_defaults_match_no_transaction_sets_them_and_the_timeout_still_holds(defaults_url):
    db = open_database(defaults_url, 300)
    try:
        expected = {"timeout": "300ms", "zone": "UTC", "source": "database user"}  # not "session": no SET LOCAL
        assert db.fetch_one(SOURCE, {}) == expected
        assert db.settings_are_defaults is True
        with db.transaction() as run:
            assert run.fetch_one(SOURCE, {}) == expected
        assert_cancelled_at_the_timeout(db)
    finally:
        db.close()


def test_where_the_defaults_differ_each_transaction_sets_the_timeout_and_it_holds(defaults_url):
    db = open_database(defaults_url, 250)
    try:
        assert db.fetch_one(SOURCE, {}) == {"timeout": "250ms", "zone": "UTC", "source": "session"}
        assert db.settings_are_defaults is False
        assert_cancelled_at_the_timeout(db)
    finally:
        db.close()


def test_a_statement_that_ran_is_not_run_again_when_psycopg_fails_to_tidy_up_after_it(
    defaults_url, monkeypatch, caplog
):
    """Where the settings are defaults a statement goes out alone, committed as it runs. psycopg keeps
    at most `prepared_max` statements prepared (100 by default) and deallocates the one it evicts after
    the next new statement has run; with libpq older than 17 it does so with DEALLOCATE name, which
    fails where a pooler put that statement on another server connection (here: the server forgot
    it). The insert had committed: it must be answered as it is, not run a second time."""
    monkeypatch.setattr(psycopg._connection_base, "_HAS_SEND_CLOSE", False)  # psycopg's path for libpq < 17
    table = sql.Identifier(f"writes_{uuid.uuid4().hex[:8]}")
    with connect(defaults_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (id serial PRIMARY KEY, note text NOT NULL)").format(table))
    db = Database(defaults_url, min_size=1, max_size=1, timeout=2, statement_timeout_ms=300)
    try:
        for statement in (sql.SQL("SELECT %(n)s::integer AS n"), sql.SQL("SELECT %(n)s::bigint AS n")):
            for n in range(6):  # prepared on the 5th run
                assert db.fetch_one(statement, {"n": n}) == {"n": n}
        assert db.settings_are_defaults is True
        with db.pool.connection() as conn:  # the only one: max_size=1
            conn.execute("DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$")
            conn.prepared_max = 1  # one too many prepared: the next new statement evicts the first
        insert = sql.SQL("INSERT INTO {} (note) VALUES (%(note)s) RETURNING id, note").format(table)
        assert db.fetch_one(insert, {"note": "once"}) == {"id": 1, "note": "once"}  # evicts the first
        assert db.fetch_all(sql.SQL("SELECT id, note FROM {}").format(table), {}) == [{"id": 1, "note": "once"}]
    finally:
        db.close()
    warnings = [r for r in caplog.records if getattr(r, "event", None) == "db.prepared_statements_off"]
    assert len(warnings) == 1


# --- fetch_values: one statement straight through libpq (the personal access token lookup) ---------------

RAW_QUERIES = {
    "raw_pair": sql.SQL(
        "SELECT %(n)s::integer AS n, %(blob)s::bytea AS blob, '100%%' AS pct, %(n)s::integer + 1 AS next"
    ),
    "raw_none": sql.SQL("SELECT 1 WHERE false AND %(n)s::integer > 0"),
    "raw_failing": sql.SQL("SELECT 1 / %(n)s::integer"),
}


@pytest.fixture
def raw_database(database_url):
    prepared = os.environ.get("DB_PREPARED_STATEMENTS", "true") != "false"
    db = Database(
        database_url,
        min_size=1,
        max_size=1,
        timeout=2,
        statement_timeout_ms=1234,
        prepared_statements=prepared,
        queries=RAW_QUERIES,
    )
    yield db
    db.close()


def test_fetch_values_answers_the_row_as_text_or_none(raw_database):
    row = raw_database.fetch_values("raw_pair", {"n": "41", "blob": b"\x00\xff"})
    assert row == (b"41", b"\\x00ff", b"100%", b"42")  # str as text, bytes as binary; %% is one %
    assert raw_database.fetch_values("raw_none", {"n": "1"}) is None


@direct_and_preparing
def test_fetch_values_prepares_once_per_connection(raw_database):
    for n in range(3):
        assert raw_database.fetch_values("raw_pair", {"n": str(n), "blob": b""})[0] == str(n).encode()
    with raw_database.pool.connection() as conn:
        prepared = conn.execute("SELECT name FROM pg_prepared_statements WHERE name = 'todo_api_raw_pair'").fetchall()
    assert len(prepared) == 1


def test_fetch_values_raises_the_servers_error_and_the_connection_serves_on(raw_database):
    with pytest.raises(psycopg.errors.DivisionByZero):
        raw_database.fetch_values("raw_failing", {"n": "0"})
    assert raw_database.fetch_values("raw_failing", {"n": "1"}) == (b"1",)


@direct_and_preparing
def test_fetch_values_runs_again_unprepared_when_the_server_lost_its_statement(raw_database, caplog):
    assert raw_database.fetch_values("raw_pair", {"n": "1", "blob": b""})[0] == b"1"
    with raw_database.pool.connection() as conn:
        conn.execute(
            "DO $$ BEGIN EXECUTE 'DEALLOCATE ALL'; END $$"
        )  # what a pooler's other server connection looks like
    assert raw_database.fetch_values("raw_pair", {"n": "2", "blob": b""})[0] == b"2"
    assert raw_database.fetch_values("raw_pair", {"n": "3", "blob": b""})[0] == b"3"
    with raw_database.pool.connection() as conn:
        assert conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone() == {"n": 0}
    warnings = [r for r in caplog.records if getattr(r, "event", None) == "db.prepared_statements_off"]
    assert len(warnings) == 1


@pytest.mark.skipif(
    INSIDE_PGBOUNCER, reason="counts the statements prepared on its server connection, which other clients share there"
)
def test_fetch_values_prepares_nothing_when_told_not_to(database_url):
    db = Database(
        database_url,
        min_size=1,
        max_size=1,
        timeout=2,
        statement_timeout_ms=1234,
        prepared_statements=False,
        queries=RAW_QUERIES,
    )
    try:
        assert db.fetch_values("raw_pair", {"n": "5", "blob": b""})[0] == b"5"
        with db.pool.connection() as conn:
            assert conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone() == {"n": 0}
    finally:
        db.close()
