"""gunicorn settings: `gunicorn -c gunicorn.conf.py wsgi:app` (production, Dockerfile, todo-api serve)."""

import multiprocessing
import os
import socket
import sys

from todo_api.config import ConfigError, load_settings
from todo_api.logs import gunicorn_logconfig

try:  # bad configuration stops the master with one line, before any worker starts
    _settings = load_settings()
except ConfigError as error:
    print(error, file=sys.stderr)
    sys.exit(2)

bind = [f"{os.environ.get('HOST', '0.0.0.0')}:{os.environ.get('PORT', '8000')}"]
workers = int(os.environ.get("WEB_CONCURRENCY") or multiprocessing.cpu_count() * 2 + 1)
worker_class = "todo_api.workers.StoppableThreadWorker"  # gthread; see when_ready
threads = 4
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None  # the app logs one line per request instead
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


def post_worker_init(worker):
    """Open this worker's pool now that it has forked, so the first request finds it warm."""
    worker.wsgi.extensions["todo_api.db"].pool  # noqa: B018


def worker_exit(server, worker):
    """Close the pool's connections cleanly when the worker stops (SIGTERM, max requests, reload)."""
    app = getattr(worker, "wsgi", None)
    if app is not None:
        app.extensions["todo_api.db"].close()
