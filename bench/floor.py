"""The floor: a bare Flask app answering a constant envelope. No Flask service can beat it here.

`/floor/db` is the same answer after one database round trip (`SELECT 1` on a pooled, autocommit
connection): the least any endpoint that reads PostgreSQL can do, to tell the cost of the round
trip itself from the cost of the service's own code.
"""

import os
import threading

from flask import Flask
from psycopg_pool import ConnectionPool

app = Flask(__name__)
BODY = '{"data": {"status": "ok"}, "meta": {"request_id": "floor"}}'
_pool: ConnectionPool | None = None
_pool_lock = threading.Lock()


def _connection_pool() -> ConnectionPool:
    """Opened on first use, so in the worker process (after gunicorn's fork), never shared across it."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ConnectionPool(os.environ["DATABASE_URL"], min_size=2, max_size=4, kwargs={"autocommit": True})
            _pool.wait()
        return _pool


@app.get("/floor")
def floor():
    return app.response_class(BODY, mimetype="application/json")


@app.get("/floor/db")
def floor_with_a_round_trip():
    with _connection_pool().connection() as conn:
        conn.execute("SELECT 1").fetchone()
    return app.response_class(BODY, mimetype="application/json")
