"""Delivery (API.md §10): each attempt of `todo-api deliver`'s Deliverer, driven step by step, to a
real receiver on loopback that verifies every delivery with the `standardwebhooks` library: the
signature and headers, retries on the schedule, 410, Retry-After, no redirects, timeouts, the address
rules (a host name resolving to loopback included), reminders, and the attempt's log line."""

from __future__ import annotations

import dataclasses
import logging
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from conftest import connect, make_settings, make_token, unguarded
from webhook_receiver import Answer, Receiver, running_receiver, running_tls_receiver, self_signed_certificate

from todo_api import create_app
from todo_api.platform.config import WebhookSettings
from todo_api.platform.db import Database
from todo_api.webhooks import sending
from todo_api.webhooks.deliver import Deliverer
from todo_api.webhooks.sending import Outcome

SCHEDULE = (1.0, 2.0, 3.0)
DEV = WebhookSettings(timeout_seconds=2, retry_schedule=SCHEDULE, allow_http=True, allow_private=True)


@pytest.fixture(scope="module")
def dev_app(database_url):
    """The API as in development: http:// and loopback URLs allowed, so webhooks can point at the receiver."""
    app = create_app(dataclasses.replace(make_settings(database_url), webhooks=DEV), configure_logs=False)
    yield app
    app.extensions["todo_api.db"].close()


@pytest.fixture(scope="module")
def database(database_url) -> Iterator[Database]:
    """The delivery process's own pool: unguarded, since its scans look across users (docs/webhooks.md)."""
    db = Database(unguarded(database_url), min_size=1, max_size=6, timeout=5, statement_timeout_ms=5000)
    yield db
    db.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


class User:
    """One user of the dev app: registers webhooks and writes tasks."""

    def __init__(self, app):
        self.user_id = f"user-{uuid.uuid4().hex[:12]}"
        self.client = app.test_client()
        self.headers = {"Authorization": f"Bearer {make_token(self.user_id)}"}

    def call(self, method: str, path: str, **kwargs):
        return self.client.open(f"/api/{self.user_id}{path}", method=method, headers=self.headers, **kwargs)

    def webhook(self, url: str, events: list[str] | None = None) -> dict:
        response = self.call("POST", "/webhooks", json={"url": url, "events": events or ["*"]})
        assert response.status_code == 201, response.json
        return response.json["data"]

    def task(self, **fields) -> dict:
        response = self.call("POST", "/tasks", json={"title": "A task", **fields})
        assert response.status_code == 201, response.json
        return response.json["data"]


@pytest.fixture
def user(dev_app, conn) -> Iterator[User]:
    """A fresh user; its webhooks (and so their deliveries) removed afterwards, so that no later
    delivery process in this session sends anything of this test's."""
    created = User(dev_app)
    yield created
    conn.execute("DELETE FROM webhooks WHERE user_id = %s", [created.user_id])


def deliver_due(deliverer: Deliverer, user_id: str) -> list:
    """One pass for this user's due deliveries (the test's user only: other tests' rows are theirs)."""
    return [deliverer.attempt(claimed) for claimed in deliverer.claim_user(user_id, 50)]


def rows(conn, user_id: str) -> list[dict]:
    return conn.execute(
        "SELECT * FROM webhook_deliveries WHERE user_id = %s ORDER BY created_at, id", [user_id]
    ).fetchall()


def make_due(conn, user_id: str) -> None:
    """Time passes: every pending delivery of the user is due now."""
    conn.execute(
        "UPDATE webhook_deliveries SET next_attempt_at = now() WHERE user_id = %s AND status = 'pending'", [user_id]
    )


def run_together(*steps) -> None:
    """Run each step on its own thread, all at once (several delivery processes), and wait for them."""
    threads = [threading.Thread(target=step) for step in steps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


@pytest.fixture
def deliverer(database) -> Deliverer:
    return Deliverer(database, DEV, jitter=lambda: 0.0)


def test_a_delivery_is_signed_as_standard_webhooks_and_carries_the_task(user, receiver, deliverer, conn):
    webhook = user.webhook(receiver.url + "/hook?key=abc")
    task = user.task(title="Buy milk")
    assert [d.status for d in deliver_due(deliverer, user.user_id)] == ["succeeded"]
    (request,) = receiver.received
    assert request.path == "/hook?key=abc"
    payload = request.verify(webhook["secret"])  # raises unless the signature and timestamp hold
    assert payload == {"type": "task.created", "timestamp": task["updated_at"], "data": task}
    assert request.headers["content-type"] == "application/json"
    (row,) = rows(conn, user.user_id)
    assert request.headers["webhook-id"] == str(row["id"])
    assert (row["status"], row["attempts"], row["last_status"], row["next_attempt_at"]) == ("succeeded", 1, 200, None)
    assert row["ended_at"] is not None


def test_a_wrong_secret_fails_verification(user, receiver, deliverer):
    user.webhook(receiver.url)
    user.task()
    deliver_due(deliverer, user.user_id)
    from standardwebhooks.webhooks import WebhookVerificationError

    with pytest.raises(WebhookVerificationError):
        receiver.received[0].verify("whsec_" + "A" * 43 + "=")


def test_failures_are_retried_on_the_schedule_with_one_webhook_id_then_fail(user, receiver, deliverer, conn):
    webhook = user.webhook(receiver.url)
    receiver.answer = lambda _request: Answer(500)
    user.task()
    for attempt, step in enumerate(SCHEDULE, start=1):
        assert [d.status for d in deliver_due(deliverer, user.user_id)] == ["pending"]
        (row,) = rows(conn, user.user_id)
        assert (row["attempts"], row["last_status"], row["last_error"]) == (attempt, 500, "HTTP 500")
        waited = (row["next_attempt_at"] - row["last_attempt_at"]).total_seconds()
        assert step <= waited <= step + 3  # from the claim: the step, plus the attempt (on a loaded machine)
        assert deliver_due(deliverer, user.user_id) == []  # not due yet
        make_due(conn, user.user_id)
    assert [d.status for d in deliver_due(deliverer, user.user_id)] == ["failed"]
    (row,) = rows(conn, user.user_id)
    assert (row["status"], row["attempts"], row["next_attempt_at"]) == ("failed", 4, None)
    assert len(set(receiver.ids())) == 1 and len(receiver.ids()) == 4
    for request in receiver.received:
        request.verify(webhook["secret"])
    listed = user.call("GET", f"/webhooks/{webhook['id']}/deliveries").json["data"]
    assert (listed[0]["status"], listed[0]["attempts"], listed[0]["last_status"]) == ("failed", 4, 500)


def test_a_retry_after_the_receiver_recovers_succeeds(user, receiver, deliverer, conn):
    user.webhook(receiver.url)
    answers = iter([Answer(503), Answer(204)])
    receiver.answer = lambda _request: next(answers)
    user.task()
    deliver_due(deliverer, user.user_id)
    make_due(conn, user.user_id)
    assert [d.status for d in deliver_due(deliverer, user.user_id)] == ["succeeded"]
    (row,) = rows(conn, user.user_id)
    assert (row["status"], row["attempts"], row["last_status"], row["last_error"]) == ("succeeded", 2, 204, None)


def test_a_410_disables_the_webhook_as_gone_and_fails_its_other_pending_deliveries(user, receiver, deliverer, conn):
    webhook = user.webhook(receiver.url)
    receiver.answer = lambda _request: Answer(410)
    user.task()
    user.task()
    assert [deliverer.attempt(claimed).status for claimed in deliverer.claim_user(user.user_id, 1)] == ["failed"]
    read = user.call("GET", f"/webhooks/{webhook['id']}").json["data"]
    assert (read["active"], read["disabled_reason"], read["version"]) == (False, "gone", 2)
    statuses = sorted((row["status"], row["last_status"] or 0) for row in rows(conn, user.user_id))
    assert statuses == [("failed", 0), ("failed", 410)]
    user.task()  # while inactive: not queued
    assert len(rows(conn, user.user_id)) == 2
    reactivated = user.call("PATCH", f"/webhooks/{webhook['id']}", json={"active": True}).json["data"]
    assert (reactivated["active"], reactivated["disabled_reason"], reactivated["version"]) == (True, None, 3)


@pytest.mark.parametrize(
    ("status", "retry_after", "expected"),
    [(503, "3600", 3600), (429, "100000", 86400), (429, "0", 1.0), (500, "3600", 1.0), (503, "soon", 1.0)],
)
def test_retry_after_on_429_and_503_is_honoured_when_longer_up_to_a_day(
    user, receiver, deliverer, conn, status, retry_after, expected
):
    user.webhook(receiver.url)
    receiver.answer = lambda _request: Answer(status, {"Retry-After": retry_after})
    user.task()
    deliver_due(deliverer, user.user_id)
    (row,) = rows(conn, user.user_id)
    waited = (row["next_attempt_at"] - row["last_attempt_at"]).total_seconds()
    assert expected <= waited <= expected + 3


def test_a_redirect_is_a_failed_attempt_and_is_not_followed(user, receiver, deliverer, conn):
    user.webhook(receiver.url + "/first")
    receiver.answer = lambda request: Answer(307, {"Location": receiver.url + "/elsewhere"})
    user.task()
    assert [d.status for d in deliver_due(deliverer, user.user_id)] == ["pending"]
    assert [request.path for request in receiver.received] == ["/first"]
    (row,) = rows(conn, user.user_id)
    assert (row["last_status"], row["last_error"]) == (307, "a redirect (not followed)")


def test_no_answer_within_the_timeout_is_a_failed_attempt(user, receiver, database, conn):
    deliverer = Deliverer(database, dataclasses.replace(DEV, timeout_seconds=0.5), jitter=lambda: 0.0)
    user.webhook(receiver.url)
    receiver.answer = lambda _request: Answer(200, delay=2)
    user.task()
    assert [d.status for d in deliver_due(deliverer, user.user_id)] == ["pending"]
    (row,) = rows(conn, user.user_id)
    assert (row["last_status"], row["last_error"]) == (None, "no answer within 0.5 s")


def test_a_refused_connection_is_a_failed_attempt(user, deliverer, conn):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    user.webhook(f"http://127.0.0.1:{port}/")
    user.task()
    assert [d.status for d in deliver_due(deliverer, user.user_id)] == ["pending"]
    assert rows(conn, user.user_id)[0]["last_error"] == "connection refused"


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::ffff:127.0.0.1]"])
def test_loopback_is_refused_at_every_attempt_unless_allowed_and_nothing_is_sent(user, receiver, database, conn, host):
    strict = Deliverer(database, dataclasses.replace(DEV, allow_private=False), jitter=lambda: 0.0)
    user.webhook(f"http://{host}:{receiver.port}/")
    user.task()
    assert [d.status for d in deliver_due(strict, user.user_id)] == ["pending"]
    assert receiver.received == []
    (row,) = rows(conn, user.user_id)
    assert row["last_status"] is None and row["last_error"].startswith("refused:")
    assert "not a public address" in row["last_error"]


def test_the_connection_goes_to_the_address_that_was_checked_with_one_lookup(user, receiver, deliverer, monkeypatch):
    lookups = []
    real = socket.getaddrinfo

    def counting(host, *args, **kwargs):
        lookups.append(host)
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", counting)
    user.webhook(f"http://localhost:{receiver.port}/named")
    user.task()
    assert [d.status for d in deliver_due(deliverer, user.user_id)] == ["succeeded"]
    assert lookups.count("localhost") == 1  # resolved once, checked, connected to by address
    assert receiver.received[0].headers["host"] == f"localhost:{receiver.port}"


def test_https_checks_the_certificate_for_the_urls_host_while_connecting_to_the_checked_address(
    user, deliverer, conn, tmp_path, monkeypatch
):
    cert_path, key_path = self_signed_certificate(tmp_path)
    with running_tls_receiver(cert_path, key_path) as tls:
        user.webhook(tls.url + "/secure")
        user.task()
        assert [d.status for d in deliver_due(deliverer, user.user_id)] == ["pending"]  # a certificate no one trusts
        (row,) = rows(conn, user.user_id)
        assert row["last_status"] is None and row["last_error"].startswith("TLS failed")
        assert tls.received == []
        trusting = ssl.create_default_context(cafile=cert_path)  # now trusted: for localhost, by name (SNI)
        monkeypatch.setattr(sending.ssl, "create_default_context", lambda: trusting)
        make_due(conn, user.user_id)
        assert [d.status for d in deliver_due(deliverer, user.user_id)] == ["succeeded"]
        assert [request.path for request in tls.received] == ["/secure"]


def test_a_deleted_webhooks_pending_deliveries_are_not_attempted(user, receiver, deliverer):
    webhook = user.webhook(receiver.url)
    user.task()
    assert user.call("DELETE", f"/webhooks/{webhook['id']}").status_code == 200
    assert deliver_due(deliverer, user.user_id) == []
    assert receiver.received == []


def test_a_write_racing_its_webhooks_delete_succeeds_and_what_it_queued_is_forgotten(
    user, receiver, deliverer, conn, database_url
):
    """The write's trigger reads the webhook while another transaction is deleting it: with a foreign
    key the write waited for that DELETE and then failed on the key (migration 0013)."""
    webhook = user.webhook(receiver.url + "/hook")
    answers: list = []
    with connect(database_url) as deleting:
        deleting.execute("DELETE FROM webhooks WHERE user_id = %s AND id = %s", [user.user_id, webhook["id"]])
        writer = threading.Thread(target=lambda: answers.append(user.call("POST", "/tasks", json={"title": "racing"})))
        writer.start()
        writer.join(timeout=10)  # with the key it waits here for the DELETE's commit
        deleting.commit()
    writer.join()
    assert answers[0].status_code == 201, answers[0].json
    (orphan,) = rows(conn, user.user_id)  # queued for the webhook the DELETE did not see it queue for
    assert orphan["status"] == "pending" and orphan["webhook_id"] == webhook["id"]
    assert deliver_due(deliverer, user.user_id) == []  # never attempted: its webhook is gone
    deliverer.forget_old()
    assert rows(conn, user.user_id) == []
    assert receiver.received == []


def test_a_paused_webhooks_pending_deliveries_wait_and_resume(user, receiver, deliverer, conn):
    webhook = user.webhook(receiver.url)
    user.task()
    user.call("PATCH", f"/webhooks/{webhook['id']}", json={"active": False})
    assert deliver_due(deliverer, user.user_id) == []
    user.call("PATCH", f"/webhooks/{webhook['id']}", json={"active": True})
    assert [d.status for d in deliver_due(deliverer, user.user_id)] == ["succeeded"]


def test_the_test_event_reaches_that_webhook_alone(user, receiver, deliverer):
    first = user.webhook(receiver.url + "/first", events=["task.deleted"])
    user.webhook(receiver.url + "/second")
    response = user.call("POST", f"/webhooks/{first['id']}/test")
    assert response.status_code == 202
    deliver_due(deliverer, user.user_id)
    (request,) = receiver.received
    assert request.path == "/first"
    payload = request.verify(first["secret"])
    assert payload["type"] == "webhook.test" and payload["data"]["id"] == first["id"]
    assert "secret" not in payload["data"]
    assert request.headers["webhook-id"] == response.json["data"]["id"]


def test_two_deliverers_claim_each_attempt_once(user, receiver, database):
    user.webhook(receiver.url)
    for _ in range(20):
        user.task()
    claims: list = []
    deliverers = [Deliverer(database, DEV) for _ in range(2)]
    run_together(*(lambda d=d: claims.extend(d.claim_user(user.user_id, 15)) for d in deliverers))
    claimed = [c.delivery_id for c in claims]
    assert len(claimed) == len(set(claimed)) == 20


def test_each_attempt_logs_one_line_without_the_query_string_secret_or_body(user, receiver, deliverer, caplog):
    caplog.set_level(logging.INFO, logger="todo_api.webhooks.deliver")
    webhook = user.webhook(receiver.url + "/hook?signature=topsecret")
    user.task(title="Private title")
    deliver_due(deliverer, user.user_id)
    attempts = [r for r in caplog.records if r.name == "todo_api.webhooks.deliver"]
    (record,) = [r for r in attempts if getattr(r, "user_id", None) == user.user_id]
    assert record.event == "webhook.attempt"
    assert (record.webhook_id, record.type, record.attempt, record.status) == (webhook["id"], "task.created", 1, 200)
    assert record.delivery_id == receiver.received[0].headers["webhook-id"]
    assert isinstance(record.duration_ms, float)
    text = repr(record.__dict__)
    assert "topsecret" not in text and webhook["secret"] not in text and "Private title" not in text


def test_decide_keeps_retry_after_to_429_and_503_and_jitters_within_ten_percent():
    from todo_api.webhooks.deliver import decide

    assert decide(1, Outcome(500, "HTTP 500"), (100.0,), 1.0).retry_in == pytest.approx(110.0)
    assert decide(1, Outcome(500, "HTTP 500"), (100.0,), -1.0).retry_in == pytest.approx(90.0)
    assert decide(2, Outcome(500, "HTTP 500"), (100.0,), 0.0).status == "failed"
    assert decide(1, Outcome(201), (100.0,), 0.0).status == "succeeded"


# --- reminders ------------------------------------------------------------------------------


def set_remind_at(conn, user_id: str, task_id: int, ago: timedelta) -> None:
    conn.execute(
        "UPDATE tasks SET remind_at = now() - %s, version = version + 1 WHERE user_id = %s AND id = %s",
        [ago, user_id, task_id],
    )


def reminders(conn, user_id: str) -> list[dict]:
    return [row["payload"] for row in rows(conn, user_id) if row["event"] == "reminder.due"]


def test_a_due_reminder_is_sent_once_per_remind_at_value_and_rearmed_by_a_change(user, receiver, deliverer, conn):
    webhook = user.webhook(receiver.url, events=["reminder.due"])
    task = user.task(remind_at="2000-01-01T00:00:00Z")  # long past: skipped
    not_yet = user.task(remind_at="2999-01-01T00:00:00Z")
    deliverer.send_reminders()
    assert reminders(conn, user.user_id) == []
    set_remind_at(conn, user.user_id, task["id"], timedelta(minutes=1))
    deliverer.send_reminders()
    deliverer.send_reminders()
    assert len(reminders(conn, user.user_id)) == 1
    set_remind_at(conn, user.user_id, task["id"], timedelta(minutes=2))  # a new value: armed again
    deliverer.send_reminders()
    sent = reminders(conn, user.user_id)
    assert len(sent) == 2 and {payload["data"]["id"] for payload in sent} == {task["id"]}
    deliver_due(deliverer, user.user_id)
    assert [request.verify(webhook["secret"])["type"] for request in receiver.received] == ["reminder.due"] * 2
    assert not_yet["id"] not in {payload["data"]["id"] for payload in sent}


def test_a_reminder_older_than_a_day_is_skipped_and_a_completed_or_deleted_task_cancels_it(user, deliverer, conn):
    user.webhook("http://127.0.0.1:9/", events=["reminder.due"])
    old, done, gone = user.task(), user.task(), user.task()
    set_remind_at(conn, user.user_id, old["id"], timedelta(hours=25))
    set_remind_at(conn, user.user_id, done["id"], timedelta(minutes=1))
    set_remind_at(conn, user.user_id, gone["id"], timedelta(minutes=1))
    user.call("PATCH", f"/tasks/{done['id']}/complete")
    user.call("DELETE", f"/tasks/{gone['id']}")
    deliverer.send_reminders()
    assert reminders(conn, user.user_id) == []


def test_a_reminder_goes_only_to_webhooks_subscribed_to_it(user, deliverer, conn):
    user.webhook("http://127.0.0.1:9/", events=["task.created"])
    task = user.task()
    set_remind_at(conn, user.user_id, task["id"], timedelta(minutes=1))
    deliverer.send_reminders()
    assert reminders(conn, user.user_id) == []


def test_several_processes_send_a_reminder_once(user, database, conn):
    user.webhook("http://127.0.0.1:9/", events=["*"])
    task = user.task()
    set_remind_at(conn, user.user_id, task["id"], timedelta(minutes=1))
    deliverers = [Deliverer(database, DEV) for _ in range(4)]
    run_together(*(d.send_reminders for d in deliverers))
    assert len(reminders(conn, user.user_id)) == 1


def test_retention_forgets_ended_deliveries_past_the_days_and_old_reminder_marks(user, receiver, deliverer, conn):
    user.webhook(receiver.url)
    old, recent = user.task(), user.task()
    deliver_due(deliverer, user.user_id)
    conn.execute(
        """UPDATE webhook_deliveries SET ended_at = now() - interval '8 days'
           WHERE user_id = %s AND payload->'data'->'id' = to_jsonb(%s::bigint)""",
        [user.user_id, old["id"]],
    )
    conn.execute(
        "INSERT INTO task_reminders (user_id, task_id, remind_at) VALUES (%s, 1, now() - interval '3 days'),"
        " (%s, 2, now() - interval '1 hour')",
        [user.user_id, user.user_id],
    )
    deliverer.forget_old()
    kept = [row["payload"]["data"]["id"] for row in rows(conn, user.user_id)]
    assert kept == [recent["id"]]
    marks = conn.execute("SELECT task_id FROM task_reminders WHERE user_id = %s", [user.user_id]).fetchall()
    assert [mark["task_id"] for mark in marks] == [2]
