"""gunicorn settings: `gunicorn -c gunicorn.conf.py wsgi:app` (production, Dockerfile, todo-api serve)."""

import glob
import multiprocessing
import os
import shutil
import socket
import sys
import tempfile

# Where each worker keeps its figures for /metrics to sum (prometheus_client's multiprocess mode). It
# must be set before prometheus_client is imported, which picks its storage then: so before todo_api
# is. A fresh private directory (0700) unless the operator gave one; the master removes the one it
# made as it exits (on_exit), known by a marker file (a HUP runs this file again, the variable set).
OWN_METRICS_DIR_MARKER = "made-by-todo-api"
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="todo-api-metrics-")
    open(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], OWN_METRICS_DIR_MARKER), "x").close()
try:
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], mode=0o700, exist_ok=True)
except OSError as error:
    print(f"configuration error: PROMETHEUS_MULTIPROC_DIR cannot be made: {error.strerror}", file=sys.stderr)
    sys.exit(2)

from prometheus_client import multiprocess

from todo_api.platform.config import ConfigError, load_settings
from todo_api.platform.logs import gunicorn_logconfig
from todo_api.platform.metrics import start_pool_sampling


def _count(name, default):
    """A positive whole number from the environment, or the one-line configuration error."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise ConfigError(name, f"must be a whole number of at least 1, got {raw!r}")
    return int(raw)


try:  # bad configuration stops the master with one line, before any worker starts
    _settings = load_settings()
    _port = _count("PORT", 8000)
    _workers = _count("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2 + 1)
    _threads = _count("WEB_THREADS", 2)
except ConfigError as error:
    print(error, file=sys.stderr)
    sys.exit(2)

bind = [f"{os.environ.get('HOST', '0.0.0.0')}:{_port}"]
workers = _workers
worker_class = "todo_api.platform.workers.ApiThreadWorker"  # gthread; see todo_api/platform/workers.py and when_ready
# Threads overlap the database round trips of one worker's requests. More than a couple costs
# throughput on a loopback database (GIL hand-offs; docs/performance.md); raise WEB_THREADS when
# the database is across a network (Neon), where each request waits milliseconds on it.
threads = _threads
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None  # the app logs one line per request instead
logger_class = "todo_api.platform.workers.AppLogger"  # and gunicorn does not even prepare its access-log line
# gunicorn 27's runtime control socket is unused here, and every instance on a host would share
# its default path ($XDG_RUNTIME_DIR/gunicorn.ctl).
control_socket_disable = True
logconfig_dict = gunicorn_logconfig(_settings.log_level, _settings.log_format)


def when_ready(server):
    """On SIGTERM, stop listening before the workers drain, so new connections are refused at once.

    gunicorn closes the master's copy of the listening socket, but each worker keeps its own until
    its in-flight requests finish; meanwhile the kernel would still queue new connections that no
    one serves. Shutting the shared socket down (not on a HUP reload: only on SIGTERM) refuses them.
    """
    stop = server.handle_term

    def handle_term():
        for listener in server.LISTENERS:
            listener.shutdown(socket.SHUT_RD)
        stop()

    server.handle_term = handle_term


def on_starting(server):
    """Start /metrics from zero: a previous run's files in an operator's PROMETHEUS_MULTIPROC_DIR would
    be summed with this run's (prometheus_client asks for the directory to be emptied between runs)."""
    for stale in glob.glob(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], "*.db")):
        os.remove(stale)


def post_worker_init(worker):
    """Open this worker's pool now that it has forked, so the first request finds it warm, and keep its
    pool gauges fresh for /metrics."""
    worker.wsgi.extensions["todo_api.db"].pool  # noqa: B018
    start_pool_sampling(worker.wsgi)


def child_exit(server, worker):
    """A worker gone (stopped, killed, recycled): its pool gauges no longer count in /metrics' sums.
    Its counters still do, so that totals never go down."""
    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    """Remove the PROMETHEUS_MULTIPROC_DIR this file made (an operator's own is left as it is)."""
    directory = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    if os.path.exists(os.path.join(directory, OWN_METRICS_DIR_MARKER)):
        shutil.rmtree(directory, ignore_errors=True)


def worker_exit(server, worker):
    """Close the pool's connections cleanly when the worker stops (SIGTERM, max requests, reload)."""
    app = getattr(worker, "wsgi", None)
    if app is not None:
        app.extensions["todo_api.db"].close()
