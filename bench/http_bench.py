"""HTTP benchmark: the service under gunicorn against the bare-Flask floor, in one run.

Starts a throwaway embedded PostgreSQL, seeds 20 users x 200 tasks, serves the API with
`gunicorn -c gunicorn.conf.py wsgi:app` (2 workers) on 127.0.0.1, and drives it with wrk
(16 connections) for each scenario: GET one task, the same with a personal access token instead of
a JWT ("GET one (PAT)": its lookup rides in the read's statement), GET the first page (limit 20),
POST, PATCH. The floor, a bare Flask app under the same gunicorn settings, runs beside it; each
round measures the floor and every scenario (every other round in reverse order), and a scenario's
ratio is to the floor of its own round. A
second reference, "floor + SELECT 1", is the floor after one database round trip: what any
endpoint reading PostgreSQL pays before its own code.
Prints, as medians over the rounds: requests/s, p50/p99 latency, errors, the ratio to the floor;
then each worker's peak RSS, where the CPU went per request (workers, PostgreSQL, wrk, idle), and
the personal access token's CPU over the JWT's, round by round (issue 26's must-show).

    python bench/http_bench.py [--rounds 3] [--duration 6] [--connections 16] [--workers 2]
                               [--per-transaction-settings] [--citus]

--citus (make bench-citus): the same scenarios, in the same rounds, also against the service on a
throwaway Citus cluster (a coordinator and two workers on this machine, scripts/citus_cluster.py) with
the same data, then a side-by-side table, and the plans of a listing and a sync on the coordinator.

The database is set up as docs/performance.md recommends: `todo-api set-db-defaults` makes the
statement timeout and UTC its defaults, so requests do not set them per transaction;
--per-transaction-settings leaves the defaults alone, to measure the service where they differ.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.citus_cluster import CitusCluster, find_tarball  # noqa: E402
from todo_api.auth.tokens import credentials  # noqa: E402
from todo_api.cli import migrate, set_db_defaults  # noqa: E402
from todo_api.platform.db import load_queries  # noqa: E402
from todo_api.platform.embedded import EmbeddedPostgres  # noqa: E402

SECRET = "bench-secret-0123456789-0123456789-0123456789"
USERS = 20
TASKS_PER_USER = 200
CITUS = "(Citus)"  # the suffix of a scenario run against the service on Citus
WARM_UP_SECONDS = 2  # each server warms up (pool, prepared statements, token cache) before it is measured

SEED_SQL = """
INSERT INTO tasks (user_id, title, description, completed, completed_at, priority, tags, due_at, created_at,
                   updated_at)
SELECT 'bench-' || u,
       (ARRAY['Buy', 'Call', 'Email', 'Fix', 'Plan', 'Review', 'Write', 'Book'])[1 + (t %% 8)] || ' '
         || (ARRAY['milk', 'plumber', 'report', 'dentist', 'gift', 'insurance', 'slides', 'tax'])[1 + (t * 7 %% 8)]
         || ' #' || t,
       CASE WHEN t %% 3 = 0 THEN 'Remember to check the details first.' END,
       t %% 4 = 0,
       CASE WHEN t %% 4 = 0 THEN now() END,
       (ARRAY['none', 'low', 'medium', 'high'])[1 + (t %% 4)]::task_priority,
       CASE t %% 4 WHEN 0 THEN ARRAY['home'] WHEN 1 THEN ARRAY['work', 'urgent'] WHEN 2 THEN ARRAY[]::text[]
                   ELSE ARRAY['errands'] END,
       CASE WHEN t %% 2 = 0 THEN now() + (t || ' hours')::interval END,
       now() - (t || ' minutes')::interval,
       now() - (t || ' minutes')::interval
FROM generate_series(1, %(users)s) AS u, generate_series(1, %(tasks)s) AS t
"""


@dataclass
class Result:
    name: str
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int
    cpu_us: dict[str, float] = field(default_factory=dict)  # CPU time per request, by process group


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: str) -> float:
    """User + system CPU time of one process (0 if it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _idle_seconds() -> float:
    """The machine's idle CPU time so far, summed over its cores."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()
    return (int(fields[4]) + int(fields[5])) / _CLOCK_TICKS


def _children(pid: int | str) -> list[str]:
    try:
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []


def postmaster_pid(server: EmbeddedPostgres) -> int:
    return int((server.pgdata / "postmaster.pid").read_text().split()[0])


class CpuMeter:
    """Where a scenario's CPU went: the service's workers, the PostgreSQL servers it uses (every
    process under their postmasters: the coordinator's and the workers' on Citus), wrk, and what
    stayed idle."""

    def __init__(self, server_pid: int, postmasters: list[int]):
        self._server_pid = server_pid
        self._postmasters = postmasters

    def _snapshot(self) -> dict[str, float]:
        workers = _children(self._server_pid)
        postgres = [*self._postmasters, *(child for pid in self._postmasters for child in _children(pid))]
        return {
            "workers": sum(_cpu_seconds(pid) for pid in workers),
            "postgres": sum(_cpu_seconds(pid) for pid in postgres),
            "wrk": sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2]),
            "idle": _idle_seconds(),
        }

    def __enter__(self) -> CpuMeter:
        self._start = self._snapshot()
        return self

    def __exit__(self, *exc: object) -> None:
        end = self._snapshot()
        self.seconds = {group: end[group] - self._start[group] for group in end}


def token(user_id: str) -> str:
    now = datetime.now(UTC)
    return jwt.encode({"sub": user_id, "iat": now, "exp": now + timedelta(hours=2)}, SECRET, algorithm="HS256")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """gunicorn on 127.0.0.1 with the given config file and app."""

    def __init__(
        self,
        config: str,
        app: str,
        env: dict[str, str],
        workers: int,
        log: Path,
        postmasters: list[int],
        checkout: Path = ROOT,
    ):
        self.postmasters = postmasters  # the PostgreSQL servers it uses, for CpuMeter
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, **env, "PORT": str(self.port), "HOST": "127.0.0.1", "WEB_CONCURRENCY": str(workers)}
        if checkout != ROOT:  # another checkout's code (--before): first on the path, ahead of the installed one
            full_env["PYTHONPATH"] = str(checkout)
        self._log = open(log, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", config, app],
            cwd=checkout,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, path: str) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(self.url + path, timeout=1):
                    return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"server on {self.url} did not start")

    def worker_peak_rss_mb(self) -> list[float]:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        peaks = []
        for pid in children:
            status = Path(f"/proc/{pid}/status").read_text()
            peaks.append(int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024)
        return peaks

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._log.close()


def lua_script(requests: list[dict[str, str]]) -> str:
    """A wrk script that sends one of `requests`, at random, each time."""
    rows = []
    for r in requests:
        headers = ", ".join(f"[{json.dumps(k)}] = {json.dumps(v)}" for k, v in r.get("headers", {}).items())
        body = json.dumps(r["body"]) if r.get("body") else "nil"
        rows.append(
            f'{{method = "{r["method"]}", path = {json.dumps(r["path"])}, headers = {{{headers}}}, body = {body}}}'
        )
    return (
        "local requests = {\n  " + ",\n  ".join(rows) + "\n}\n"
        "math.randomseed(os.time())\n"
        "request = function()\n"
        "  local r = requests[math.random(#requests)]\n"
        "  return wrk.format(r.method, r.path, r.headers, r.body)\n"
        "end\n"
    )


def run_wrk(name: str, server: Server, script: str, connections: int, duration: int, workdir: Path) -> Result:
    script_path = workdir / f"{name.replace(' ', '_')}.lua"
    script_path.write_text(script)
    command = [
        *("wrk", "-t", "2", "-c", str(connections), "-d", f"{duration}s", "--latency"),
        *("-s", str(script_path), server.url),
    ]
    with CpuMeter(server.process.pid, server.postmasters) as cpu:
        output = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=True).stdout
    requests = int(re.search(r"(\d+) requests in", output).group(1))
    return Result(
        name=name,
        requests_per_second=float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        p50_ms=_latency_ms(re.search(r"\s50%\s+([\d.]+\w+)", output).group(1)),
        p99_ms=_latency_ms(re.search(r"\s99%\s+([\d.]+\w+)", output).group(1)),
        errors=_errors(output),
        requests=requests,
        cpu_us={group: seconds * 1e6 / max(requests, 1) for group, seconds in cpu.seconds.items()},
    )


def _latency_ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def _errors(output: str) -> int:
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors += int(non_2xx.group(1))
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    return errors


def scenarios(task_ids: dict[str, list[int]], personal_tokens: dict[str, str] | None = None) -> dict[str, list[dict]]:
    """The requests of each scenario; "GET one (PAT)" only given personal tokens (a --before checkout
    may predate them)."""
    rng = random.Random(7)
    tokens = {user: token(user) for user in task_ids}
    auth = {user: {"Authorization": f"Bearer {tokens[user]}"} for user in task_ids}
    personal = {user: {"Authorization": f"Bearer {token}"} for user, token in (personal_tokens or {}).items()}
    json_auth = {user: {**auth[user], "Content-Type": "application/json"} for user in task_ids}
    pairs = [(user, task_id) for user, ids in task_ids.items() for task_id in ids]
    sample = rng.sample(pairs, 500)
    chosen = {
        "GET one": [{"method": "GET", "path": f"/api/{u}/tasks/{t}", "headers": auth[u]} for u, t in sample],
        "GET one (PAT)": [{"method": "GET", "path": f"/api/{u}/tasks/{t}", "headers": personal[u]} for u, t in sample]
        if personal
        else [],
        "GET list (20)": [{"method": "GET", "path": f"/api/{u}/tasks?limit=20", "headers": auth[u]} for u in task_ids],
        "POST": [
            {
                "method": "POST",
                "path": f"/api/{u}/tasks",
                "headers": json_auth[u],
                "body": json.dumps({"title": "Benchmark task", "priority": "low", "tags": ["bench", "load"]}),
            }
            for u in task_ids
        ],
        "PATCH": [
            {
                "method": "PATCH",
                "path": f"/api/{u}/tasks/{t}",
                "headers": json_auth[u],
                "body": json.dumps({"priority": rng.choice(["low", "medium", "high"])}),
            }
            for u, t in sample
        ],
    }
    return {name: requests for name, requests in chosen.items() if requests}


def print_personal_token_ratios(measured: dict[str, list[Result]]) -> None:
    """Issue 26's must-show: a personal access token's CPU per request (workers + PostgreSQL) over a
    JWT's on the same requests, round by round (the two ran minutes apart at most) and the median;
    then the ratio of each one's least CPU over the rounds (a round disturbed by the machine costs
    more, never less, so the least is each one's own cost most nearly)."""
    for name, rounds in measured.items():
        jwt_name = name.replace(" (PAT)", "")
        if jwt_name == name or jwt_name not in measured:
            continue
        pat_cpu = [r.cpu_us["workers"] + r.cpu_us["postgres"] for r in rounds]
        jwt_cpu = [r.cpu_us["workers"] + r.cpu_us["postgres"] for r in measured[jwt_name]]
        ratios = [pat / jwt for pat, jwt in zip(pat_cpu, jwt_cpu, strict=True)]
        print(
            f"\n{name} / {jwt_name}, CPU per request (workers + PostgreSQL), issue 26 asks for 1.10 at most: "
            f"median {median(ratios):.2f} (each round {', '.join(f'{ratio:.2f}' for ratio in ratios)}); "
            f"least over the rounds {min(pat_cpu):,.0f} / {min(jwt_cpu):,.0f} µs = {min(pat_cpu) / min(jwt_cpu):.2f}"
        )


def median(values: list[float]) -> float:
    return statistics.median(values)


def summarise(name: str, rounds: list[Result], floors: list[Result], round_trips: list[Result]) -> dict[str, Any]:
    """One scenario over every round: medians, errors summed, and the ratios to the floor and to
    "floor + SELECT 1" measured in the same round (the machine's speed drifts between rounds; within
    one it is comparable)."""
    return {
        "name": name,
        "requests_per_second": median([r.requests_per_second for r in rounds]),
        "p50_ms": median([r.p50_ms for r in rounds]),
        "p99_ms": median([r.p99_ms for r in rounds]),
        "p99_over_p50": median([r.p99_ms / r.p50_ms for r in rounds]),
        "errors": sum(r.errors for r in rounds),
        "ratio": median([r.requests_per_second / f.requests_per_second for r, f in zip(rounds, floors, strict=True)]),
        "ratios": [r.requests_per_second / f.requests_per_second for r, f in zip(rounds, floors, strict=True)],
        "ratio_round_trip": median(
            [r.requests_per_second / f.requests_per_second for r, f in zip(rounds, round_trips, strict=True)]
        ),
        "cpu_us": {group: median([r.cpu_us[group] for r in rounds]) for group in rounds[0].cpu_us},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=6, help="seconds per scenario and round (default 6)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of floor + every scenario (default 3)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--per-transaction-settings", action="store_true", help="do not run set-db-defaults (see docs/performance.md)"
    )
    parser.add_argument("--citus", action="store_true", help="also on a Citus cluster, side by side (make bench-citus)")
    parser.add_argument(
        "--before",
        type=Path,
        help="also the service of another checkout (e.g. `git archive` of the commit before a change), on a "
        "database of its own migrated by that code, in the same rounds: its scenarios end in (before)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk", file=sys.stderr)
        return 2

    tarball = find_tarball() if args.citus else None
    if args.citus and tarball is None:
        print("--citus needs a Citus tarball: set CITUS_TARBALL (see scripts/citus_cluster.py)", file=sys.stderr)
        return 2

    workdir = Path(tempfile.mkdtemp(prefix="todo-bench-"))
    os.chmod(workdir, 0o755)
    postgres = EmbeddedPostgres(workdir / "pg", durable=False).start()
    cluster = CitusCluster(workdir / "citus", tarball) if tarball else None
    servers: list[Server] = []
    try:
        os.environ.setdefault("BETTER_AUTH_SECRET", SECRET)
        seeded = prepare(postgres.url(), args.per_transaction_settings)

        # Every server runs throughout (an idle one costs nothing), so every round measures the
        # floor and each scenario back to back: their ratio is taken within one round.
        env = {"DATABASE_URL": postgres.url(), "BETTER_AUTH_SECRET": SECRET, "LOG_LEVEL": "INFO"}  # as deployed
        one_server = [postmaster_pid(postgres)]
        floor = Server("bench/floor.conf.py", "bench.floor:app", env, args.workers, workdir / "floor.log", one_server)
        servers.append(floor)
        service = Server("gunicorn.conf.py", "wsgi:app", env, args.workers, workdir / "service.log", one_server)
        servers.append(service)
        floor.wait_ready("/floor")
        service.wait_ready("/healthz")
        scripts = {
            "floor": (floor, lua_script([{"method": "GET", "path": "/floor"}])),
            "floor + SELECT 1": (floor, lua_script([{"method": "GET", "path": "/floor/db"}])),
        }
        scripts.update({name: (service, lua_script(requests)) for name, requests in scenarios(*seeded).items()})
        if args.before:
            before_url = prepare_before(postgres.url(), args.before, args.per_transaction_settings)
            before_ids = seeded_task_ids(before_url)
            before_tokens = personal_access_tokens(before_url, before_ids) if has_access_tokens(before_url) else None
            before = Server(
                "gunicorn.conf.py",
                "wsgi:app",
                {**env, "DATABASE_URL": before_url},
                args.workers,
                workdir / "before.log",
                one_server,
                checkout=args.before.resolve(),
            )
            servers.append(before)
            before.wait_ready("/healthz")
            scripts.update(
                {
                    f"{name} (before)": (before, lua_script(requests))
                    for name, requests in scenarios(before_ids, before_tokens).items()
                }
            )
        if cluster:
            (workdir / "citus").mkdir()
            cluster.start()
            citus_seeded = prepare(cluster.url(), args.per_transaction_settings)
            citus_env = {**env, "DATABASE_URL": cluster.url()}
            postmasters = [postmaster_pid(node) for node in cluster.nodes]
            citus_service = Server(
                "gunicorn.conf.py", "wsgi:app", citus_env, args.workers, workdir / "citus.log", postmasters
            )
            servers.append(citus_service)
            citus_service.wait_ready("/healthz")
            scripts.update(
                {
                    f"{name} {CITUS}": (citus_service, lua_script(requests))
                    for name, requests in scenarios(*citus_seeded).items()
                }
            )
        for name, (server, script) in scripts.items():  # warm-up, not counted
            run_wrk(f"warm-up {name}", server, script, args.connections, WARM_UP_SECONDS, workdir)
        measured: dict[str, list[Result]] = {name: [] for name in scripts}
        for round_number in range(1, args.rounds + 1):
            # Every other round runs the scenarios in reverse: a scenario is not always the one that
            # follows another server's (cold caches), nor always before or after the one it is compared with.
            order = list(scripts.items()) if round_number % 2 else list(reversed(scripts.items()))
            for name, (server, script) in order:
                measured[name].append(run_wrk(name, server, script, args.connections, args.duration, workdir))
            print(f"round {round_number} of {args.rounds} done", file=sys.stderr)
        peaks = service.worker_peak_rss_mb()
        plans = citus_plans(cluster.url(), next(iter(citus_seeded[0]))) if cluster else ""
    finally:
        for server in servers:
            server.stop()
        postgres.stop(mode="immediate")
        if cluster:
            cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    floors = measured["floor"]
    round_trips = measured["floor + SELECT 1"]
    results = [summarise(name, rounds, floors, round_trips) for name, rounds in measured.items()]
    print(
        f"\n{args.workers} gunicorn workers, wrk with {args.connections} connections, {args.rounds} rounds of "
        f"{args.duration} s per scenario, {USERS} users x {TASKS_PER_USER} tasks; medians over the rounds; "
        f"{'timeout and UTC set per transaction' if args.per_transaction_settings else 'set-db-defaults applied'}\n"
    )
    print(
        "| scenario | requests/s | p50 ms | p99 ms | p99/p50 | errors | x floor | x floor, each round "
        "| x floor + SELECT 1 |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|")
    for r in results:
        print(
            f"| {r['name']} | {r['requests_per_second']:,.0f} | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['p99_over_p50']:.1f} | {r['errors']} | {r['ratio']:.2f} | "
            f"{', '.join(f'{ratio:.2f}' for ratio in r['ratios'])} | {r['ratio_round_trip']:.2f} |"
        )
    print(f"\npeak RSS per worker: {', '.join(f'{mb:.1f} MB' for mb in peaks)}")
    print("\nCPU time per request, in microseconds (idle: CPU left unused, summed over the cores)\n")
    print("| scenario | workers | PostgreSQL | wrk | idle | total (workers + PostgreSQL + wrk) |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in results:
        cpu = r["cpu_us"]
        print(
            f"| {r['name']} | {cpu['workers']:,.0f} | {cpu['postgres']:,.0f} | {cpu['wrk']:,.0f} | {cpu['idle']:,.0f} "
            f"| {cpu['workers'] + cpu['postgres'] + cpu['wrk']:,.0f} |"
        )
    print_personal_token_ratios(measured)
    if cluster:
        print_side_by_side({r["name"]: r for r in results})
        print(f"\nPlans on the coordinator (one user of {TASKS_PER_USER} tasks):\n\n{plans}")
    return 0


def print_side_by_side(results: dict[str, dict[str, Any]]) -> None:
    """Each scenario on one server and on Citus: throughput, latency, CPU per request."""
    print("\nOne server → Citus (a coordinator and two workers on this machine), medians over the same rounds\n")
    print(
        "| scenario | requests/s | p50 ms | p99 ms | CPU µs per request: workers | PostgreSQL | workers + PostgreSQL |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, one in results.items():
        citus = results.get(f"{name} {CITUS}")
        if citus is None:
            continue
        cells = []
        for key, form in (("requests_per_second", ",.0f"), ("p50_ms", ".2f"), ("p99_ms", ".2f")):
            cells.append(f"{one[key]:{form}} → {citus[key]:{form}}")
        for part in (("workers",), ("postgres",), ("workers", "postgres")):
            before, after = (sum(r["cpu_us"][group] for group in part) for r in (one, citus))
            cells.append(f"{before:,.0f} → {after:,.0f}")
        print(f"| {name} | {' | '.join(cells)} |")


def prepare(url: str, per_transaction_settings: bool) -> tuple[dict[str, list[int]], dict[str, str]]:
    """Migrate the database at `url`, make the timeout and UTC its defaults (unless told not to), seed
    and analyse it; return each user's task ids, and a personal access token (tasks:read) of each."""
    os.environ["DATABASE_URL"] = url
    migrate()
    if not per_transaction_settings:
        assert set_db_defaults()[1], "set-db-defaults did not take"
    task_ids = seeded_task_ids(url)
    return task_ids, personal_access_tokens(url, task_ids)


def prepare_before(url: str, checkout: Path, per_transaction_settings: bool) -> str:
    """A database beside `url`'s for the service of `checkout`, migrated (and set up) by that code's
    own CLI, as it would be deployed; its URL. The caller seeds it (seeded_task_ids)."""
    before_url = urlsplit(url)._replace(path="/before").geturl()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE before")
    env = {**os.environ, "DATABASE_URL": before_url, "PYTHONPATH": str(checkout.resolve())}
    commands = [["migrate"]] + ([] if per_transaction_settings else [["set-db-defaults"]])
    for command in commands:
        subprocess.run([sys.executable, "-m", "todo_api.cli", *command], cwd=checkout, env=env, check=True)
    return before_url


def seeded_task_ids(url: str) -> dict[str, list[int]]:
    """Seed the migrated database at `url` and analyse it; each user's task ids."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SEED_SQL, {"users": USERS, "tasks": TASKS_PER_USER})
        conn.execute("ANALYZE tasks")
        rows = conn.execute("SELECT user_id, id FROM tasks ORDER BY id").fetchall()
        task_ids: dict[str, list[int]] = {}
        for user_id, task_id in rows:
            task_ids.setdefault(user_id, []).append(task_id)
    return task_ids


def has_access_tokens(url: str) -> bool:
    """Whether the database at `url` (a --before checkout's) has personal access tokens' table."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute("SELECT to_regclass('access_tokens') IS NOT NULL").fetchone()[0]


def personal_access_tokens(url: str, task_ids: dict[str, list[int]]) -> dict[str, str]:
    """A personal access token (tasks:read) for each user, stored as the service stores them."""
    personal_tokens = {user_id: credentials.mint(user_id) for user_id in task_ids}
    insert = load_queries()["insert_access_token"]
    with psycopg.connect(url, autocommit=True) as conn:
        for user_id, personal in personal_tokens.items():
            params = {"name": "bench", "scopes": ["tasks:read"], "expires_in_days": 1}
            conn.execute(insert, {**params, "user_id": user_id, "token_hash": credentials.hash_token(personal)})
    return personal_tokens


def citus_plans(url: str, user_id: str) -> str:
    """EXPLAIN ANALYZE, on the coordinator, of the statements of GET /tasks?limit=20 and of a first sync."""
    from werkzeug.datastructures import MultiDict

    from todo_api.tasks import listing
    from todo_api.tasks.schemas import list_query

    queries = load_queries()
    page, values = listing.build_list_statement(
        queries["list_tasks"], listing.ListQuery(list_query.load_args(MultiDict({"limit": "20"}))), None
    )
    statements = {
        "list_tasks (GET /tasks?limit=20)": (page, {**values, "user_id": user_id, "page_size": 21}),
        "sync_changes (GET /sync, first page)": (
            queries["sync_changes"],
            {"user_id": user_id, "after": 0, "deleted_after": None, "page_size": 201, "retention_days": 30},
        ),
    }
    explain = sql.SQL("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, BUFFERS OFF) {}")
    text = []
    with psycopg.connect(url, autocommit=True) as conn:
        for label, (statement, params) in statements.items():
            lines = [row[0] for row in conn.execute(explain.format(statement), params).fetchall()]
            text.append(f"{label}:\n\n" + "\n".join(f"    {line}" for line in lines))
    return "\n\n".join(text)


if __name__ == "__main__":
    sys.exit(main())
