"""The whole suite, run again through PgBouncer in transaction mode (API.md / issue 8).

Needs Debian's pgbouncer. Without it the test skips, unless REQUIRE_PGBOUNCER=1 (CI sets it after
installing pgbouncer), which turns the skip into a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
from conftest import free_port

from todo_api.cli import PROJECT_ROOT

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


def test_the_whole_suite_passes_through_pgbouncer_in_transaction_mode(pgbouncer):
    env = {
        **os.environ,
        "TEST_DATABASE_URL": pgbouncer,
        "DB_PREPARED_STATEMENTS": "false",  # pgbouncer 1.18 cannot route prepared statements
        INNER_RUN: "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "tests"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout.splitlines()[-1]
