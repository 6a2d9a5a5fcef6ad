"""gunicorn classes the service runs with (gunicorn.conf.py).

The worker, gthread tolerating a shut listening socket: on SIGTERM, gunicorn.conf.py shuts the listening socket down so that new connections are refused
while in-flight requests finish. A worker that polls the socket in that instant sees it readable
and `accept()` fails with EINVAL; the stock worker would crash there, this one carries on: the
master is stopping and the worker's own SIGTERM is on its way.
"""

from __future__ import annotations

import errno

from gunicorn.glogging import Logger
from gunicorn.workers.gthread import ThreadWorker


class StoppableThreadWorker(ThreadWorker):
    def accept(self, listener):
        try:
            super().accept(listener)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise


class AppLogger(Logger):
    """gunicorn's logger without its access log: the app writes one line per request itself.

    With `logconfig_dict` set, stock gunicorn assembles the access-log fields of every request
    (a dozen lookups and a strftime) and only then finds the access logger silenced.
    """

    def access(self, resp, req, environ, request_time):
        return None
