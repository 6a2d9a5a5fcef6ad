"""The `todo-api` command: serve, migrate, rollback, set-db-defaults, seed, token, deliver (OPERATIONS.md)."""

from __future__ import annotations

import argparse
import errno
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jwt
import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from .platform import logs
from .platform.config import (
    ConfigError,
    database_url,
    load_settings,
    log_settings,
    statement_timeout_ms,
    webhook_settings,
)
from .platform.db import defaults_hold
from .platform.embedded import EmbeddedPostgres

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_WHEEL_MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"  # installed from a wheel (setup.cfg)
MIGRATIONS_DIR = _WHEEL_MIGRATIONS_DIR if _WHEEL_MIGRATIONS_DIR.is_dir() else PROJECT_ROOT / "migrations"
# The embedded database and the dev secret; TODO_API_DATA_DIR moves them (tests, a second checkout's data).
DATA_DIR = Path(os.environ.get("TODO_API_DATA_DIR") or PROJECT_ROOT / ".data")
DEV_SECRET_FILE = DATA_DIR / "dev-secret"


class CommandError(Exception):
    """A failure to report as one line, without a traceback."""


# --- the database the commands talk to -------------------------------------------------------


def _database_url() -> str:
    """DATABASE_URL (validated), or the embedded development database (started if it is not running)."""
    url = database_url()
    if url:
        return url
    return EmbeddedPostgres(DATA_DIR / "postgres").start().url()


def yoyo_backend(url: str):
    """yoyo's backend on `url`, its connection preparing no statement: psycopg names them _pg3_0,
    _pg3_1, ... on every connection, and behind a pooler in transaction mode they outlive the run on
    the server connection, where the next run met "prepared statement _pg3_0 already exists" (and
    left yoyo's lock held) or could run the statement it found under that name."""
    from yoyo import get_backend

    # yoyo picks its driver from the scheme (psycopg 3 is `postgresql+psycopg`), and its own parsing
    # reads one host:port, so every connection parameter goes in the query string, which yoyo hands
    # to psycopg as it is (several hosts too).
    backend = get_backend("postgresql+psycopg://?" + urlencode(conninfo_to_dict(url)))
    backend.connection.prepare_threshold = None
    return backend


@contextmanager
def _migrations() -> Iterator[tuple[Any, Any]]:
    """yoyo's backend on the commands' database, under yoyo's lock, and the migrations; its
    connection closed afterwards (`todo-api serve` migrates, then serves for hours)."""
    from yoyo import read_migrations

    backend = yoyo_backend(_database_url())
    try:
        with backend.lock():
            yield backend, read_migrations(str(MIGRATIONS_DIR))
    finally:
        backend.connection.close()


def migrate() -> int:
    """Apply pending migrations under yoyo's lock; return how many were applied."""
    with _migrations() as (backend, migrations):
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return len(pending)


def rollback(count: int) -> int:
    """Roll back the latest `count` applied migrations; return how many were rolled back."""
    with _migrations() as (backend, migrations):
        latest = backend.to_rollback(migrations)[:count]
        backend.rollback_migrations(latest)
    return len(latest)


def set_db_defaults() -> tuple[str, bool]:
    """Make DB_STATEMENT_TIMEOUT_MS and TimeZone UTC the defaults of this role in this database, so
    that every new server connection starts with them (behind PgBouncer too) and the service need not
    set them in each transaction (platform/db.py). Returns the database's name, and whether a new connection
    starts with them now (not yet behind a pooler whose server connections are older than this)."""
    timeout_ms = statement_timeout_ms()  # needs no auth settings: it runs before the service is configured
    with psycopg.connect(_database_url(), autocommit=True) as conn:
        database = conn.execute("SELECT current_database()").fetchone()[0]
        alter = "ALTER ROLE CURRENT_USER IN DATABASE {} SET {} = {}"
        for name, value in (("statement_timeout", timeout_ms), ("TimeZone", "UTC")):
            conn.execute(sql.SQL(alter).format(sql.Identifier(database), sql.Identifier(name), sql.Literal(value)))
    with psycopg.connect(_database_url(), autocommit=True) as conn:
        return database, defaults_hold(conn, timeout_ms)


# --- tokens ----------------------------------------------------------------------------------


def _dev_secret(create: bool) -> str | None:
    if DEV_SECRET_FILE.exists():
        return DEV_SECRET_FILE.read_text().strip()
    if not create:
        return None
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    DEV_SECRET_FILE.write_text(secrets.token_urlsafe(48))
    DEV_SECRET_FILE.chmod(0o600)
    return DEV_SECRET_FILE.read_text().strip()


def parse_ttl(text: str) -> timedelta:
    match = re.fullmatch(r"(\d+)([smhd])", text.strip())
    if not match or int(match.group(1)) == 0:
        raise argparse.ArgumentTypeError("use a duration like 90s, 15m, 1h or 7d")
    unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
    return timedelta(**{unit: int(match.group(1))})


def make_token(user_id: str, ttl: timedelta) -> str:
    """An HS256 token for `user_id`, signed with BETTER_AUTH_SECRET (or the dev secret)."""
    development = not os.environ.get("DATABASE_URL")
    secret = os.environ.get("BETTER_AUTH_SECRET") or _dev_secret(create=development)
    if not secret:
        raise CommandError(
            "configuration error: BETTER_AUTH_SECRET is not set (and no .data/dev-secret exists: run make run)"
        )
    env = {**os.environ, "BETTER_AUTH_SECRET": secret}
    settings = load_settings(env)
    now = datetime.now(UTC)
    claims = {"sub": user_id, "iat": now, "exp": now + ttl}
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode(claims, secret, algorithm="HS256")


# --- seed ------------------------------------------------------------------------------------

_VERBS = ["Buy", "Call", "Email", "Fix", "Plan", "Review", "Write", "Book", "Pay", "Clean", "Read", "Prepare"]
_OBJECTS = [
    "milk",
    "the plumber",
    "quarterly report",
    "dentist appointment",
    "birthday gift",
    "car insurance",
    "garden fence",
    "slides for Monday",
    "library books",
    "tax return",
    "team offsite",
    "bike tyre",
]
_TAGS = ["home", "work", "errands", "health", "finance", "family", "urgent", "someday"]


def seed(users: int, tasks_per_user: int) -> list[str]:
    """Insert realistic tasks for user-1 … user-N through the insert_task statement, each in the
    user's inbox after the tasks already there."""
    from .platform import positions
    from .platform.db import Database
    from .tasks import tree

    database = Database(_database_url(), min_size=1, max_size=1, timeout=30, statement_timeout_ms=60_000)
    rng = random.Random(42)
    now = datetime.now(UTC)
    user_ids = [f"user-{n}" for n in range(1, users + 1)]
    try:
        with database.transaction() as run:
            for user_id in user_ids:
                position = tree.last_position(run, user_id, None, None)
                for _ in range(tasks_per_user):
                    completed = rng.random() < 0.3
                    run.execute(
                        "insert_task",
                        {
                            "user_id": user_id,
                            "title": f"{rng.choice(_VERBS)} {rng.choice(_OBJECTS)}",
                            "description": rng.choice([None, "", "Remember to check the details first."]),
                            "completed": completed,
                            "priority": rng.choice(["none", "none", "low", "medium", "high"]),
                            "tags": rng.sample(_TAGS, rng.randint(0, 3)),
                            "due_at": rng.choice([None, now + timedelta(hours=rng.randint(-48, 24 * 30))]),
                            "recurrence": None,
                            "timezone": "UTC",
                            "remind_at": None,
                            "list_id": None,
                            "parent_id": None,
                            "position": position,
                        },
                    )
                    position = positions.between(position, None)
    finally:
        database.close()
    return user_ids


# --- serve -----------------------------------------------------------------------------------


def check_port(host: str, port: int) -> None:
    """Bind HOST:PORT as gunicorn will (SO_REUSEADDR), and let go: a port in use is one line now,
    rather than a server that says it serves and then retries the bind for five seconds."""
    other = port + 1 if port < 65535 else port - 1
    pick = f"pick another port: PORT={other} make run (or todo-api serve --port {other})"
    if not 0 < port < 65536:
        raise CommandError(f"port {port} is not a TCP port (1-65535): {pick}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise CommandError(f"port {port} on {host} is already in use (another server?); {pick}") from None
            raise CommandError(f"cannot listen on {host}:{port} ({error.strerror}); {pick}") from None


def _port(given: int | None) -> int:
    """--port, else PORT, else 8000; a PORT that is not a number is one line, not a traceback."""
    if given is not None:
        return given
    raw = os.environ.get("PORT", "").strip() or "8000"
    try:
        return int(raw)
    except ValueError:
        raise CommandError(f"PORT must be a TCP port (1-65535), got {raw!r}: e.g. PORT=8001 make run") from None


def serve(host: str, port: int, workers: int | None, with_deliver: bool = False) -> int:
    """Run gunicorn; with DATABASE_URL unset, on the embedded database (migrated first, and given the
    settings `set-db-defaults` gives, so the service runs on the fast path from the start). With
    `with_deliver` (make run), `todo-api deliver` runs beside it on the same database and stops with it."""
    check_port(host, port)  # before anything starts or says it serves
    env = dict(os.environ)
    embedded = None
    if not env.get("DATABASE_URL", "").strip():
        embedded = EmbeddedPostgres(DATA_DIR / "postgres").start()
        env["DATABASE_URL"] = embedded.url()
        if not (env.get("BETTER_AUTH_SECRET") or env.get("BETTER_AUTH_URL") or env.get("JWT_JWKS_URL")):
            env["BETTER_AUTH_SECRET"] = _dev_secret(create=True) or ""
        os.environ["DATABASE_URL"] = env["DATABASE_URL"]
        applied = migrate()
        set_db_defaults()  # the project's own database: a DATABASE_URL's is left to its operator
        print(
            f"embedded PostgreSQL on {embedded.url()} (data in {embedded.data_dir}); {applied} migration(s) applied",
            file=sys.stderr,
        )
    load_settings(env)  # one clear line now rather than a worker that fails to boot
    env["PORT"] = str(port)
    env["HOST"] = host
    if workers:
        env["WEB_CONCURRENCY"] = str(workers)
    hint = "  (token for curl: .venv/bin/todo-api token alice)" if env.get("BETTER_AUTH_SECRET") else ""
    print(f"serving on http://{host}:{port}{hint}", file=sys.stderr)
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "-c",
        str(PROJECT_ROOT / "gunicorn.conf.py"),
        "--chdir",
        str(PROJECT_ROOT),
        "wsgi:app",
    ]
    server = subprocess.Popen(command, env=env)
    children = [server]
    if with_deliver:
        children.append(subprocess.Popen([sys.executable, "-m", "todo_api.cli", "deliver"], env=env))

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    try:
        return server.wait()
    finally:
        for child in children[1:]:  # the delivery process ends with the server (it exits 0 on SIGTERM)
            child.terminate()
            child.wait(timeout=webhook_settings(env).timeout_seconds + 10)
        if embedded is not None:
            time.sleep(0.1)
            embedded.stop()


# --- deliver ---------------------------------------------------------------------------------


def deliver() -> int:
    """Run the webhook delivery process until SIGTERM or SIGINT; then finish or hand back the attempts
    in flight (within WEBHOOK_TIMEOUT_SECONDS + 5 s) and return 0."""
    import threading

    from .webhooks.deliver import Deliverer, open_database

    settings = webhook_settings()
    logs.configure_logging(*log_settings())
    database = open_database(_database_url(), settings, statement_timeout_ms())
    stop = threading.Event()

    def request_stop(_signum: int, _frame: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    print(f"delivering webhooks ({settings.concurrency} at once)", file=sys.stderr)
    try:
        Deliverer(database, settings).run(stop)
    finally:
        database.close()
    return 0


# --- the command line ------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="todo-api", description="The todo-api service and its tools.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve_cmd = commands.add_parser("serve", help="run the API under gunicorn")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=None, help="default: PORT or 8000")
    serve_cmd.add_argument("--workers", type=int, default=None, help="default: WEB_CONCURRENCY or 2 x cores + 1")
    serve_cmd.add_argument("--deliver", action="store_true", help="also run `todo-api deliver` beside it (make run)")

    commands.add_parser("migrate", help="apply pending migrations")
    rollback_cmd = commands.add_parser("rollback", help="roll back the latest migrations")
    rollback_cmd.add_argument("--count", type=int, default=1)
    commands.add_parser(
        "set-db-defaults",
        help="make DB_STATEMENT_TIMEOUT_MS and UTC this role's defaults in this database (saves work per request)",
    )

    seed_cmd = commands.add_parser("seed", help="fill the database with sample tasks and print tokens")
    seed_cmd.add_argument("--users", type=int, default=3)
    seed_cmd.add_argument("--tasks", type=int, default=20)

    commands.add_parser("deliver", help="send webhook deliveries and due reminders until stopped")

    token_cmd = commands.add_parser("token", help="print an HS256 token for a user")
    token_cmd.add_argument("user_id")
    token_cmd.add_argument("--ttl", type=parse_ttl, default=timedelta(hours=1), help="e.g. 15m, 1h, 7d (default 1h)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args.host, _port(args.port), args.workers, args.deliver)
        if args.command == "deliver":
            return deliver()
        if args.command == "migrate":
            print(f"{migrate()} migration(s) applied")
        elif args.command == "rollback":
            print(f"{rollback(args.count)} migration(s) rolled back")
        elif args.command == "set-db-defaults":
            database, holding = set_db_defaults()
            print(f"statement_timeout and TimeZone are now this role's defaults in database {database}")
            if not holding:
                print(
                    "but a new connection does not start with them yet: behind PgBouncer, reconnect its server "
                    "connections (RECONNECT in its admin console, or restart it); otherwise check that neither "
                    "DATABASE_URL's options nor PGOPTIONS set statement_timeout or TimeZone. Then restart the "
                    "service.",
                    file=sys.stderr,
                )
        elif args.command == "seed":
            for user_id in seed(args.users, args.tasks):
                print(f"{user_id}\t{make_token(user_id, timedelta(hours=24))}")
        elif args.command == "token":
            print(make_token(args.user_id, args.ttl))
    except (ConfigError, CommandError, RuntimeError) as error:
        print(error, file=sys.stderr)
        return 2
    except psycopg.OperationalError as error:
        print(f"database error: {str(error).strip().splitlines()[0]}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
