"""Fixtures: a real, throwaway PostgreSQL (embedded unless TEST_DATABASE_URL is given), migrated
once per session (and rolled back and re-applied once, which exercises the rollback files), the
app on it, and per-test users so tests never see each other's tasks."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import jwt
import psycopg
import pytest
from psycopg.rows import dict_row

from todo_api import create_app
from todo_api.cli import MIGRATIONS_DIR, PROJECT_ROOT, yoyo_backend
from todo_api.platform.config import Settings
from todo_api.platform.embedded import EmbeddedPostgres

SECRET = "test-secret-that-is-long-enough-0123456789"
# make test-citus sets it to error in TEST_DATABASE_URL's options: a statement of the service that would
# run on more than one shard fails (docs/scaling.md).
SINGLE_SHARD_GUARD = "citus.multi_task_query_log_level"


def unguarded(url: str) -> str:
    """`url` without the single-shard guard, for migrations and a test's own connections, which may
    look across users."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    if SINGLE_SHARD_GUARD not in query.get("options", ""):
        return url
    query["options"] += f" -c {SINGLE_SHARD_GUARD}=off"
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


# tests/test_pgbouncer.py runs the suite again with this set, its database behind PgBouncer.
INSIDE_PGBOUNCER = bool(os.environ.get("TODO_API_INSIDE_PGBOUNCER_RUN"))

direct_and_preparing = pytest.mark.skipif(
    os.environ.get("DB_PREPARED_STATEMENTS") == "false" or INSIDE_PGBOUNCER,
    reason="counts the statements prepared on one server connection: needs a direct connection that prepares",
)


def migrate_all(url: str) -> None:
    from yoyo import read_migrations

    backend = yoyo_backend(unguarded(url))
    migrations = read_migrations(str(MIGRATIONS_DIR))
    with backend.lock():
        backend.apply_migrations(backend.to_apply(migrations))
        backend.rollback_migrations(backend.to_rollback(migrations))
        backend.apply_migrations(backend.to_apply(migrations))
    backend.connection.close()


def sibling_url(url: str, database: str) -> str:
    """The URL of another database on the same server (through the same PgBouncer, if any)."""
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres | None]:
    """The embedded server of this session (None when TEST_DATABASE_URL names a server)."""
    if os.environ.get("TEST_DATABASE_URL"):
        yield None
        return
    server = EmbeddedPostgres(tmp_path_factory.mktemp("postgres"), durable=False).start()
    yield server
    server.stop(mode="immediate")


@pytest.fixture(scope="session")
def database_url(postgres: EmbeddedPostgres | None) -> str:
    url = os.environ.get("TEST_DATABASE_URL") or postgres.url()  # type: ignore[union-attr]
    migrate_all(url)
    return url


@pytest.fixture(scope="session")
def citus(database_url: str) -> bool:
    """Whether the test database is a Citus coordinator (make test-citus)."""
    with connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM pg_extension WHERE extname = 'citus'").fetchone()[0] == 1


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "better_auth_secret": SECRET,
        "db_pool_min_size": 1,
        "db_pool_max_size": 4,
        "db_pool_timeout": 2.0,
        "log_format": "json",
        # DB_PREPARED_STATEMENTS=false runs the suite through PgBouncer < 1.21 (transaction mode)
        "db_prepared_statements": os.environ.get("DB_PREPARED_STATEMENTS", "true") != "false",
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture(scope="session")
def app(settings: Settings):
    application = create_app(settings, configure_logs=False)
    application.testing = True
    yield application
    application.extensions["todo_api.db"].close()


@pytest.fixture
def client(app):
    return app.test_client()


def connect(url: str, **kwargs: Any) -> psycopg.Connection[Any]:
    """A test's own connection. It never prepares statements, so it also works through PgBouncer
    in transaction mode (where a prepared name can clash with another client's), and it may look
    across users on Citus."""
    return psycopg.connect(unguarded(url), prepare_threshold=None, **kwargs)


@pytest.fixture
def conn(database_url: str) -> Iterator[psycopg.Connection[dict[str, Any]]]:
    """A direct connection for checking what the database holds after a request."""
    with connect(database_url, row_factory=dict_row, autocommit=True) as connection:
        yield connection


def make_token(user_id: Any, *, secret: str = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    now = datetime.now(UTC)
    payload = {"sub": user_id, "iat": now, "exp": now + timedelta(minutes=15), **claims}
    payload = {k: v for k, v in payload.items() if v is not None}
    return jwt.encode(payload, secret, algorithm=algorithm)


class Api:
    """A test client speaking for one user: paths are relative to /api/{user_id}/tasks."""

    def __init__(self, client, user_id: str):
        self.client = client
        self.user_id = user_id
        self.token = make_token(user_id)
        self.base = f"/api/{user_id}/tasks"

    def request(self, method: str, path: str = "", *, headers: dict[str, str] | None = None, **kwargs: Any):
        all_headers = {"Authorization": f"Bearer {self.token}", **(headers or {})}
        return self.client.open(self.base + path, method=method, headers=all_headers, **kwargs)

    def get(self, path: str = "", **kwargs: Any):
        return self.request("GET", path, **kwargs)

    def post(self, path: str = "", **kwargs: Any):
        return self.request("POST", path, **kwargs)

    def put(self, path: str = "", **kwargs: Any):
        return self.request("PUT", path, **kwargs)

    def patch(self, path: str = "", **kwargs: Any):
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str = "", **kwargs: Any):
        return self.request("DELETE", path, **kwargs)

    def create(self, **fields: Any) -> dict[str, Any]:
        response = self.post(json={"title": "A task", **fields})
        assert response.status_code == 201, response.json
        return response.json["data"]


@pytest.fixture
def make_api(client) -> Callable[[], Api]:
    def factory() -> Api:
        return Api(client, f"user-{uuid.uuid4().hex[:12]}")

    return factory


@pytest.fixture
def api(make_api) -> Api:
    return make_api()


@pytest.fixture
def other_api(make_api) -> Api:
    return make_api()


def assert_error(response, status: int, code: str) -> dict[str, Any]:
    """The response is the error envelope of API.md §2 with this status and code."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.json
    assert body["data"] is None
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], dict)
    assert body["meta"]["request_id"] == response.headers["X-Request-ID"]
    return body["error"]


def task_row(conn, task_id: int) -> dict[str, Any] | None:
    return conn.execute("SELECT * FROM tasks WHERE id = %s", [task_id]).fetchone()


# --- real processes on loopback -------------------------------------------------------------


def read_answer(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read a raw answer until the server closes the connection: status, headers (lower-case), body."""
    answer = b""
    while chunk := sock.recv(65536):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in header_lines)}
    return int(status_line.split()[1]), headers, body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Gunicorn:
    """The service under a real gunicorn on 127.0.0.1, configured by environment like production."""

    def __init__(self, env: dict[str, str], workers: int = 2):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(env.pop("LOG_PATH", "/dev/null"))
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "BETTER_AUTH", "JWT_"))}
        full_env.update(env, PORT=str(self.port), HOST="127.0.0.1", WEB_CONCURRENCY=str(workers))
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=PROJECT_ROOT,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 20) -> None:
        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"gunicorn exited with {self.process.returncode}: {self.log_path.read_text()[-2000:]}"
                )
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except requests.RequestException:  # not listening yet, or too busy to answer within the second
                pass
            time.sleep(0.1)
        raise RuntimeError("gunicorn did not become ready")

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


@pytest.fixture
def start_gunicorn(tmp_path: Path) -> Iterator[Callable[..., Gunicorn]]:
    servers: list[Gunicorn] = []

    def start(env: dict[str, str], workers: int = 2) -> Gunicorn:
        server = Gunicorn({"LOG_PATH": str(tmp_path / f"gunicorn-{len(servers)}.log"), **env}, workers)
        servers.append(server)
        server.wait_ready()
        return server

    yield start
    for server in servers:
        server.stop()
