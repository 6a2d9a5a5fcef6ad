"""Webhook figures on /metrics (OPERATIONS.md "Metrics"): deliveries pending and the age of the oldest
one, and the ended ones kept by outcome, read from the database at each scrape by the worker that
answers it (the database's figure, not a sum over workers; docs/metrics.md).

The statement reads every user's deliveries, so on Citus every shard: the one statement of the web
service allowed to fan out, with the single-shard guard lifted for its own transaction only. A scrape
must not hang or fail while the database does: the read gives up after READ_TIMEOUT_SECONDS waiting
for a connection and STATEMENT_TIMEOUT_MS running, and then the figures are left out, with
`todo_api_webhook_metrics_up 0`, while the rest of /metrics is served.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import psycopg
from flask import Flask
from prometheus_client.core import GaugeMetricFamily, Metric

from ..platform import metrics
from ..platform.db import Database, Row

log = logging.getLogger("todo_api.webhooks.metrics")

READ_TIMEOUT_SECONDS = 1.0  # waiting for a pooled connection: a scrape must not wait DB_POOL_TIMEOUT
STATEMENT_TIMEOUT_MS = 1000
OUTCOMES = ("succeeded", "failed")


class DeliveryCollector:
    """A prometheus_client collector: one read of the deliveries table per scrape."""

    def __init__(self, database: Database):
        self.database = database

    def collect(self) -> Iterator[Metric]:
        figures = self.read()
        yield GaugeMetricFamily(
            "todo_api_webhook_metrics_up",
            "1 if this scrape read the webhook figures from the database, 0 if it gave up (they are absent).",
            value=0 if figures is None else 1,
        )
        if figures is None:
            return
        yield GaugeMetricFamily(
            "todo_api_webhook_deliveries_pending", "Webhook deliveries not yet ended.", value=figures["pending"]
        )
        yield GaugeMetricFamily(
            "todo_api_webhook_oldest_pending_seconds",
            "Age of the oldest pending webhook delivery (0 when none is pending).",
            value=figures["oldest_pending_seconds"],
        )
        ended = GaugeMetricFamily(
            "todo_api_webhook_deliveries_ended",
            "Webhook deliveries ended and still kept (WEBHOOK_RETENTION_DAYS), by outcome.",
            labels=["outcome"],
        )
        for outcome in OUTCOMES:
            ended.add_metric([outcome], figures[outcome])
        yield ended

    def read(self) -> Row | None:
        """The figures, or None if the database did not give them in time (said in one warning)."""
        try:
            with self.database.transaction(pool_timeout=READ_TIMEOUT_SECONDS) as db:
                db.fetch_one("allow_delivery_metrics_fan_out", {"timeout_ms": str(STATEMENT_TIMEOUT_MS)})
                return db.fetch_one("count_deliveries_by_status", {})
        except psycopg.Error as error:  # PoolTimeout included
            log.warning(
                "the webhook figures of /metrics could not be read: left out of this scrape",
                extra={"event": "webhooks.metrics_unavailable", "error_kind": type(error).__name__},
            )
            return None


def register(app: Flask, database: Database) -> None:
    """Serve the webhook figures on `app`'s /metrics."""
    metrics.add_collector(app, DeliveryCollector(database))
