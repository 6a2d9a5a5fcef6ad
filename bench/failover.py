"""`make failover`: the service on a real HA stack through four faults, checked, with figures.

    .venv/bin/python bench/failover.py [--runs N] [--scenario kill-primary|switchover|kill-standby|lose-standby ...]

A pg_auto_failover 2.0 formation on PostgreSQL 15 (Debian's postgresql-15-auto-failover): a monitor,
a primary and a synchronous standby on 127.0.0.1, run by an unprivileged user (`postgres` when this
runs as root: pg_autoctl refuses root). The service runs under a real gunicorn on 127.0.0.1 with
DATABASE_URL naming both nodes and `target_session_attrs=read-write`, migrated by `todo-api migrate`.
In each scenario CLIENTS clients create tasks, each with its own Idempotency-Key (the task's title),
and retry a 503 with the same key after RETRY_DELAY (shorter than Retry-After, to time the refused
window finely), while

- kill-primary: the primary's postmaster gets SIGKILL (its keeper restarts it; the monitor fails over),
- switchover: `pg_autoctl perform switchover`,
- kill-standby: the standby's postmaster gets SIGKILL (its keeper restarts it),
- lose-standby: the standby's pg_autoctl and postmaster get SIGKILL: the primary's commits wait for
  it until the monitor lets the primary go on alone; then it is started again and rejoins.

Each run checks that every 201 is in the database afterwards (nothing acknowledged lost), that each
Idempotency-Key has one row (no duplicates), that every answer was a 201 or a 503 (no 500, no
timeout), that none took longer than DB_STATEMENT_TIMEOUT_MS + DB_POOL_TIMEOUT + 1 s, and that writes
are answered 201 again once the formation has settled, with no restart of the service. It prints
the refused window (first to last 503, from the fault), the database faults behind the 503s (from
the service's log), when each node was down, read-write or read-only, and what the service's
/metrics showed meanwhile (scraped every SCRAPE_INTERVAL, as Prometheus would: the 503s and the
database errors by kind that each second added, and the pool's peaks); it exits 1 if a check
failed. Bounded: every wait has a deadline, and the load stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import psycopg
import requests
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
PG_BIN = Path("/usr/lib/postgresql/15/bin")
SECRET = "failover-secret-that-is-long-enough-0123456789"
STATEMENT_TIMEOUT_MS = 2000
POOL_TIMEOUT = 2.0
LIMIT = STATEMENT_TIMEOUT_MS / 1000 + POOL_TIMEOUT + 1  # the slowest answer allowed, in seconds
CLIENTS = 4
RETRY_DELAY = 0.1
WARM_UP = 2.0  # seconds of load before the fault
SETTLE = 3.0  # seconds of load after the formation has settled, every write answered 201
DEADLINE = 120.0  # for the formation to settle after a fault
SCRAPE_INTERVAL = 0.5  # seconds between two scrapes of /metrics during a scenario
SCENARIOS = ("kill-primary", "switchover", "kill-standby", "lose-standby")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(interval)
    raise RuntimeError(f"{what}: not within {timeout:.0f} s")


class Formation:
    """A pg_auto_failover monitor and two data nodes under `workdir`, run by `user` (None: as this process)."""

    NODES = ("node1", "node2")

    def __init__(self, workdir: Path, user: str | None):
        self.workdir = workdir
        self.user = user
        self.role = user or getpass.getuser()  # the clusters' superuser: initdb names it after the OS user
        self.monitor_port = free_port()
        self.ports = {name: free_port() for name in self.NODES}
        self.env = {
            **os.environ,
            "PATH": f"{PG_BIN}:{os.environ['PATH']}",
            "HOME": str(workdir),
            "XDG_CONFIG_HOME": str(workdir / "config"),
            "XDG_DATA_HOME": str(workdir / "share"),
            "XDG_RUNTIME_DIR": str(workdir / "run"),
        }
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def url(self, *names: str) -> str:
        hosts = ",".join(f"127.0.0.1:{self.ports[name]}" for name in names or self.NODES)
        return f"postgresql://{self.role}@{hosts}/todo?target_session_attrs=read-write&connect_timeout=2"

    def _autoctl(self, *args: str) -> None:
        result = subprocess.run(
            ["pg_autoctl", *args],
            user=self.user,
            env=self.env,
            cwd=self.workdir,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if result.returncode != 0:
            raise RuntimeError(f"pg_autoctl {' '.join(args[:2])} failed:\n{result.stderr[-3000:]}")

    def _run(self, name: str) -> None:
        with open(self.workdir / f"{name}.log", "ab") as log:
            self.processes[name] = subprocess.Popen(
                ["pg_autoctl", "run", "--pgdata", str(self.workdir / name)],
                user=self.user,
                env=self.env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def create(self) -> None:
        (self.workdir / "run").mkdir(mode=0o700)
        if self.user:
            shutil.chown(self.workdir / "run", self.user)
        common = ["--hostname", "127.0.0.1", "--auth", "trust", "--no-ssl"]
        self._autoctl(
            "create", "monitor", "--pgdata", str(self.workdir / "monitor"), "--pgport", str(self.monitor_port), *common
        )
        self._run("monitor")
        wait_for(lambda: self._monitor_nodes() is not None, 60, "the monitor starts")
        monitor = f"postgres://autoctl_node@127.0.0.1:{self.monitor_port}/pg_auto_failover?sslmode=disable"
        for name in self.NODES:
            self._autoctl(
                "create", "postgres", "--pgdata", str(self.workdir / name), "--pgport", str(self.ports[name]),
                "--listen", "127.0.0.1", "--name", name, "--dbname", "todo", "--monitor", monitor, *common,
            )  # fmt: skip
            self._run(name)
        self.wait_settled(DEADLINE)

    def _monitor_nodes(self) -> list[tuple[str, str, str]] | None:
        """(name, reported state, assigned state) of each node, None while the monitor is unreachable."""
        try:
            with psycopg.connect(
                host="127.0.0.1", port=self.monitor_port, user=self.role, dbname="pg_auto_failover", connect_timeout=2
            ) as conn:
                return conn.execute("SELECT nodename, reportedstate, goalstate FROM pgautofailover.node").fetchall()
        except psycopg.Error:
            return None

    def settled(self) -> tuple[str, str] | None:
        """(primary, standby) while each node is where the monitor wants it, in those two roles, and
        the primary has its synchronous standby streaming."""
        nodes = self._monitor_nodes() or []
        roles = {state: name for name, state, goal in nodes if state == goal}
        if len(nodes) != 2 or set(roles) != {"primary", "secondary"}:
            return None
        try:
            with psycopg.connect(self.url(roles["primary"]), user=self.role) as conn:
                streaming = conn.execute(
                    "SELECT count(*) FROM pg_stat_replication"
                    " WHERE state = 'streaming' AND sync_state IN ('sync', 'quorum')"
                ).fetchone()[0]
        except psycopg.Error:
            return None
        return (roles["primary"], roles["secondary"]) if streaming else None

    def wait_settled(self, timeout: float, unless=lambda primary, standby: False) -> tuple[str, str]:
        """Wait until settled, in a state that `unless(primary, standby)` does not rule out."""

        def settled_as_wanted() -> tuple[str, str] | None:
            roles = self.settled()
            return roles if roles and not unless(*roles) else None

        return wait_for(settled_as_wanted, timeout, "the formation settles with a primary and its standby")

    def postmaster_pid(self, name: str) -> int | None:
        try:
            return int((self.workdir / name / "postmaster.pid").read_text().split()[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None

    def kill_postmaster(self, name: str) -> None:
        os.kill(self.postmaster_pid(name), signal.SIGKILL)  # type: ignore[arg-type]

    def kill_node(self, name: str) -> None:
        """SIGKILL for the node's pg_autoctl and its PostgreSQL: nothing restarts it until `restart`."""
        pid = self.postmaster_pid(name)
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        self.processes[name].wait()
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def restart(self, name: str) -> None:
        self._run(name)

    def primary_alone(self) -> bool:
        """Whether the monitor has let the primary go on without its standby (synchronous_standby_names '')."""
        return any(state == goal == "wait_primary" for _, state, goal in self._monitor_nodes() or [])

    def switchover(self) -> None:
        self._autoctl("perform", "switchover", "--pgdata", str(self.workdir / "monitor"))

    def stop(self) -> None:
        """Each pg_autoctl stops its PostgreSQL on SIGTERM; whatever is still up then is killed."""
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for name in ("monitor", *self.NODES):
            pid_file = self.workdir / name / "postmaster.pid"
            if pid_file.exists():
                subprocess.run(
                    [str(PG_BIN / "pg_ctl"), "-D", str(self.workdir / name), "-m", "immediate", "stop"],
                    user=self.user,
                    capture_output=True,
                    timeout=30,
                )


class Timeline(threading.Thread):
    """Each node as a client sees it, every 0.1 s: down, read-write or read-only; each change noted."""

    def __init__(self, formation: Formation):
        super().__init__(daemon=True)
        self.formation = formation
        self.changes: list[tuple[float, str, str]] = []
        self.done = threading.Event()

    def _probe(self, port: int) -> str:
        try:
            with psycopg.connect(
                host="127.0.0.1", port=port, user=self.formation.role, dbname="todo", connect_timeout=1, autocommit=True
            ) as conn:
                return "read-only" if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0] else "read-write"
        except psycopg.Error:
            return "down"

    def run(self) -> None:
        last: dict[str, str] = {}
        while not self.done.wait(0.1):
            for name, port in self.formation.ports.items():
                state = self._probe(port)
                if last.get(name) != state:
                    self.changes.append((time.monotonic(), name, state))
                    last[name] = state

    def since(self, fault: float) -> str:
        """The changes after the fault (and each node's state at it), as `node1: down +0.0, ...`."""
        lines = []
        for name in self.formation.NODES:
            mine = [(at, state) for at, node, state in self.changes if node == name]
            before = [state for at, state in mine if at < fault][-1:]
            after = [f"{state} +{at - fault:.1f}" for at, state in mine if at >= fault]
            lines.append(f"{name}: " + ", ".join([*(f"{state} before" for state in before), *after]))
        return " | ".join(lines)


class MetricsWatch(threading.Thread):
    """The service's /metrics every SCRAPE_INTERVAL: the 503s, the database errors by kind and the
    pool's gauges, as an operator's Prometheus would see them during the fault."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.scrapes: list[tuple[float, Counter[str]]] = []
        self.done = threading.Event()

    def _scrape(self) -> Counter[str]:
        figures: Counter[str] = Counter()
        text = requests.get(f"{self.url}/metrics", timeout=2).text
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "todo_api_http_requests_total" and sample.labels["status"] == "503":
                    figures["503"] += sample.value
                elif sample.name == "todo_api_db_errors_total":
                    figures[sample.labels["kind"]] += sample.value
                elif sample.name.startswith("todo_api_db_pool_"):
                    figures[sample.name.removeprefix("todo_api_")] = sample.value  # db_pool_size, ...
        return figures

    def run(self) -> None:
        while True:
            with contextlib.suppress(requests.RequestException):  # a scrape refused is a gap, not an error
                self.scrapes.append((time.monotonic(), self._scrape()))
            if self.done.wait(SCRAPE_INTERVAL):
                return

    def since(self, fault: float) -> str:
        """What the counters gained in each second from the fault on (seconds that gained nothing are
        left out), and the pool gauges' peaks."""
        before = [figures for at, figures in self.scrapes if at < fault][-1:]
        if not before:
            return "no scrape before the fault"
        previous, seconds = before[0], {}
        for at, figures in self.scrapes:
            if at < fault:
                continue
            second = int(at - fault)
            gained = {k: figures[k] - previous[k] for k in figures if not k.startswith("db_pool_")}
            for kind, count in gained.items():
                if count:
                    seconds.setdefault(second, Counter())[kind] += count
            previous = figures
        steps = " | ".join(
            f"+{second} s: " + ", ".join(f"{kind} +{count:.0f}" for kind, count in gained.most_common())
            for second, gained in sorted(seconds.items())
        )
        peaks = ", ".join(
            f"{gauge} max {max(figures[gauge] for _, figures in self.scrapes):.0f}"
            for gauge in ("db_pool_size", "db_pool_in_use", "db_pool_waiting")
        )
        return f"{len(self.scrapes)} scrapes; {steps or 'no 503 and no database error'}; {peaks}"


@dataclass
class Answer:
    key: str
    sent: float
    answered: float
    status: int | str  # the HTTP status, or what went wrong instead of an answer
    task_id: int | None = None


@dataclass
class Client:
    """Creates tasks one after another, each with its own Idempotency-Key, retrying a 503 with it."""

    base_url: str
    user_id: str
    stop: threading.Event
    answers: list[Answer] = field(default_factory=list)

    def run(self) -> None:
        token = jwt.encode(
            {"sub": self.user_id, "exp": datetime.now(UTC) + timedelta(hours=1)}, SECRET, algorithm="HS256"
        )
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        number = 0
        while not self.stop.is_set():
            key = f"{self.user_id}-{number}"
            number += 1
            give_up = float("inf")
            while self._create(session, key).status == 503:
                if self.stop.is_set():  # finish the write in hand, within a bound
                    give_up = min(give_up, time.monotonic() + DEADLINE)
                if time.monotonic() > give_up:
                    break
                time.sleep(RETRY_DELAY)

    def _create(self, session: requests.Session, key: str) -> Answer:
        sent = time.monotonic()
        try:
            response = session.post(
                f"{self.base_url}/api/{self.user_id}/tasks",
                json={"title": key},
                headers={"Idempotency-Key": key},
                timeout=LIMIT + 10,
            )
            status: int | str = response.status_code
            task_id = response.json()["data"]["id"] if status == 201 else None
        except requests.RequestException as error:
            status, task_id = type(error).__name__, None
        answer = Answer(key, sent, time.monotonic(), status, task_id)
        self.answers.append(answer)
        return answer


class Service:
    """The service under gunicorn on 127.0.0.1, as production runs it."""

    def __init__(self, database_url: str, log_path: Path):
        self.log_path = log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "BETTER_AUTH_SECRET": SECRET,
            "DB_STATEMENT_TIMEOUT_MS": str(STATEMENT_TIMEOUT_MS),
            "DB_POOL_TIMEOUT": str(POOL_TIMEOUT),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "2",
            "WEB_THREADS": str(CLIENTS),  # a thread for every client in either worker: no queueing for one
        }
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def ready() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}: see {log_path}")
            try:
                return requests.get(self.url + "/readyz", timeout=2).status_code == 200
            except requests.RequestException:
                return False

        wait_for(ready, 30, "the service answers /readyz")

    def refusals(self, since: int) -> tuple[int, str]:
        """The log's size, and the 503s' database faults by kind (its JSON lines) from offset `since` on."""
        with open(self.log_path, "rb") as log:
            log.seek(since)
            lines = log.read()
        kinds = Counter()
        for line in lines.splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if record.get("event") == "db.unavailable":
                    kinds[record["error_kind"]] += 1
        return since + len(lines), ", ".join(f"{kind} {count}" for kind, count in kinds.most_common()) or "none"

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@dataclass
class Outcome:
    scenario: str
    run: int
    answers: list[Answer]
    fault: float
    settled: float
    primary: str  # once settled
    lost: list[str]
    duplicates: list[str]
    timeline: str
    refusals: str
    metrics: str

    @property
    def failures(self) -> list[str]:
        other = Counter(str(a.status) for a in self.answers if a.status not in (201, 503))
        slowest = max(a.answered - a.sent for a in self.answers)
        tail = [a for a in self.answers if a.sent >= self.answers[-1].answered - SETTLE + 0.5]
        problems = []
        if self.lost:
            problems.append(f"{len(self.lost)} acknowledged writes missing, e.g. {self.lost[:3]}")
        if self.duplicates:
            problems.append(f"{len(self.duplicates)} keys with more than one row, e.g. {self.duplicates[:3]}")
        if other:
            problems.append(f"answers other than 201 and 503: {dict(other)}")
        if slowest > LIMIT:
            problems.append(f"an answer took {slowest:.2f} s (limit {LIMIT:.1f} s)")
        if not tail or any(a.status != 201 for a in tail):
            problems.append("writes were not all answered 201 after the formation settled")
        return problems

    def report(self) -> str:
        acknowledged = sum(a.status == 201 for a in self.answers)
        refused = [a for a in self.answers if a.status == 503]
        slowest = max(a.answered - a.sent for a in self.answers)
        window = "none"
        if refused:
            first, last = refused[0].answered - self.fault, max(a.answered for a in refused) - self.fault
            window = f"+{first:.2f} … +{last:.2f} s ({last - first:.2f} s)"
        verdict = "ok" if not self.failures else "FAILED: " + "; ".join(self.failures)
        return (
            f"{self.scenario:<12} run {self.run}: {len(self.answers)} requests, {acknowledged} acknowledged, "
            f"{len(refused)} refused (503); lost {len(self.lost)}, duplicates {len(self.duplicates)}; "
            f"slowest {slowest:.2f} s (limit {LIMIT:.1f} s); refused {window}; "
            f"settled +{self.settled - self.fault:.1f} s, primary {self.primary}; {verdict}\n    {self.timeline}\n"
            f"    503s by database fault: {self.refusals}\n"
            f"    /metrics, what each second from the fault added: {self.metrics}"
        )


def run_scenario(formation: Formation, service: Service, scenario: str, run: int) -> Outcome:
    primary, standby = formation.wait_settled(DEADLINE)
    log_offset, _ = service.refusals(0)
    timeline = Timeline(formation)
    timeline.start()
    watch = MetricsWatch(service.url)
    watch.start()
    stop = threading.Event()
    clients = [Client(service.url, f"{scenario}-{run}-client{n}-{time.time_ns()}", stop) for n in range(CLIENTS)]
    threads = [threading.Thread(target=client.run, daemon=True) for client in clients]
    for thread in threads:
        thread.start()
    time.sleep(WARM_UP)

    fault = time.monotonic()
    if scenario == "switchover":
        formation.switchover()
        roles = formation.wait_settled(DEADLINE, unless=lambda new_primary, _: new_primary == primary)
    elif scenario == "lose-standby":
        formation.kill_node(standby)
        wait_for(formation.primary_alone, DEADLINE, "the monitor lets the primary go on alone")
        time.sleep(SETTLE)  # writes go on without the standby
        formation.restart(standby)
        roles = formation.wait_settled(DEADLINE)
    else:
        node = primary if scenario == "kill-primary" else standby
        killed = formation.postmaster_pid(node)
        formation.kill_postmaster(node)
        # settled again once the killed node runs anew (its keeper restarts it, as a primary again or,
        # after a failover, as the new primary's standby)
        roles = formation.wait_settled(DEADLINE, unless=lambda *_: formation.postmaster_pid(node) in (None, killed))
    settled = time.monotonic()
    time.sleep(SETTLE)
    stop.set()
    for thread in threads:
        thread.join(DEADLINE + LIMIT + 10)
    timeline.done.set()
    timeline.join()
    watch.done.set()
    watch.join()

    answers = sorted((a for client in clients for a in client.answers), key=lambda a: a.sent)
    acknowledged = {a.key: a.task_id for a in answers if a.status == 201}
    with psycopg.connect(formation.url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id, title FROM tasks WHERE user_id = ANY(%s)", [[client.user_id for client in clients]]
        ).fetchall()
    titles = dict(rows)
    lost = [key for key, task_id in acknowledged.items() if titles.get(task_id) != key]
    duplicates = [title for title, count in Counter(titles.values()).items() if count > 1]
    _, refusals = service.refusals(log_offset)
    return Outcome(
        scenario,
        run,
        answers,
        fault,
        settled,
        roles[0],
        lost,
        duplicates,
        timeline.since(fault),
        refusals,
        watch.since(fault),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1, help="runs of each scenario")
    parser.add_argument("--scenario", action="append", choices=SCENARIOS, help="default: all three, in turn")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, data)")
    args = parser.parse_args()
    if shutil.which("pg_autoctl") is None or not (PG_BIN / "pg_ctl").exists():
        print("make failover needs pg_auto_failover on PostgreSQL 15: apt-get install postgresql-15-auto-failover")
        return 2
    user = "postgres" if os.geteuid() == 0 else None  # pg_autoctl refuses to run as root
    workdir = Path(tempfile.mkdtemp(prefix="todo-failover-"))
    if user:
        shutil.chown(workdir, user)
    started = time.monotonic()
    formation = Formation(workdir, user)
    service = None
    outcomes: list[Outcome] = []
    try:
        formation.create()
        print(f"formation: monitor and 2 nodes (PostgreSQL 15) up in {time.monotonic() - started:.0f} s; {workdir}")
        url = formation.url()
        migrated = subprocess.run(
            [sys.executable, "-m", "todo_api.cli", "migrate"],
            env={**os.environ, "DATABASE_URL": url},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        print(f"todo-api migrate on {url}: {(migrated.stdout + migrated.stderr).strip()}")
        if migrated.returncode != 0:
            return 1
        service = Service(url, workdir / "service.log")
        for run in range(1, args.runs + 1):
            for scenario in args.scenario or SCENARIOS:
                outcome = run_scenario(formation, service, scenario, run)
                outcomes.append(outcome)
                print(outcome.report(), flush=True)
    finally:
        if service is not None:
            service.stop()
        formation.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    failed = [o for o in outcomes if o.failures]
    print(
        f"{len(outcomes)} runs in {time.monotonic() - started:.0f} s: "
        + (f"{len(failed)} FAILED" if failed else "every check passed")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
