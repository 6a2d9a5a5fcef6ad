"""The todo-api command and start-up configuration (OPERATIONS.md)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import jwt
import psycopg
import pytest
import requests
from conftest import SECRET, free_port

from todo_api.cli import MIGRATIONS_DIR, PROJECT_ROOT, parse_ttl
from todo_api.platform.config import ConfigError, load_settings
from todo_api.platform.db import defaults_hold
from todo_api.platform.embedded import EmbeddedPostgres

VALID = {"DATABASE_URL": "postgresql://u@127.0.0.1/db", "BETTER_AUTH_SECRET": SECRET}


def todo_api(*args: str, env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "BETTER_AUTH", "JWT_", "DB_"))}
    return subprocess.run(
        [sys.executable, "-m", "todo_api.cli", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=PROJECT_ROOT,
    )


def schema_snapshot(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name NOT LIKE '%%yoyo%%' ORDER BY 1, 2"
        ).fetchall()
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
            " AND tablename NOT LIKE '%%yoyo%%' ORDER BY 1"
        ).fetchall()
        constraints = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE connamespace = 'public'::regnamespace ORDER BY 1"
        ).fetchall()
    return columns + indexes + constraints


@pytest.fixture(scope="module")
def blank_database(tmp_path_factory):
    server = EmbeddedPostgres(tmp_path_factory.mktemp("cli-pg"), durable=False).start()
    yield server.url()
    server.stop(mode="immediate")


def test_migrate_twice_is_a_no_op_and_rollback_then_migrate_restores_the_schema(blank_database):
    env = {"DATABASE_URL": blank_database}
    first = todo_api("migrate", env=env)
    assert first.returncode == 0, first.stderr
    migrations = [p for p in MIGRATIONS_DIR.glob("*.sql") if not p.name.endswith(".rollback.sql")]
    assert first.stdout.startswith(f"{len(migrations)} migration(s) applied")
    applied = schema_snapshot(blank_database)
    assert any("tasks" in str(row) for row in applied)

    second = todo_api("migrate", env=env)
    assert second.returncode == 0 and second.stdout.startswith("0 migration(s) applied")
    assert schema_snapshot(blank_database) == applied

    rolled = todo_api("rollback", "--count", "2", env=env)
    assert rolled.returncode == 0 and rolled.stdout.startswith("2 migration(s) rolled back")
    assert schema_snapshot(blank_database) != applied
    assert todo_api("migrate", env=env).stdout.startswith("2 migration(s) applied")
    assert schema_snapshot(blank_database) == applied


@pytest.mark.parametrize("form", ["hosts in the authority", "hosts in the query string"])
def test_every_command_takes_a_url_with_several_hosts_the_first_one_dead(form, tmp_path, start_gunicorn):
    server = EmbeddedPostgres(tmp_path / "pg", durable=False).start()
    dead, live = free_port(), server.port
    url = {
        "hosts in the authority": f"postgresql://postgres@127.0.0.1:{dead},127.0.0.1:{live}/todo",
        "hosts in the query string": f"postgresql://postgres@/todo?host=127.0.0.1,127.0.0.1&port={dead},{live}",
    }[form]
    url += ("&" if "?" in url else "?") + "target_session_attrs=read-write"
    env = {"DATABASE_URL": url, "BETTER_AUTH_SECRET": SECRET}
    try:
        migrations = [p for p in MIGRATIONS_DIR.glob("*.sql") if not p.name.endswith(".rollback.sql")]
        for args, output in (
            (["migrate"], f"{len(migrations)} migration(s) applied"),
            (["rollback", "--count", "1"], "1 migration(s) rolled back"),
            (["migrate"], "1 migration(s) applied"),
            (["set-db-defaults"], "statement_timeout and TimeZone are now this role's defaults in database todo"),
            (["seed", "--users", "1", "--tasks", "3"], "user-1\t"),
        ):
            result = todo_api(*args, env=env)
            assert (result.returncode, result.stderr) == (0, ""), args
            assert result.stdout.startswith(output), args
        with psycopg.connect(server.url()) as conn:
            assert conn.execute("SELECT count(*) FROM tasks WHERE user_id = 'user-1'").fetchone() == (3,)

        service = start_gunicorn(env)  # what `todo-api serve` runs
        assert requests.get(service.url + "/readyz", timeout=10).status_code == 200
    finally:
        server.stop(mode="immediate")


@pytest.mark.parametrize("command", ["migrate", "rollback", "set-db-defaults", "seed", "serve"])
def test_a_database_url_libpq_cannot_read_is_one_line_naming_it(command):
    env = {**VALID, "DATABASE_URL": "postgresql://todo:hunter2@[::1/todo?target_session_attrs=read-write"}
    result = todo_api(command, env=env)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "configuration error: DATABASE_URL is not a URL libpq can read: end of string reached when looking for "
        'matching "]" in IPv6 host address in URI: "postgresql://todo:***@[::1/todo?target_session_attrs=read-write"'
    )


def test_seed_fills_tasks_and_prints_a_token_per_user(blank_database):
    env = {"DATABASE_URL": blank_database, "BETTER_AUTH_SECRET": SECRET}
    assert todo_api("migrate", env=env).returncode == 0
    result = todo_api("seed", "--users", "2", "--tasks", "5", env=env)
    assert result.returncode == 0, result.stderr
    lines = [line.split("\t") for line in result.stdout.strip().splitlines()]
    assert [user for user, _ in lines] == ["user-1", "user-2"]
    for user, token in lines:
        assert jwt.decode(token, SECRET, algorithms=["HS256"])["sub"] == user
    with psycopg.connect(blank_database) as conn:
        counts = conn.execute("SELECT user_id, count(*) FROM tasks GROUP BY 1 ORDER BY 1").fetchall()
        assert counts == [("user-1", 5), ("user-2", 5)]
        assert todo_api("seed", "--users", "1", "--tasks", "3", env=env).returncode == 0  # again: after those
        rows = conn.execute(
            "SELECT list_id, parent_id, position FROM tasks WHERE user_id = 'user-1' ORDER BY id"
        ).fetchall()
    assert {(list_id, parent_id) for list_id, parent_id, _ in rows} == {(None, None)}  # the inbox, top level
    in_order = [position for _, _, position in rows]
    assert len(in_order) == 8 and sorted(in_order) == in_order and len(set(in_order)) == 8  # each after the last


def test_token_is_hs256_for_the_user_with_the_ttl():
    result = todo_api("token", "alice", "--ttl", "15m", env=VALID)
    assert result.returncode == 0, result.stderr
    claims = jwt.decode(result.stdout.strip(), SECRET, algorithms=["HS256"])
    assert claims["sub"] == "alice" and claims["exp"] - claims["iat"] == 15 * 60


def test_token_carries_the_configured_issuer_and_audience():
    env = {**VALID, "JWT_ISSUER": "https://auth.example", "JWT_AUDIENCE": "https://api.example"}
    token = todo_api("token", "alice", env=env).stdout.strip()
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="https://api.example")
    assert claims["iss"] == "https://auth.example"


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("15m", 900), ("1h", 3600), ("7d", 604800)])
def test_ttl_parsing(text, seconds):
    assert parse_ttl(text).total_seconds() == seconds


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"BETTER_AUTH_SECRET": "short"}, "BETTER_AUTH_SECRET"),
        ({"BETTER_AUTH_SECRET": ""}, "BETTER_AUTH_SECRET"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://u@h1:5432,h2:x/db"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://u@h1,h2,h3/db?port=5432,5433"}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgresql://u@h/db?no_such_parameter=1"}, "DATABASE_URL"),
        ({"DB_POOL_MAX_SIZE": "ten"}, "DB_POOL_MAX_SIZE"),
        ({"DB_POOL_MIN_SIZE": "5", "DB_POOL_MAX_SIZE": "2"}, "DB_POOL_MAX_SIZE"),
        ({"DB_POOL_TIMEOUT": "0"}, "DB_POOL_TIMEOUT"),
        ({"DB_STATEMENT_TIMEOUT_MS": "-1"}, "DB_STATEMENT_TIMEOUT_MS"),
        ({"JWT_LEEWAY_SECONDS": "soon"}, "JWT_LEEWAY_SECONDS"),
        ({"JWT_ALGORITHMS": "none"}, "JWT_ALGORITHMS"),
        ({"JWT_ALGORITHMS": "HS512"}, "BETTER_AUTH_SECRET"),
        ({"LOG_LEVEL": "LOUD"}, "LOG_LEVEL"),
        ({"LOG_FORMAT": "xml"}, "LOG_FORMAT"),
        ({"BETTER_AUTH_URL": "localhost:3000"}, "BETTER_AUTH_URL"),
        ({"CORS_ALLOWED_ORIGINS": "example.com"}, "CORS_ALLOWED_ORIGINS"),
        ({"SYNC_RETENTION_DAYS": "0"}, "SYNC_RETENTION_DAYS"),
        ({"SYNC_RETENTION_DAYS": "1.5"}, "SYNC_RETENTION_DAYS"),
        ({"SYNC_RETENTION_DAYS": "a month"}, "SYNC_RETENTION_DAYS"),
        ({"REQUEST_HEAD_TIMEOUT_SECONDS": "soon"}, "REQUEST_HEAD_TIMEOUT_SECONDS"),
        ({"REQUEST_BODY_TIMEOUT_SECONDS": "0"}, "REQUEST_BODY_TIMEOUT_SECONDS"),
    ],
)
def test_bad_configuration_names_the_variable(env, variable):
    with pytest.raises(ConfigError) as raised:
        load_settings({**VALID, **env})
    assert raised.value.variable == variable
    assert str(raised.value).startswith(f"configuration error: {variable} ")


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://todo:pw@db1.example:5432,db2.example:5433/todo?target_session_attrs=read-write",
        "postgresql://todo:pw@/todo?host=db1.example,db2.example&port=5432,5433&target_session_attrs=read-write",
        "postgres://todo@db.example/todo?sslmode=require",
    ],
)
def test_database_url_may_name_several_hosts_in_either_form(url):
    assert load_settings({**VALID, "DATABASE_URL": url}).database_url == url


def test_sync_retention_is_whole_days_defaulting_to_30():
    assert load_settings(VALID).sync_retention_days == 30
    assert load_settings({**VALID, "SYNC_RETENTION_DAYS": "1"}).sync_retention_days == 1


def test_either_auth_mode_alone_is_a_complete_configuration():
    assert load_settings({"BETTER_AUTH_URL": "http://localhost:3000/"}).jwt_issuer == "http://localhost:3000"
    assert load_settings({"BETTER_AUTH_SECRET": SECRET}).jwt_algorithms == ("HS256",)
    with pytest.raises(ConfigError):
        load_settings({})


@pytest.mark.parametrize(
    ("bad", "line"),
    [
        ({"BETTER_AUTH_SECRET": "too-short"}, "configuration error: BETTER_AUTH_SECRET must be at least 32 bytes long"),
        ({"WEB_THREADS": "many"}, "configuration error: WEB_THREADS must be a whole number of at least 1, got 'many'"),
        (
            {"WEB_CONCURRENCY": "0"},
            "configuration error: WEB_CONCURRENCY must be a whole number of at least 1, got '0'",
        ),
        ({"PORT": "http"}, "configuration error: PORT must be a whole number of at least 1, got 'http'"),
        (
            {"REQUEST_HEAD_TIMEOUT_SECONDS": "-1"},
            "configuration error: REQUEST_HEAD_TIMEOUT_SECONDS must be more than 0 and at most 600 seconds, got -1",
        ),
    ],
)
def test_gunicorn_with_bad_configuration_exits_with_one_line(bad, line):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "BETTER_AUTH", "JWT_", "WEB_"))}
    env = {**clean, **VALID, "PORT": str(free_port()), **bad}
    result = subprocess.run(
        [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
        env=env,
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.strip() == line


def test_serve_with_bad_configuration_exits_with_one_line():
    result = todo_api("serve", "--port", str(free_port()), env={**VALID, "LOG_FORMAT": "xml"})
    assert result.returncode == 2
    assert result.stderr.strip() == "configuration error: LOG_FORMAT must be json or text, got 'xml'"


# --- todo-api serve: a real process ------------------------------------------------------------


def serve(port: int, env: dict[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    """`todo-api serve` on 127.0.0.1:port, its output (stdout and stderr) into `log`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(SERVE_SETTINGS)}
    return subprocess.Popen(
        [sys.executable, "-m", "todo_api.cli", "serve", "--port", str(port), "--workers", "2"],
        env={**clean, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=PROJECT_ROOT,
    )


SERVE_SETTINGS = ("DATABASE_URL", "BETTER_AUTH", "JWT_", "DB_", "LOG_", "PORT", "HOST", "WEB_", "TODO_API_")


def stop(server: subprocess.Popen[bytes]) -> None:
    server.send_signal(signal.SIGTERM)  # serve passes it on to gunicorn, then stops the embedded database
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def log_events(path: Path) -> list[str]:
    lines = path.read_text().splitlines()
    return [json.loads(line).get("event", "") for line in lines if line.startswith("{")]


def wait_for(condition: Callable[[], bool], server: subprocess.Popen[bytes], log_path: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert server.poll() is None, f"serve exited with {server.returncode}: {log_path.read_text()[-2000:]}"
        assert time.monotonic() < deadline, log_path.read_text()[-2000:]
        time.sleep(0.2)


def ready(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except requests.ConnectionError:
        return False


def test_serve_on_a_port_in_use_exits_at_once_with_one_line_naming_port(tmp_path):
    data = tmp_path / "data"
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        try:  # bounded; one line tells it from gunicorn, which would retry the bind for 5 s with a line each
            result = todo_api("serve", "--port", str(port), env={"TODO_API_DATA_DIR": str(data)}, timeout=60)
        finally:
            if data.exists():  # it started the embedded database after all: stop it
                EmbeddedPostgres(data / "postgres").stop()
    assert result.returncode != 0
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {port} " in lines[0] and f"PORT={port + 1} make run" in lines[0]
    assert "serving" not in result.stdout + result.stderr
    assert not data.exists(), "the embedded database was started"


@pytest.mark.parametrize("port", ["abc", "80 80", "8000.5"])
def test_serve_with_a_port_that_is_not_a_number_exits_with_one_line_naming_port(tmp_path, port):
    data = tmp_path / "data"
    result = todo_api("serve", env={"PORT": port, "TODO_API_DATA_DIR": str(data)}, timeout=30)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"PORT must be a TCP port (1-65535), got {port!r}: e.g. PORT=8001 make run"]
    assert not data.exists(), "the embedded database was started"


def test_serve_gives_the_embedded_database_the_defaults_so_its_log_starts_quiet(tmp_path):
    data, log_path, port = tmp_path / "data", tmp_path / "serve.log", free_port()
    checked = ("db.settings_are_defaults", "db.settings_per_transaction")
    with open(log_path, "wb") as log:
        server = serve(port, {"TODO_API_DATA_DIR": str(data), "LOG_LEVEL": "DEBUG"}, log)
        try:
            # Each of the 2 workers' pools checks its first connection (gunicorn.conf.py opens them at boot).
            wait_for(lambda: sum(e in checked for e in log_events(log_path)) >= 2, server, log_path, 120)
            assert ready(port)
            with psycopg.connect(EmbeddedPostgres(data / "postgres").url()) as conn:
                assert defaults_hold(conn, 5000)
        finally:
            stop(server)
            EmbeddedPostgres(data / "postgres").stop()  # serve has stopped it, unless it failed to
    events = log_events(log_path)
    assert "db.settings_per_transaction" not in events
    assert events.count("db.settings_are_defaults") == 2


def test_serve_leaves_the_settings_of_a_database_url_alone(blank_database, tmp_path):
    log_path, port = tmp_path / "serve.log", free_port()
    with open(log_path, "wb") as log:
        server = serve(port, {"DATABASE_URL": blank_database, "BETTER_AUTH_SECRET": SECRET}, log)
        try:
            wait_for(lambda: ready(port), server, log_path, 60)
        finally:
            stop(server)
    with psycopg.connect(blank_database) as conn:
        settings = conn.execute(
            "SELECT count(*) FROM pg_db_role_setting WHERE setdatabase IN"
            " (SELECT oid FROM pg_database WHERE datname = current_database())"
        ).fetchone()
    assert settings == (0,)
    assert "db.settings_per_transaction" in log_events(log_path)
