"""`todo-api deliver`: sends what the outbox holds (API.md §10), as many processes as you like.

Each pass finds users with due deliveries (a scan over every user: on Citus, over every shard, which
only this process does; docs/webhooks.md), then claims one user's due deliveries at a time with
`FOR UPDATE SKIP LOCKED`, a statement routed to that user's shard. A claim counts the attempt and
pushes next_attempt_at past the attempt's deadline, and commits at once: no transaction stays open
while a receiver answers, and a process killed mid-attempt leaves the delivery due again when that
lease runs out (delivery is at least once; the webhook-id lets a receiver drop the repeat).
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from ..platform.config import WebhookSettings
from ..platform.db import Database, QueryError
from . import sending

log = logging.getLogger("todo_api.webhooks.deliver")

# Every named statement of sql/webhooks.sql this process runs: checked when it starts.
QUERY_NAMES = (
    "find_users_with_due_deliveries",
    "claim_due_deliveries",
    "finish_attempt",
    "hand_back_attempt",
    "disable_gone_webhook",
    "find_users_with_reminder_webhooks",
    "send_due_reminders",
    "forget_ended_deliveries",
    "forget_orphaned_deliveries",
    "forget_old_reminders",
)
LEASE_MARGIN_SECONDS = 5.0  # beyond WEBHOOK_TIMEOUT_SECONDS: recording the outcome
POLL_SECONDS = 0.1  # between scans while nothing is due
REMINDER_SECONDS = 10.0  # between scans for due reminders (sent within 60 s, API.md §10)
RETENTION_SECONDS = 3600.0
USERS_PER_SCAN = 100
STOP_GRACE_SECONDS = 5.0  # beyond WEBHOOK_TIMEOUT_SECONDS when stopping (OPERATIONS.md: exit within +10 s)
JITTER = 0.1  # each retry delay ±10 %


@dataclass(frozen=True)
class Claimed:
    """One claimed attempt of one delivery: what it needs to send, and its number (the claim's mark)."""

    user_id: str
    delivery_id: str
    webhook_id: int
    event: str
    payload: dict[str, Any]
    attempt: int
    url: str
    secret: str


@dataclass(frozen=True)
class Decision:
    """How an attempt ends its delivery: 'succeeded', 'failed', or 'pending' again after `retry_in` seconds."""

    status: str
    retry_in: float = 0.0
    gone: bool = False


def decide(attempt: int, outcome: sending.Outcome, schedule: tuple[float, ...], jitter: float) -> Decision:
    """The retry rules of API.md §10 for the `attempt`-th attempt; `jitter` in [-1, 1] scales ±10 %."""
    if outcome.succeeded:
        return Decision("succeeded")
    if outcome.status == 410:
        return Decision("failed", gone=True)
    if attempt > len(schedule):
        return Decision("failed")
    delay = schedule[attempt - 1] * (1 + JITTER * jitter)
    if outcome.retry_after is not None:  # only on a 429 or 503 (sending.py), already at most 24 h
        delay = max(delay, outcome.retry_after)
    return Decision("pending", delay)


class Deliverer:
    """The delivery process's work, in steps a test can drive one at a time."""

    def __init__(self, database: Database, settings: WebhookSettings, *, jitter: Callable[[], float] | None = None):
        missing = sorted(set(QUERY_NAMES) - set(database.queries))
        if missing:
            raise QueryError(f"sql/ has no query named {', '.join(missing)}")
        self.database = database
        self.settings = settings
        self._jitter = jitter or (lambda: random.uniform(-1, 1))

    def claim(self, limit: int) -> list[Claimed]:
        """Claim up to `limit` due attempts, one user's statement at a time, users in random order so
        that several processes spread over them."""
        users = [
            row["user_id"]
            for row in self.database.fetch_all("find_users_with_due_deliveries", {"limit": USERS_PER_SCAN})
        ]
        random.shuffle(users)
        claimed: list[Claimed] = []
        for user_id in users:
            if len(claimed) >= limit:
                break
            claimed += self.claim_user(user_id, limit - len(claimed))
        return claimed

    def claim_user(self, user_id: str, limit: int) -> list[Claimed]:
        """Claim up to `limit` of one user's due attempts (one statement, on that user's shard)."""
        lease = self.settings.timeout_seconds + LEASE_MARGIN_SECONDS
        params = {"user_id": user_id, "limit": limit, "lease_seconds": lease}
        return [
            Claimed(
                user_id=row["user_id"],
                delivery_id=str(row["id"]),
                webhook_id=row["webhook_id"],
                event=row["event"],
                payload=row["payload"],
                attempt=row["attempts"],
                url=row["url"],
                secret=row["secret"],
            )
            for row in self.database.fetch_all("claim_due_deliveries", params)
        ]

    def attempt(self, claimed: Claimed) -> Decision:
        """Send one claimed attempt, record how it went, and log it (never the URL's query, the secret
        or the body)."""
        body = json.dumps(claimed.payload, separators=(",", ":"), ensure_ascii=False).encode()
        started = time.monotonic()
        outcome = sending.post(
            claimed.url,
            body,
            sending.headers(claimed.secret, claimed.delivery_id, body),
            timeout=self.settings.timeout_seconds,
            allow_private=self.settings.allow_private,
        )
        duration_ms = round((time.monotonic() - started) * 1000, 1)
        decision = decide(claimed.attempt, outcome, self.settings.retry_schedule, self._jitter())
        self._record(claimed, outcome, decision)
        log.info(
            "webhook.attempt",
            extra={
                "event": "webhook.attempt",
                "user_id": claimed.user_id,
                "webhook_id": claimed.webhook_id,
                "delivery_id": claimed.delivery_id,
                "type": claimed.event,
                "attempt": claimed.attempt,
                **({"status": outcome.status} if outcome.status is not None else {}),
                **({"error": outcome.error} if outcome.error and outcome.status is None else {}),
                "outcome": decision.status,
                "duration_ms": duration_ms,
            },
        )
        return decision

    def _record(self, claimed: Claimed, outcome: sending.Outcome, decision: Decision) -> None:
        params = {
            "user_id": claimed.user_id,
            "delivery_id": claimed.delivery_id,
            "attempts": claimed.attempt,
            "status": decision.status,
            "last_status": outcome.status,
            "last_error": None if outcome.succeeded else outcome.error,
            "retry_in_seconds": decision.retry_in,
        }
        if not decision.gone:
            self.database.fetch_one("finish_attempt", params)
            return
        with self.database.transaction() as run:
            run.fetch_one("finish_attempt", params)
            run.fetch_all(
                "disable_gone_webhook",
                {"user_id": claimed.user_id, "webhook_id": claimed.webhook_id, "delivery_id": claimed.delivery_id},
            )

    def hand_back(self, claimed: Claimed) -> None:
        """Give an attempt back uncounted, due at once (stopping before it could finish)."""
        params = {"user_id": claimed.user_id, "delivery_id": claimed.delivery_id, "attempts": claimed.attempt}
        self.database.fetch_one("hand_back_attempt", params)

    def send_reminders(self) -> int:
        """Fire every due reminder of the users with a webhook subscribed to them; returns how many."""
        fired = 0
        for row in self.database.fetch_all("find_users_with_reminder_webhooks", {}):
            result = self.database.fetch_one("send_due_reminders", {"user_id": row["user_id"]})
            fired += result["fired"] if result else 0
        return fired

    def forget_old(self) -> None:
        """Retention: ended deliveries past WEBHOOK_RETENTION_DAYS, pending ones whose webhook is gone,
        reminder marks past their window."""
        with self.database.transaction() as run:
            run.execute("forget_ended_deliveries", {"retention_days": self.settings.retention_days})
            run.execute("forget_orphaned_deliveries", {})
            run.execute("forget_old_reminders", {})

    def run(self, stop: threading.Event) -> None:
        """Deliver until `stop` is set; then let the attempts in flight finish within the timeout (and
        a grace), and hand back any that did not."""
        executor = ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="webhook-attempt")
        in_flight: dict[Future[Decision], Claimed] = {}
        chores = _Chores({self.send_reminders: REMINDER_SECONDS, self.forget_old: RETENTION_SECONDS})
        try:
            while not stop.is_set():
                for future in [future for future in in_flight if future.done()]:
                    del in_flight[future]
                free = self.settings.concurrency - len(in_flight)
                claimed = _guarded(lambda free=free: self.claim(free) if free else [], [])
                for attempt in claimed:
                    in_flight[executor.submit(self.attempt, attempt)] = attempt
                chores.run_due()
                if len(claimed) < free or not free:  # nothing more due now, or no room: wait a little
                    if in_flight:
                        wait(in_flight, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
                    else:
                        stop.wait(POLL_SECONDS)
        finally:
            _, unfinished = wait(in_flight, timeout=self.settings.timeout_seconds + STOP_GRACE_SECONDS)
            for future in unfinished:
                _guarded(lambda future=future: self.hand_back(in_flight[future]), None)
            executor.shutdown(wait=False, cancel_futures=True)


class _Chores:
    """Periodic work, each on its own interval, the first run at once."""

    def __init__(self, intervals: dict[Callable[[], Any], float]):
        self._intervals = intervals
        self._next = dict.fromkeys(intervals, 0.0)

    def run_due(self) -> None:
        now = time.monotonic()
        for chore, at in self._next.items():
            if now >= at:
                self._next[chore] = now + self._intervals[chore]
                _guarded(chore, None)


def _guarded(step: Callable[[], Any], fallback: Any) -> Any:
    """Run a step that talks to the database; when it fails (the database away, say), log it and carry
    on: the next pass tries again, and nothing is lost meanwhile (the outbox waits)."""
    try:
        return step()
    except (psycopg.Error, PoolTimeout) as error:
        log.warning(
            "a database step of the delivery process failed; retrying",
            extra={"event": "webhook.db_error", "error_kind": type(error).__name__},
        )
        time.sleep(1)
        return fallback


def open_database(url: str, settings: WebhookSettings, statement_timeout_ms: int) -> Database:
    """The delivery process's pool: a connection per attempt in flight, and one for the scans."""
    return Database(
        url,
        min_size=1,
        max_size=settings.concurrency + 2,
        timeout=10,
        statement_timeout_ms=statement_timeout_ms,
    )
