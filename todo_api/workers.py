"""The gunicorn worker class the service runs with: gthread, tolerating a shut listening socket.

On SIGTERM, gunicorn.conf.py shuts the listening socket down so that new connections are refused
while in-flight requests finish. A worker that polls the socket in that instant sees it readable
and `accept()` fails with EINVAL; the stock worker would crash there, this one carries on: the
master is stopping and the worker's own SIGTERM is on its way.
"""

from __future__ import annotations

import errno

from gunicorn.workers.gthread import ThreadWorker


class StoppableThreadWorker(ThreadWorker):
    def accept(self, listener):
        try:
            super().accept(listener)
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
