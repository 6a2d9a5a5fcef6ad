"""What webhooks cost the API, and how fast `todo-api deliver` delivers (issue 27).

    .venv/bin/python bench/webhooks.py [--writes 300] [--rounds 5] [--backlog 2000] [--lag-writes 200]

Starts a throwaway embedded PostgreSQL, migrates it, and a receiver process on 127.0.0.1 (a fast one
answering 204, and a black hole that accepts connections and never answers). `todo-api deliver`
runs as its own process throughout, as in production.

1. Writes' CPU per request: the app in this process (Flask's test client, a pool of one connection)
   writes tasks (create, patch, complete, delete) for three users in interleaved rounds: one with no
   webhook, one with two webhooks subscribed to everything at the fast receiver, one with two at the
   black hole. CPU is this process's (the app's) plus the connection's PostgreSQL backend's (from
   /proc): medians over the rounds, and the median of each round's ratio to the arm without webhooks
   (the arms take turns going first).
2. Throughput: the delivery process stopped, `--backlog` events queued for one webhook at the fast
   receiver, the process started: deliveries per second, first arrival to last.
3. Lag: `--lag-writes` writes 50 ms apart with the process running: from the write's answer to its
   delivery's arrival at the receiver, p50 and p99.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from todo_api import create_app  # noqa: E402
from todo_api.cli import MIGRATIONS_DIR, yoyo_backend  # noqa: E402
from todo_api.platform.config import Settings, WebhookSettings  # noqa: E402
from todo_api.platform.embedded import EmbeddedPostgres  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")
SECRET = "bench-secret-that-is-long-enough-0123456789"


def backend_cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def receive(fast: socket.socket, hole: socket.socket, arrivals: multiprocessing.Queue, stop) -> None:
    """The receiver process: 204 to every POST on `fast` (noting when each task's event arrived), and
    nothing ever on `hole` (connections accepted and held)."""
    seen: list[tuple[float, int, str]] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            seen.append((time.time(), json.loads(body)["data"].get("id", 0), self.headers["webhook-id"]))
            self.send_response(204)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
    server.socket = fast
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    held = []

    def hold() -> None:
        while True:
            connection, _ = hole.accept()
            held.append(connection)

    threading.Thread(target=hold, daemon=True).start()
    stop.wait()
    arrivals.put(seen)


def listening() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


def migrate(url: str) -> None:
    from yoyo import read_migrations

    backend = yoyo_backend(url)
    with backend.lock():
        backend.apply_migrations(backend.to_apply(read_migrations(str(MIGRATIONS_DIR))))
    backend.connection.close()


class Writer:
    """One user writing through the app: create, patch, complete, delete."""

    def __init__(self, client, user_id: str):
        import jwt

        self.client = client
        self.user_id = user_id
        token = jwt.encode({"sub": user_id, "exp": int(time.time()) + 3600}, SECRET, algorithm="HS256")
        self.headers = {"Authorization": f"Bearer {token}"}

    def call(self, method: str, path: str, body=None):
        response = self.client.open(f"/api/{self.user_id}{path}", method=method, headers=self.headers, json=body)
        assert response.status_code < 300, response.get_data(as_text=True)
        return response

    def write(self, count: int) -> list[tuple[float, int]]:
        """`count` writes (in fours); returns (answered at, task id) of each."""
        answered = []
        for _ in range(count // 4):
            task = self.call("POST", "/tasks", {"title": "Bench task", "tags": ["bench"]}).json["data"]
            answered.append((time.time(), task["id"]))
            for method, path, body in (
                ("PATCH", f"/tasks/{task['id']}", {"priority": "high"}),
                ("PATCH", f"/tasks/{task['id']}/complete", None),
                ("DELETE", f"/tasks/{task['id']}", None),
            ):
                self.call(method, path, body)
                answered.append((time.time(), task["id"]))
        return answered


class Deliver:
    def __init__(self, url: str):
        env = {**os.environ, "DATABASE_URL": url, "WEBHOOK_ALLOW_HTTP": "true", "WEBHOOK_ALLOW_PRIVATE": "true"}
        env["LOG_LEVEL"] = "WARNING"
        self.process = subprocess.Popen([sys.executable, "-m", "todo_api.cli", "deliver"], cwd=ROOT, env=env)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def pending(conn: psycopg.Connection, user_id: str) -> int:
    return conn.execute(
        "SELECT count(*) FROM webhook_deliveries WHERE user_id = %s AND status = 'pending'", [user_id]
    ).fetchone()[0]


def wait_until(condition, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError("timed out")
        time.sleep(0.05)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--writes", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--backlog", type=int, default=2000)
    parser.add_argument("--lag-writes", type=int, default=200)
    args = parser.parse_args(argv)

    fast, hole = listening(), listening()
    arrivals: multiprocessing.Queue = multiprocessing.Queue()
    stop_receiver = multiprocessing.Event()
    receiver = multiprocessing.Process(target=receive, args=(fast, hole, arrivals, stop_receiver), daemon=True)
    receiver.start()
    fast_url = f"http://127.0.0.1:{fast.getsockname()[1]}/hook"
    hole_url = f"http://127.0.0.1:{hole.getsockname()[1]}/hook"

    with tempfile.TemporaryDirectory() as data:
        server = EmbeddedPostgres(Path(data), durable=False).start()
        url = server.url()
        deliver = None
        try:
            migrate(url)
            settings = Settings(
                database_url=url,
                better_auth_secret=SECRET,
                db_pool_min_size=1,
                db_pool_max_size=1,
                webhooks=WebhookSettings(allow_http=True, allow_private=True),
                log_level="WARNING",
            )
            app = create_app(settings, configure_logs=False)
            database = app.extensions["todo_api.db"]
            client = app.test_client()
            run = f"bench-{uuid.uuid4().hex[:6]}"
            arms = {
                "no webhook": Writer(client, f"{run}-none"),
                "two webhooks, fast receiver": Writer(client, f"{run}-fast"),
                "two webhooks, receiver never answers": Writer(client, f"{run}-hole"),
            }
            for name, target in (
                ("two webhooks, fast receiver", fast_url),
                ("two webhooks, receiver never answers", hole_url),
            ):
                for _ in range(2):
                    arms[name].call("POST", "/webhooks", {"url": target, "events": ["*"]})
            deliver = Deliver(url)
            for writer in arms.values():  # warm up: plans prepared, caches filled
                writer.write(40)
            cpu: dict[str, list[float]] = {name: [] for name in arms}
            names = list(arms)
            for round_number in range(args.rounds):
                rotated = names[round_number % len(names) :] + names[: round_number % len(names)]
                for name in rotated:  # each arm first in turn: a slow spell of the machine hits each alike
                    writer = arms[name]
                    pid = database.fetch_one(sql.SQL("SELECT pg_backend_pid() AS pid"), {})["pid"]
                    before = time.process_time() + backend_cpu_seconds(pid)
                    writer.write(args.writes)
                    after = time.process_time() + backend_cpu_seconds(pid)
                    cpu[name].append((after - before) * 1e6 / args.writes)

            with psycopg.connect(url, autocommit=True) as conn:
                hole_user = arms["two webhooks, receiver never answers"].user_id
                conn.execute("DELETE FROM webhooks WHERE user_id = %s", [hole_user])  # frees the held attempts
                deliver.stop()
                deliver = None
                conn.execute("DELETE FROM webhook_deliveries")
                backlog_user = f"{run}-backlog"
                Writer(client, backlog_user).call("POST", "/webhooks", {"url": fast_url, "events": ["*"]})
                backlog_ids = {
                    row[0]
                    for row in conn.execute(
                        "INSERT INTO tasks (user_id, title) SELECT %s, 'bulk ' || n FROM generate_series(1, %s) n"
                        " RETURNING id",
                        [backlog_user, args.backlog],
                    ).fetchall()
                }
                deliver = Deliver(url)
                wait_until(lambda: pending(conn, backlog_user) == 0, timeout=600)

                lag_user = f"{run}-lag"
                lag_writer = Writer(client, lag_user)
                lag_writer.call("POST", "/webhooks", {"url": fast_url, "events": ["task.created"]})
                written = []
                for _ in range(args.lag_writes):
                    task = lag_writer.call("POST", "/tasks", {"title": "lag"}).json["data"]
                    written.append((time.time(), task["id"]))
                    time.sleep(0.05)
                wait_until(lambda: pending(conn, lag_user) == 0, timeout=120)
        finally:
            if deliver is not None:
                deliver.stop()
            stop_receiver.set()
            seen = arrivals.get(timeout=30)
            receiver.join(timeout=10)
            server.stop(mode="immediate")

    lag_ids = {task_id: at for at, task_id in written}
    lags = sorted((at - lag_ids[task_id]) * 1000 for at, task_id, _ in seen if task_id in lag_ids)
    backlog_arrivals = sorted(at for at, task_id, _ in seen if task_id in backlog_ids)
    throughput = (len(backlog_arrivals) - 1) / (backlog_arrivals[-1] - backlog_arrivals[0])
    base = cpu["no webhook"]
    print("| writes (create, patch, complete, delete) | CPU per write (app + PostgreSQL) | ratio to none, same round |")
    print("|---|---:|---:|")
    for name, samples in cpu.items():
        ratio = statistics.median(sample / first for sample, first in zip(samples, base, strict=True))
        print(f"| {name} | {statistics.median(samples):,.0f} µs | {ratio:.2f} |")
    print()
    print(f"rounds: {', '.join(' / '.join(f'{s:,.0f}' for s in cpu[n]) for n in cpu)}")
    print(f"delivery throughput: {throughput:,.0f} deliveries/s ({len(backlog_arrivals)} to a fast local receiver)")
    print(
        f"commit -> delivery lag over {len(lags)} writes: p50 {lags[len(lags) // 2]:.0f} ms, "
        f"p99 {lags[min(len(lags) - 1, int(len(lags) * 0.99))]:.0f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
