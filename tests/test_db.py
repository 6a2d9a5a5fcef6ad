"""todo_api.db: every statement runs under DB_STATEMENT_TIMEOUT_MS, scoped to its own transaction."""

from __future__ import annotations

import os

import psycopg
import pytest
from psycopg import sql

from todo_api.db import Database

SETTING = sql.SQL(
    "SELECT current_setting('statement_timeout') AS timeout, current_setting('transaction_isolation') AS isolation, "
    "current_setting('transaction_read_only') AS read_only"
)

direct_and_preparing = pytest.mark.skipif(
    os.environ.get("DB_PREPARED_STATEMENTS") == "false" or bool(os.environ.get("TODO_API_INSIDE_PGBOUNCER_RUN")),
    reason="counts the statements prepared on one server connection: needs a direct connection",
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
