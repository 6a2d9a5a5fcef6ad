"""GET /metrics: Prometheus text format for the whole service, however many workers serve it.

OPERATIONS.md "Metrics": requests by route template, method and status with a latency histogram,
the database pool's size / in use / waiting, database errors by kind; no auth, `METRICS_ENABLED=false`
turns it off (no route, no per-request hook: /metrics is then a 404 like any unknown path).

Summed over gunicorn's workers with prometheus_client's multiprocess mode: each worker writes its
figures to memory-mapped files in PROMETHEUS_MULTIPROC_DIR and a scrape, whichever worker answers
it, reads every worker's files. prometheus_client picks that storage when it is imported, so
gunicorn.conf.py sets the directory before it imports todo_api (a fresh private one unless the
operator gave one) and marks a dead worker's gauges gone (`child_exit`). Without the variable (the
Flask test client, `flask run`) the figures are this process's own.

Labels hold only what the code fixes: a route's template (never the raw path, which holds user ids),
a method from a fixed list, a status, an error kind; never a user id, a title or a token.

The pool's gauges are copied from Database.pool_stats() by a thread per worker every
POOL_SAMPLE_SECONDS (a scrape reaches one worker only; the others must have written theirs), and
by the scrape itself for the worker that answers it.

Other features add their own figures with `add_collector(app, collector)`: a prometheus_client
collector whose `collect()` runs at scrape time (docs/metrics.md).
"""

from __future__ import annotations

import threading
import time

from flask import Blueprint, Flask, Response, current_app, g, request
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess, values
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector

from .db import Database

bp = Blueprint("metrics", __name__)

# Whether prometheus_client stores figures in PROMETHEUS_MULTIPROC_DIR (it decided as it was imported).
MULTIPROCESS = values.ValueClass._multiprocess
UNMATCHED = "unmatched"  # the route of a request no rule matched (404, 405): never its raw path
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})  # any other: "other"
DATABASE_ERROR_KINDS = ("unavailable", "timeout", "pool_timeout", "read_only", "commit_unconfirmed", "other")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
POOL_SAMPLE_SECONDS = 1.0

_PROCESS_REGISTRY = CollectorRegistry()  # this process's figures, scraped as they are without gunicorn

REQUESTS = Counter(
    "todo_api_http_requests",
    "HTTP requests answered, by route template, method and status.",
    ["route", "method", "status"],
    registry=_PROCESS_REGISTRY,
)
LATENCY = Histogram(
    "todo_api_http_request_duration_seconds",
    "Time from the request's start in the app to its answer, by route template and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
    registry=_PROCESS_REGISTRY,
)
DATABASE_ERRORS = Counter(
    "todo_api_db_errors",
    "Database errors answered 503, by kind.",
    ["kind"],
    registry=_PROCESS_REGISTRY,
)
# livesum: the sum over the workers alive now (a dead worker's files are dropped in child_exit).
POOL_SIZE = Gauge(
    "todo_api_db_pool_size",
    "Connections the pools hold (open or opening).",
    multiprocess_mode="livesum",
    registry=_PROCESS_REGISTRY,
)
POOL_IN_USE = Gauge(
    "todo_api_db_pool_in_use",
    "Connections lent to requests.",
    multiprocess_mode="livesum",
    registry=_PROCESS_REGISTRY,
)
POOL_WAITING = Gauge(
    "todo_api_db_pool_waiting",
    "Requests waiting for a connection.",
    multiprocess_mode="livesum",
    registry=_PROCESS_REGISTRY,
)

# labels() checks and locks on every call; a request needs only a dict lookup (bounded: the routes,
# METHODS and the statuses the app answers).
_request_series: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}
# Every kind shows from the start, at 0, so a rate over it has a baseline.
_database_errors = {kind: DATABASE_ERRORS.labels(kind) for kind in DATABASE_ERROR_KINDS}


class Metrics:
    """An app's metrics state: the collectors features added, and the pool sampler of this worker."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.added = CollectorRegistry()
        self.sampler: threading.Thread | None = None


def init_app(app: Flask, enabled: bool) -> None:
    """The route and the per-request hook, where metrics are on; `add_collector` works either way."""
    app.extensions["todo_api.metrics"] = Metrics(enabled)
    if enabled:
        app.after_request(observe_request)
        app.register_blueprint(bp)


def add_collector(app: Flask, collector: Collector) -> None:
    """Serve `collector`'s metrics on /metrics too: its `collect()` runs at each scrape, in the worker
    that answers it (so it should read shared state, such as the database, not one worker's memory)."""
    app.extensions["todo_api.metrics"].added.register(collector)


def observe_request(response: Response) -> Response:
    """after_request: count the request and its latency (from logs.start_request's g.started)."""
    rule = request.url_rule
    route = rule.rule if rule is not None else UNMATCHED
    method = request.method if request.method in METHODS else "other"
    key = (route, method, str(response.status_code))
    series = _request_series.get(key)
    if series is None:
        series = _request_series[key] = (REQUESTS.labels(*key), LATENCY.labels(route, method))
    series[0].inc()
    series[1].observe(time.perf_counter() - g.started)
    return response


def count_database_error(kind: str) -> None:
    """One more database error of `kind` (one of DATABASE_ERROR_KINDS) answered 503."""
    _database_errors[kind].inc()


def sample_pool(database: Database) -> None:
    """Copy this process's pool figures into the gauges (zeros while it has no pool open)."""
    stats = database.pool_stats()
    POOL_SIZE.set(stats["size"])
    POOL_IN_USE.set(stats["in_use"])
    POOL_WAITING.set(stats["waiting"])


def start_pool_sampling(app: Flask) -> None:
    """In a gunicorn worker (post_worker_init): keep this worker's pool gauges fresh for scrapes that
    other workers answer. A daemon thread: it ends with the worker."""
    state: Metrics = app.extensions["todo_api.metrics"]
    if not state.enabled or state.sampler is not None:
        return
    database = app.extensions["todo_api.db"]

    def run() -> None:
        while True:
            sample_pool(database)
            time.sleep(POOL_SAMPLE_SECONDS)

    state.sampler = threading.Thread(target=run, name="todo-api-pool-sampler", daemon=True)
    state.sampler.start()


@bp.get("/metrics")
def scrape() -> Response:
    """Every worker's figures, summed, then those of the collectors features added."""
    sample_pool(current_app.extensions["todo_api.db"])
    if MULTIPROCESS:
        workers = CollectorRegistry()
        multiprocess.MultiProcessCollector(workers)
        body = generate_latest(workers)
    else:
        body = generate_latest(_PROCESS_REGISTRY)
    body += generate_latest(current_app.extensions["todo_api.metrics"].added)
    return current_app.response_class(body, content_type=CONTENT_TYPE_PLAIN_0_0_4)
