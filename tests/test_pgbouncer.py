"""The suite, run again through PgBouncer 1.18 in transaction mode (API.md / issue 8): all of it
with the default settings (issue 21 §2: Debian's 1.18 cannot carry prepared statements, and the
defaults must cost no request; marked whole_suite: `make test-pgbouncer`, not `make test`), the
database tests with DB_PREPARED_STATEMENTS=false, and the faults such a pooler brings, each step by
step: another client's statement under our name, a statement missing where it lands, the CLI's
statements outliving a run, a rollback's DEALLOCATE ALL reaching another client's server connection.
docs/testing.md says why this split.

Needs Debian's pgbouncer. Without it the test skips, unless REQUIRE_PGBOUNCER=1 (CI sets it after
installing pgbouncer), which turns the skip into a failure.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from conftest import Api, free_port, make_settings, migrate_all
from psycopg import sql

from todo_api import cli, create_app
from todo_api.cli import PROJECT_ROOT
from todo_api.platform.db import Database

PGBOUNCER = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
INNER_RUN = "TODO_API_INSIDE_PGBOUNCER_RUN"


def start_pgbouncer(postgres, run_dir: Path, database: str, **settings: str) -> tuple[str, subprocess.Popen]:
    """PgBouncer 1.18 in transaction mode in front of `database` (created if missing), with `settings`
    added to its [pgbouncer] section; its URL and process once it accepts connections."""
    postgres.create_database(database)
    port = free_port()
    run_dir.mkdir()
    (run_dir / "userlist.txt").write_text('"postgres" ""\n')
    options = {
        "listen_addr": "127.0.0.1",
        "listen_port": str(port),
        "unix_socket_dir": "",
        "auth_type": "trust",
        "auth_file": str(run_dir / "userlist.txt"),
        "pool_mode": "transaction",
        "max_client_conn": "500",
        "default_pool_size": "40",
        "ignore_startup_parameters": "extra_float_digits,options",
        "logfile": str(run_dir / "pgbouncer.log"),
        **settings,
    }
    (run_dir / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"{database} = host=127.0.0.1 port={postgres.port} dbname={database}\n"
        f"* = host=127.0.0.1 port={postgres.port}\n"  # any other database too (tests/test_timezones.py)
        "[pgbouncer]\n" + "".join(f"{name} = {value}\n" for name, value in options.items())
    )
    os.chmod(run_dir.parent, 0o755)
    os.chmod(run_dir, 0o777)
    command = [PGBOUNCER, str(run_dir / "pgbouncer.ini")]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        command[1:1] = ["-u", "embedded_postgres"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"postgresql://postgres@127.0.0.1:{port}/{database}"
    deadline = time.monotonic() + 10
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            return url, process
        except psycopg.OperationalError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"pgbouncer did not start: {(run_dir / 'pgbouncer.log').read_text()[-2000:]}")
            time.sleep(0.1)


@pytest.fixture
def pgbouncers(postgres, tmp_path):
    """Starts PgBouncers: `pgbouncers(database, **settings)` is the URL of a new one."""
    if os.environ.get(INNER_RUN):
        pytest.skip("already running through PgBouncer")
    if PGBOUNCER is None:
        if os.environ.get("REQUIRE_PGBOUNCER") == "1":
            pytest.fail("REQUIRE_PGBOUNCER=1 but pgbouncer is not installed (apt-get install pgbouncer)")
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer); CI installs it and requires this test")
    if postgres is None:
        pytest.skip("runs against the embedded server, not TEST_DATABASE_URL")
    processes: list[subprocess.Popen] = []

    def start(database: str, **settings: str) -> str:
        url, process = start_pgbouncer(postgres, tmp_path / f"pgbouncer-{len(processes)}", database, **settings)
        processes.append(process)
        return url

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def pgbouncer(pgbouncers):
    """PgBouncer as it comes: it hands a client the server connection used last (LIFO)."""
    return pgbouncers("todo_pgbouncer")


@pytest.fixture
def one_server_pgbouncer(pgbouncers):
    """A new database behind a PgBouncer that keeps one server connection for it: every client's
    transactions share it, so what one client leaves there the next one meets, every time."""
    return pgbouncers(f"todo_one_server_{uuid.uuid4().hex[:8]}", default_pool_size="1")


def run_tests_through(pgbouncer: str, *arguments: str, **env: str) -> None:
    """Run pytest on `arguments` in a child process whose database is behind `pgbouncer`."""
    child_env = {k: v for k, v in os.environ.items() if k != "DB_PREPARED_STATEMENTS"}
    child_env.update(env, TEST_DATABASE_URL=pgbouncer, **{INNER_RUN: "1"})
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *arguments],
        cwd=PROJECT_ROOT,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]


@pytest.mark.whole_suite
def test_the_whole_suite_passes_through_pgbouncer_with_the_default_settings(pgbouncers):
    """Prepared statements on, as users run it. Round robin hands each transaction the server
    connection idle longest, as load does, so every pool in the suite soon meets a statement missing
    where it lands, stops preparing and goes on (LIFO would let most of them prepare happily on one
    server connection)."""
    run_tests_through(pgbouncers("todo_pgbouncer", server_round_robin="1"), "tests")


def test_the_database_tests_pass_through_pgbouncer_with_prepared_statements_off(pgbouncer):
    """DB_PREPARED_STATEMENTS=false differs from the defaults only in todo_api/db.py: the tests of
    what runs the statements (tasks, listings, time zones, the envelope) cover it."""
    run_tests_through(
        pgbouncer,
        *("tests/test_tasks.py", "tests/test_listing.py", "tests/test_validation.py", "tests/test_envelope.py"),
        *("tests/test_db.py", "tests/test_timezones.py"),
        DB_PREPARED_STATEMENTS="false",
    )


def test_personal_access_tokens_pass_through_pgbouncer_with_the_default_settings(pgbouncers):
    """A read carries the token's lookup in its own statement (docs/tokens.md): with prepared
    statements on and round robin, the carrier meets a server connection without its statement and
    goes on unprepared, never acting before its answer."""
    run_tests_through(
        pgbouncers("todo_pgbouncer_tokens", server_round_robin="1"),
        *("tests/test_tokens.py", "tests/test_token_lookup_order.py"),
    )


def test_migrate_and_rollback_run_again_and_again_through_pgbouncer(one_server_pgbouncer, monkeypatch):
    """yoyo's connection would prepare its statements under psycopg's names (_pg3_0, _pg3_1, ...),
    which stay on the server connection after it ends: the next run met "prepared statement
    _pg3_0 already exists" and left yoyo's lock held, so every run after it failed too."""
    monkeypatch.setenv("DATABASE_URL", one_server_pgbouncer)
    monkeypatch.delenv("BETTER_AUTH_SECRET", raising=False)  # the commands need no auth configuration
    for command in (["migrate"], ["migrate"], ["rollback"], ["migrate"], ["rollback"], ["migrate"]):
        assert cli.main(command) == 0, command
    with psycopg.connect(one_server_pgbouncer, prepare_threshold=None) as conn:
        assert conn.execute("SELECT count(*) FROM tasks").fetchone() == (0,)


def test_a_failed_transaction_leaves_other_clients_prepared_statements_alone(one_server_pgbouncer):
    """psycopg answers a rollback on a connection holding prepared statements with DEALLOCATE ALL,
    which a pooler sends to whichever server connection is free: the statements it destroyed
    there were another client's (here the only server connection is shared, so every time)."""
    database = Database(one_server_pgbouncer, min_size=1, max_size=1, timeout=5, statement_timeout_ms=5000)
    with psycopg.connect(one_server_pgbouncer, autocommit=True) as other:
        assert other.execute("SELECT %s::integer", [1], prepare=True).fetchone() == (1,)
        try:
            for n in range(6):  # prepared on the 5th run
                assert database.fetch_one(sql.SQL("SELECT %(n)s::integer AS n"), {"n": n}) == {"n": n}
            with pytest.raises(psycopg.errors.DivisionByZero), database.transaction() as run:
                run.fetch_one(sql.SQL("SELECT 1 / 0"), {})
        finally:
            database.close()
        assert other.execute("SELECT %s::integer", [2], prepare=True).fetchone() == (2,)


def warnings_about_prepared_statements(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == "db.prepared_statements_off"]


def test_a_statement_never_runs_as_another_connections_prepared_statement(pgbouncer, caplog):
    """PgBouncer 1.18 reuses its server connections last-in first-out. Connection A holds server
    connection S1 in a transaction while B prepares its statements on S2; A then prepares two
    statements of its own on S1 and ends. B's next statement lands on S1: with psycopg's own names
    (_pg3_0, _pg3_1 on every connection) S1 would run A's statement with B's parameters; with
    names of its own, B's is missing there, so B runs it again unprepared and stops preparing."""
    mine = sql.SQL("SELECT %(who)s::text AS who")
    database = Database(pgbouncer, min_size=2, max_size=2, timeout=5, statement_timeout_ms=5000)
    try:
        database.pool.wait()
        with database.pool.connection() as held:
            held.execute("BEGIN")
            for _ in range(6):  # prepared on the 5th run, on the other server connection
                assert database.fetch_one(mine, {"who": "mine"}) == {"who": "mine"}
            assert not warnings_about_prepared_statements(caplog)
            held.execute("SELECT 'filler'", prepare=True)
            held.execute("SELECT 'theirs'::text AS who WHERE %s::text IS NOT NULL", ["x"], prepare=True)
            held.execute("COMMIT")
        for _ in range(4):
            assert database.fetch_one(mine, {"who": "mine"}) == {"who": "mine"}
    finally:
        database.close()
    # Usually B lands on S1 and says so once; under load PgBouncer may hand B its own S2 again, and
    # then nothing went wrong to say (the fallback itself: tests/test_db.py, deterministically).
    assert len(warnings_about_prepared_statements(caplog)) <= 1


def test_with_default_settings_a_pooler_that_loses_prepared_statements_costs_no_request(postgres, pgbouncer, caplog):
    """The same mishap under real requests, then a burst from eight threads: every request answers
    as it should, and the worker says once that it stopped preparing statements."""
    migrate_all(postgres.url("todo_pgbouncer"))
    settings = make_settings(pgbouncer, db_prepared_statements=True, db_pool_min_size=2, db_pool_max_size=2)
    app = create_app(settings, configure_logs=False)
    database = app.extensions["todo_api.db"]
    api = Api(app.test_client(), "pgbouncer-defaults")
    try:
        task = api.create(title="first")
        database.pool.wait()
        with database.pool.connection() as held:
            held.execute("BEGIN")
            for _ in range(6):
                assert api.get(f"/{task['id']}").status_code == 200
            held.execute("COMMIT")
        failures: list[str] = []

        def client_work() -> None:
            own = Api(app.test_client(), api.user_id)
            for n in range(6):
                for response in (
                    own.post(json={"title": f"task {n}", "due_at": "9999-12-31T23:30:00Z"}),
                    own.get(f"/{task['id']}"),
                    own.get(query_string={"sort": "due_at", "total": "true"}),
                    own.patch(f"/{task['id']}", json={"priority": "high"}),
                    own.post(json={"title": "again"}, headers={"Idempotency-Key": f"key-{n}"}),
                ):
                    if response.status_code >= 300:
                        failures.append(f"{response.status_code} {response.get_data(as_text=True)}")

        client_work()
        threads = [threading.Thread(target=client_work) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        database.close()
    assert failures == []
    assert len(warnings_about_prepared_statements(caplog)) == 1
