"""gunicorn settings: `gunicorn -c gunicorn.conf.py wsgi:app` (production, Dockerfile, todo-api serve)."""

import multiprocessing
import os
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
worker_class = "sync"
timeout = 30
graceful_timeout = 20
keepalive = 5
accesslog = None  # the app logs one line per request instead
logconfig_dict = gunicorn_logconfig(_settings.log_level, _settings.log_format)


def post_worker_init(worker):
    """Open this worker's pool now that it has forked, so the first request finds it warm."""
    worker.wsgi.extensions["todo_api.db"].pool  # noqa: B018


def worker_exit(server, worker):
    """Close the pool's connections cleanly when the worker stops (SIGTERM, max requests, reload)."""
    app = getattr(worker, "wsgi", None)
    if app is not None:
        app.extensions["todo_api.db"].close()
