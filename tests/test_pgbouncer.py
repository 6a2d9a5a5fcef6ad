"""The suite, run again through PgBouncer in transaction mode (API.md / issue 8): all of it with
DB_PREPARED_STATEMENTS=false, the task, listing and time-zone tests with the defaults (issue 12 §2:
Debian's PgBouncer 1.18 cannot carry prepared statements, and the defaults must cost no request),
and the prepared-statement fallback itself, step by step.

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
from pathlib import Path

import psycopg
import pytest
from conftest import Api, free_port, make_settings, migrate_all
from psycopg import sql

from todo_api import create_app
from todo_api.cli import PROJECT_ROOT
from todo_api.platform.db import Database

PGBOUNCER = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
INNER_RUN = "TODO_API_INSIDE_PGBOUNCER_RUN"


@pytest.fixture
def pgbouncer(postgres, tmp_path):
    if os.environ.get(INNER_RUN):
        pytest.skip("already running through PgBouncer")
    if PGBOUNCER is None:
        if os.environ.get("REQUIRE_PGBOUNCER") == "1":
            pytest.fail("REQUIRE_PGBOUNCER=1 but pgbouncer is not installed (apt-get install pgbouncer)")
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer); CI installs it and requires this test")
    if postgres is None:
        pytest.skip("runs against the embedded server, not TEST_DATABASE_URL")
    postgres.create_database("todo_pgbouncer")
    port = free_port()
    run_dir = tmp_path / "pgbouncer"
    run_dir.mkdir()
    (run_dir / "userlist.txt").write_text('"postgres" ""\n')
    (run_dir / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"todo_pgbouncer = host=127.0.0.1 port={postgres.port} dbname=todo_pgbouncer\n"
        f"* = host=127.0.0.1 port={postgres.port}\n"  # any other database too (tests/test_timezones.py)
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {run_dir / 'userlist.txt'}\n"
        "pool_mode = transaction\nmax_client_conn = 500\ndefault_pool_size = 40\n"
        "ignore_startup_parameters = extra_float_digits,options\n"
        f"logfile = {run_dir / 'pgbouncer.log'}\n"
    )
    os.chmod(tmp_path, 0o755)
    os.chmod(run_dir, 0o777)
    command = [PGBOUNCER, str(run_dir / "pgbouncer.ini")]
    if os.geteuid() == 0:  # pgbouncer refuses to run as root
        command[1:1] = ["-u", "embedded_postgres"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"postgresql://postgres@127.0.0.1:{port}/todo_pgbouncer"
    deadline = time.monotonic() + 10
    while True:
        try:
            psycopg.connect(url, connect_timeout=2).close()
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline or process.poll() is not None:
                process.kill()
                pytest.fail(f"pgbouncer did not start: {(run_dir / 'pgbouncer.log').read_text()[-2000:]}")
            time.sleep(0.1)
    yield url
    process.terminate()
    process.wait(timeout=10)


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
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]


def test_the_whole_suite_passes_through_pgbouncer_in_transaction_mode(pgbouncer):
    run_tests_through(pgbouncer, "tests", DB_PREPARED_STATEMENTS="false")


def test_task_listing_and_time_zone_tests_pass_through_pgbouncer_with_the_default_settings(pgbouncer):
    """Prepared statements on (the default): the service notices PgBouncer 1.18 and stops preparing."""
    run_tests_through(
        pgbouncer,
        *("tests/test_tasks.py", "tests/test_listing.py", "tests/test_validation.py", "tests/test_envelope.py"),
        *("tests/test_db.py", "tests/test_timezones.py"),
        # it counts statements prepared on one server connection: a direct connection's business
        "--deselect=tests/test_listing.py::test_everyday_listings_are_prepared_and_value_dependent_ones_are_planned_each_time",
    )


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
