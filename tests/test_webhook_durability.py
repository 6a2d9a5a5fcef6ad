"""Nothing lost (API.md §10): events written while `todo-api deliver` is stopped, and while it is
killed with SIGKILL in the middle of an attempt, all arrive once it runs again, each webhook-id
delivered and verified by a real receiver; SIGTERM lets the attempt in flight finish and exits 0."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import PROJECT_ROOT, make_settings, make_token, unguarded
from webhook_receiver import Answer, Receiver, running_receiver

from todo_api import create_app
from todo_api.platform.config import WebhookSettings

pytestmark = pytest.mark.process
TIMEOUT_SECONDS = 1


@pytest.fixture(scope="module")
def dev_app(database_url):
    settings = WebhookSettings(allow_http=True, allow_private=True)
    app = create_app(dataclasses.replace(make_settings(database_url), webhooks=settings), configure_logs=False)
    yield app
    app.extensions["todo_api.db"].close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


class DeliverProcess:
    """`todo-api deliver` as its own process, as production runs it."""

    def __init__(self, database_url: str, log_path: Path):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "BETTER_AUTH", "WEBHOOK_"))}
        env.update(
            DATABASE_URL=unguarded(database_url),  # the process scans every user (docs/webhooks.md)
            WEBHOOK_ALLOW_HTTP="true",
            WEBHOOK_ALLOW_PRIVATE="true",
            WEBHOOK_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS),
            WEBHOOK_RETRY_SCHEDULE="0.5,0.5,0.5",
        )
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "todo_api.cli", "deliver"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def stop(self, signum: int = signal.SIGTERM, timeout: float = TIMEOUT_SECONDS + 10) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signum)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise
        self._log.close()
        return self.process.returncode


@pytest.fixture
def start_deliver(database_url, tmp_path) -> Iterator:
    started: list[DeliverProcess] = []

    def start() -> DeliverProcess:
        process = DeliverProcess(database_url, tmp_path / "deliver.log")
        started.append(process)
        return process

    yield start
    for process in started:
        process.stop(signal.SIGKILL)


class User:
    def __init__(self, app, conn):
        self.user_id = f"user-{uuid.uuid4().hex[:12]}"
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {make_token(self.user_id)}"}
        self.conn = conn

    def call(self, method: str, path: str, **kwargs):
        response = self.client.open(f"/api/{self.user_id}{path}", method=method, headers=self.headers, **kwargs)
        assert response.status_code < 300, response.json
        return response.json["data"]

    def write_tasks(self, count: int) -> None:
        """Creates, updates, completions and deletions: every kind of event."""
        for number in range(count):
            task = self.call("POST", "/tasks", json={"title": f"task {number}"})
            if number % 3 == 1:
                self.call("PATCH", f"/tasks/{task['id']}", json={"priority": "high"})
            if number % 3 == 2:
                self.call("PATCH", f"/tasks/{task['id']}/complete")
                self.call("DELETE", f"/tasks/{task['id']}")

    def deliveries(self) -> dict[str, str]:
        rows = self.conn.execute(
            "SELECT id, status FROM webhook_deliveries WHERE user_id = %s", [self.user_id]
        ).fetchall()
        return {str(row["id"]): row["status"] for row in rows}


@pytest.fixture
def user(dev_app, conn) -> Iterator[User]:
    created = User(dev_app, conn)
    yield created
    conn.execute("DELETE FROM webhooks WHERE user_id = %s", [created.user_id])


def everything_arrived(user: User, receiver: Receiver) -> bool:
    stored = user.deliveries()
    return bool(stored) and set(stored) <= set(receiver.ids()) and set(stored.values()) == {"succeeded"}


def verify_all(receiver: Receiver, secret: str) -> None:
    for request in receiver.received:
        request.verify(secret)


def test_writes_made_while_deliver_is_stopped_all_arrive_when_it_starts(user, receiver, start_deliver):
    webhook = user.call("POST", "/webhooks", json={"url": receiver.url + "/hook", "events": ["*"]})
    user.write_tasks(12)
    assert receiver.received == []  # nothing delivers yet: the events wait in PostgreSQL
    stored = user.deliveries()
    assert len(stored) == 12 + 4 + 4 * 2 and set(stored.values()) == {"pending"}
    process = start_deliver()
    receiver.wait_for(lambda: everything_arrived(user, receiver))
    assert set(receiver.ids()) == set(stored)
    verify_all(receiver, webhook["secret"])
    assert process.stop() == 0


def test_a_delivery_process_killed_mid_attempt_loses_nothing(user, receiver, start_deliver):
    webhook = user.call("POST", "/webhooks", json={"url": receiver.url + "/hook", "events": ["*"]})
    held = threading.Event()
    release = threading.Event()

    def answer(request) -> Answer:
        if not held.is_set():  # the first attempt hangs until the process is killed
            held.set()
            release.wait(30)
        return Answer(200)

    receiver.answer = answer
    process = start_deliver()
    user.write_tasks(6)
    receiver.wait_for(held.is_set)
    process.stop(signal.SIGKILL)
    user.write_tasks(6)  # written while no delivery process runs
    release.set()
    start_deliver()
    receiver.wait_for(lambda: everything_arrived(user, receiver), timeout=60)
    assert set(receiver.ids()) == set(user.deliveries())  # each webhook-id delivered, none missing
    verify_all(receiver, webhook["secret"])


def test_sigterm_lets_the_attempt_in_flight_finish_and_exits_0(user, receiver, start_deliver):
    user.call("POST", "/webhooks", json={"url": receiver.url, "events": ["task.created"]})
    receiver.answer = lambda _request: Answer(200, delay=TIMEOUT_SECONDS / 2)
    process = start_deliver()
    user.call("POST", "/tasks", json={"title": "in flight"})
    receiver.wait_for(lambda: len(receiver.received) == 1)
    started = time.monotonic()
    assert process.stop(signal.SIGTERM) == 0
    assert time.monotonic() - started < TIMEOUT_SECONDS + 10
    assert set(user.deliveries().values()) == {"succeeded"}


def test_serve_with_deliver_runs_the_delivery_process_beside_gunicorn(database_url, receiver, tmp_path, conn):
    """What `make run` runs: a webhook registered and a task created over HTTP arrive at the receiver."""
    import requests
    from conftest import SECRET, free_port

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "BETTER_AUTH", "WEBHOOK_", "PORT"))}
    env.update(
        DATABASE_URL=unguarded(database_url),
        BETTER_AUTH_SECRET=SECRET,
        WEBHOOK_ALLOW_HTTP="true",
        WEBHOOK_ALLOW_PRIVATE="true",
        TODO_API_DATA_DIR=str(tmp_path / "data"),
    )
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "todo_api.cli", "serve", "--deliver", "--port", str(port), "--workers", "1"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    user_id = f"user-{uuid.uuid4().hex[:12]}"
    base = f"http://127.0.0.1:{port}/api/{user_id}"
    headers = {"Authorization": f"Bearer {make_token(user_id)}"}
    try:
        deadline = time.monotonic() + 30
        while True:
            assert server.poll() is None, log_path.read_text()[-2000:]
            try:
                if requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()[-2000:]
            time.sleep(0.1)
        hook = requests.post(
            base + "/webhooks", json={"url": receiver.url, "events": ["*"]}, headers=headers, timeout=5
        )
        assert hook.status_code == 201, hook.text
        assert requests.post(base + "/tasks", json={"title": "pushed"}, headers=headers, timeout=5).status_code == 201
        receiver.wait_for(lambda: len(receiver.received) == 1)
        assert receiver.received[0].verify(hook.json()["data"]["secret"])["type"] == "task.created"
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0
        conn.execute("DELETE FROM webhooks WHERE user_id = %s", [user_id])
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    attempts = [line for line in lines if line.get("event") == "webhook.attempt" and line["user_id"] == user_id]
    assert [attempt["status"] for attempt in attempts] == [200]  # one line per attempt, from the delivery process


@pytest.mark.parametrize(
    ("variable", "value"),
    [("WEBHOOK_RETRY_SCHEDULE", "5,soon"), ("WEBHOOK_CONCURRENCY", "0"), ("WEBHOOK_TIMEOUT_SECONDS", "-1")],
)
def test_bad_webhook_settings_stop_deliver_with_one_line_naming_the_variable(database_url, variable, value):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "WEBHOOK_"))}
    env.update({"DATABASE_URL": unguarded(database_url), variable: value})
    result = subprocess.run(
        [sys.executable, "-m", "todo_api.cli", "deliver"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [result.stderr.strip()] and variable in result.stderr
    assert "Traceback" not in result.stderr
