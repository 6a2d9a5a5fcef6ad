"""Pool lifecycle, the named-query loader, and the small helpers views run statements with.

Every statement runs under DB_STATEMENT_TIMEOUT_MS and with TimeZone UTC, both set for its own
transaction only (so they also hold behind PgBouncer in transaction mode, which does not carry
`options=-c ...`), and is committed before the response exists. UTC makes results independent of
the database's or role's TimeZone: in Europe/Berlin, 9999-12-31T23:30:00Z is in year 10000 locally,
which psycopg cannot read back (and west of UTC, 0001-01-01T00:00:00Z falls in 1 BC).

- `fetch_one` / `fetch_all` run one statement in one round trip: the timeout and the statement go
  out together in a pipeline and form one implicit transaction, committed at its Sync.
- Where the database's or role's own defaults already are that timeout and UTC (`todo-api
  set-db-defaults` makes them so), the statement goes out alone: every server connection starts
  with those defaults, behind PgBouncer too, so setting them again per transaction is wasted work
  (docs/performance.md has its cost). Each new pooled connection checks them (`defaults_hold`); the
  first one that does not match puts this pool back on the per-transaction settings for good.
- `transaction()` is for work of several statements that depend on each other: BEGIN with the
  timeout, the statements, then COMMIT as the `with` block ends.

A commit that waits for a synchronous standby is outside the statement timeout (PostgreSQL turns it
off before that wait). The pool's `Watchdog` cancels a round trip that is still running
DB_STATEMENT_TIMEOUT_MS after it started; a commit whose wait was cut short (by it or by anyone)
holds on this server but might not survive a failover, so it raises `CommitUnconfirmed` (a 503:
the client's retry with its Idempotency-Key finds it) and is never acknowledged. A server that
turned read-only under the pool (a demoted primary) raises `ServerReadOnly` (a 503) and every
connection to it is dropped: new ones go to the host that DATABASE_URL's
`target_session_attrs=read-write` finds.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import select
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from flask import current_app, g, has_request_context
from psycopg import pq, sql
from psycopg.rows import RowMaker, dict_row, tuple_row
from psycopg_pool import ConnectionPool

log = logging.getLogger("todo_api.db")

_WHEEL_SQL_DIR = Path(__file__).resolve().parent.parent / "sql"  # installed from a wheel (setup.cfg package_dir)
SQL_DIR = _WHEEL_SQL_DIR if _WHEEL_SQL_DIR.is_dir() else _WHEEL_SQL_DIR.parent.parent / "sql"  # or a checkout
_BLOCK_LINE = re.compile(r"^--\s*(name|fragment):\s*(\w+)\s*$", re.MULTILINE)
_NAMED_PARAMETER = re.compile(r"%\((\w+)\)s|%%")
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
# A statement a pending lookup may ride on (PendingLookup): a plain SELECT, without a locking clause.
# It runs for a live token before the token's scopes are checked, so it must be a read with no side
# effect (no advisory lock, no nextval): every fetch_one of a named SELECT in a GET view is one.
_PLAIN_SELECT = re.compile(r"\s*SELECT\b(?!.*\bFOR\s+(UPDATE|SHARE|NO\s+KEY|KEY\s+SHARE)\b)", re.IGNORECASE | re.DOTALL)

Params = Mapping[str, Any]
Row = dict[str, Any]
Cursor = psycopg.Cursor[Row]

PREPARE_THRESHOLD = 5  # psycopg's default: a statement is prepared on its 5th run on a connection
# The faults of a prepared statement that the server connection does not hold (or already holds
# under that name): the server refused the statement before running it, so running it again is safe.
_NOT_PREPARED_HERE = (psycopg.errors.InvalidSqlStatementName, psycopg.errors.DuplicatePreparedStatement)


class QueryError(Exception):
    """The SQL files are malformed (a start-up error, never a request error)."""


class CommitUnconfirmed(psycopg.OperationalError):
    """A commit stopped waiting for the synchronous standby: it holds on this server, but a failover
    may lose it, so it must not be acknowledged."""


class ServerReadOnly(psycopg.OperationalError):
    """The server under a pooled connection became read-only (a primary demoted, or a standby)."""


# PostgreSQL's warning when a commit's wait for the synchronous standby is cancelled or terminated:
# "canceling [the] wait for synchronous replication ...". The commit is not rolled back.
_SYNC_WAIT_CUT_SHORT = "wait for synchronous replication"


class PooledConnection(psycopg.Connection[Row]):
    """A pool's connection, noting the warning that its commit stopped waiting for the standby."""

    sync_wait_cut_short = False
    raw_prepared: frozenset[bytes] = frozenset()  # the statements Database.fetch_values prepared on it

    def note_sync_wait_cut_short(self, diagnostic: psycopg.errors.Diagnostic) -> None:
        if _SYNC_WAIT_CUT_SHORT in (diagnostic.message_primary or ""):
            self.sync_wait_cut_short = True


class Watchdog:
    """One thread per pool that cancels the backend of a round trip still running `timeout` seconds
    after it started: a commit waiting for a synchronous standby that is gone waits forever otherwise.

    Round trips are watched in start order, which is deadline order, so the thread sleeps until the
    oldest one's deadline, or one `timeout` while none is watched (any started meanwhile ends later):
    the request path never wakes it, and pays a lock and a dict entry per round trip.
    """

    def __init__(self, timeout: float):
        self.timeout = timeout

    def open(self) -> None:
        """Start watching, in the process that uses the pool: threads and held locks do not survive a fork."""
        self._watched: dict[PooledConnection, float] = {}  # connection -> deadline, oldest first
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._closed,), name="todo-api-watchdog", daemon=True)
        self._thread.start()

    def watch(self, conn: PooledConnection) -> None:
        with self._lock:
            self._watched[conn] = time.monotonic() + self.timeout

    def release(self, conn: PooledConnection) -> bool:
        """Stop watching `conn`'s round trip; False if the watchdog cancelled it."""
        with self._lock:
            return self._watched.pop(conn, None) is not None

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=5)

    def _run(self, closed: threading.Event) -> None:
        delay = self.timeout
        while not closed.wait(delay):
            with self._lock:
                oldest = next(iter(self._watched.items()), None)
                delay = self.timeout if oldest is None else oldest[1] - time.monotonic()
                if oldest is not None and delay <= 0:
                    del self._watched[oldest[0]]
            if oldest is not None and delay <= 0:
                self._cancel(oldest[0])
                delay = 0

    def _cancel(self, conn: PooledConnection) -> None:
        log.warning(
            "a database round trip ran past DB_STATEMENT_TIMEOUT_MS (a commit waiting for a synchronous standby?): "
            "cancelling it",
            extra={"event": "db.round_trip_cancelled"},
        )
        try:
            conn.cancel_safe(timeout=self.timeout)
        except psycopg.Error as error:  # the server is unreachable: the connection fails by itself
            log.warning("cancelling failed", extra={"event": "db.cancel_failed", "error_kind": type(error).__name__})


def load_queries(directory: Path = SQL_DIR) -> dict[str, sql.SQL]:
    """Read every `-- name: verb_noun` block of every .sql file; a duplicate or empty block fails.

    A `-- fragment: some_name` block is text that any statement includes as `{some_name}` (a column
    list written once, say); other `{...}` holes are left for psycopg's `sql.SQL.format`.
    """
    found: dict[str, dict[str, str]] = {"name": {}, "fragment": {}}
    for path in sorted(directory.glob("*.sql")):
        text = path.read_text(encoding="utf-8")
        blocks = list(_BLOCK_LINE.finditer(text))
        for match, following in zip(blocks, [*blocks[1:], None], strict=True):
            kind, name = match.groups()
            body = text[match.end() : following.start() if following else len(text)]
            statement = (
                "\n".join(line for line in body.strip().splitlines() if not line.lstrip().startswith("--"))
                .strip()
                .rstrip(";")
            )
            if name in found[kind]:
                raise QueryError(f"{path.name}: {'query' if kind == 'name' else kind} {name!r} is defined twice")
            if not statement:
                raise QueryError(f"{path.name}: {'query' if kind == 'name' else kind} {name!r} has no statement")
            found[kind][name] = statement
    fragments = found["fragment"]

    def fill(hole: re.Match[str]) -> str:
        return fragments.get(hole.group(1), hole.group(0))

    # trusted file text
    return {name: sql.SQL(_PLACEHOLDER.sub(fill, text)) for name, text in found["name"].items()}  # type: ignore[arg-type]


class Database:
    """One psycopg pool per process, opened on first use so it is never shared across a fork."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int,
        max_size: int,
        timeout: float,
        statement_timeout_ms: int,
        prepared_statements: bool = True,
        queries: dict[str, sql.SQL] | None = None,
    ):
        self.url = url
        self.queries = load_queries() if queries is None else queries
        # One round trip opens the transaction and sets, for it only, the statement timeout and UTC.
        # SET LOCAL lasts for this transaction only, so it holds behind PgBouncer in transaction mode too.
        begin = "BEGIN{}; SET LOCAL statement_timeout = {}; SET LOCAL TimeZone = 'UTC'"
        self._begin = sql.SQL(begin).format(sql.SQL(""), sql.Literal(statement_timeout_ms))
        self._begin_one_snapshot = sql.SQL(begin).format(
            sql.SQL(" ISOLATION LEVEL REPEATABLE READ READ ONLY"), sql.Literal(statement_timeout_ms)
        )
        # The same, for a pipeline's implicit transaction: set_config(..., true) is SET LOCAL without
        # the "only in transaction blocks" warning (the server does not count a pipeline as a block).
        self._local_settings = sql.SQL(
            "SELECT set_config('statement_timeout', {}, true), set_config('TimeZone', 'UTC', true)"
        ).format(sql.Literal(str(statement_timeout_ms)))
        self.statement_timeout_ms = statement_timeout_ms
        # None until a connection has been checked; True while every checked one starts with the
        # settings as defaults (no per-transaction settings then); False for good after one that does not.
        self.settings_are_defaults: bool | None = None
        # Whether a pending lookup rides in a read's statement (carried_by). Not on a Citus coordinator:
        # there a statement over two tables is planned in full on every run (Citus's fast path takes
        # one table), which cost PostgreSQL 720 µs a read against 345 for the lookup on its own
        # (make bench-citus, docs/tokens.md). Set by each new connection.
        self.carries_lookups = True
        # DB_PREPARED_STATEMENTS=false: never prepare. Otherwise prepare until the first sign of a
        # pooler that cannot carry prepared statements (see _stop_preparing).
        self._prepare_threshold: int | None = PREPARE_THRESHOLD if prepared_statements else None
        self._pool_args = {"min_size": min_size, "max_size": max_size, "timeout": timeout}
        self._pool: ConnectionPool[PooledConnection] | None = None
        self._pool_pid: int | None = None
        self._watchdog = Watchdog(statement_timeout_ms / 1000)  # opened and closed with the pool
        self._raw_statements: dict[str, _RawStatement] = {}  # fetch_values's, compiled on first use
        self._carriers: dict[tuple[str, str], sql.SQL | None] = {}  # carried_by's, composed on first use
        self._lock = threading.Lock()
        # Requests of this process waiting for a connection, and holding one (pool_stats). Counted here:
        # psycopg_pool forgets a waiter that timed out only when it next hands a connection out.
        self._tally_lock = threading.Lock()
        self._waiting = 0
        self._in_use = 0

    @property
    def pool(self) -> ConnectionPool[PooledConnection]:
        pool = self._pool
        if pool is None or self._pool_pid != os.getpid():
            with self._lock:
                if self._pool is None or self._pool_pid != os.getpid():
                    self._watchdog.open()
                    self._pool = self._open_pool()
                    self._waiting = self._in_use = 0  # a forked child has none of its parent's requests
                    self._pool_pid = os.getpid()
                pool = self._pool
        return pool

    def _open_pool(self) -> ConnectionPool[PooledConnection]:
        pool = ConnectionPool(
            self.url,
            connection_class=PooledConnection,
            open=False,
            name="todo-api",
            kwargs={
                "row_factory": dict_row,
                "autocommit": True,  # transaction() sends BEGIN and COMMIT itself
                "connect_timeout": 5,
                "fallback_application_name": "todo-api",
            },
            configure=self._configure,
            # A reconnect chain backs off (1 s, 2 s, ...) and gives up after this long; the next request
            # starts a fresh one, so recovery after an outage is quick rather than a long backoff away.
            reconnect_timeout=self._pool_args["timeout"],
            **self._pool_args,
        )
        pool.open(wait=False)  # a worker starts even while the database is down
        return pool

    def close(self) -> None:
        with self._lock:
            if self._pool is not None and self._pool_pid == os.getpid():
                self._pool.close(timeout=5)
                self._watchdog.close()
                log.info("database pool closed", extra={"event": "db.pool_closed"})
            self._pool = None

    def pool_stats(self) -> dict[str, int]:
        """This process's pool: connections open or opening (`size`), lent to a request (`in_use`), and
        requests waiting for one (`waiting`); all 0 while it has opened none (it opens on first use)."""
        pool = self._pool
        if pool is None or self._pool_pid != os.getpid():
            return {"size": 0, "in_use": 0, "waiting": 0}
        return {"size": pool.get_stats()["pool_size"], "in_use": self._in_use, "waiting": self._waiting}

    def _checkout(self, pool: ConnectionPool[PooledConnection], timeout: float | None = None) -> PooledConnection:
        """pool.getconn(), tallied for pool_stats: waiting until it returns, then in use until _checkin.
        `timeout`: seconds to wait instead of DB_POOL_TIMEOUT."""
        with self._tally_lock:
            self._waiting += 1
        got = False
        try:
            conn = pool.getconn(timeout)
            got = True
        finally:
            with self._tally_lock:
                self._waiting -= 1
                self._in_use += got
        return conn

    def _checkin(self, pool: ConnectionPool[PooledConnection], conn: PooledConnection) -> None:
        pool.putconn(conn)
        with self._tally_lock:
            self._in_use -= 1

    def discard_broken_connections(self) -> None:
        """After a connection was lost, test the idle ones so the next request gets a live one."""
        if self._pool is not None and self._pool_pid == os.getpid():
            self._pool.check()

    def _configure(self, conn: PooledConnection) -> None:
        """A new connection prepares statements while this pool does, under names of its own, notes
        a commit's cut-short wait for the standby, and tells whether it starts with the timeout and
        UTC as defaults."""
        conn.add_notice_handler(conn.note_sync_wait_cut_short)
        if not _number_prepared_statements_uniquely(conn):
            self._prepare_threshold = None
        conn.prepare_threshold = self._prepare_threshold
        self.carries_lookups = not _is_citus_coordinator(conn)
        holds = defaults_hold(conn, self.statement_timeout_ms)
        with self._lock:
            was = self.settings_are_defaults
            self.settings_are_defaults = holds and was is not False
        if not holds and was is not False:  # said once per pool
            log.info(
                "the database's defaults are not DB_STATEMENT_TIMEOUT_MS and UTC: each transaction sets them "
                "(todo-api set-db-defaults makes them the defaults and saves that work)",
                extra={"event": "db.settings_per_transaction"},
            )
        elif holds and was is None:  # the first connection checked: the fast path, said quietly
            log.debug(
                "the database's defaults are DB_STATEMENT_TIMEOUT_MS and UTC: no transaction sets them",
                extra={"event": "db.settings_are_defaults"},
            )

    @contextmanager
    def _connection(self, pool_timeout: float | None = None) -> Iterator[PooledConnection]:
        """A pooled connection that prepares statements only while this pool still does. One that its
        server closed while it sat idle (the server restarted, was demoted, or crashed) is dropped
        before use, with every other idle one it closed, rather than failing this request."""
        pool = self.pool
        conn = self._checkout(pool, pool_timeout)
        if _closed_by_server(conn):
            conn.close()
            self._checkin(pool, conn)  # discarded and replaced
            pool.check()
            conn = self._checkout(pool, pool_timeout)
        try:
            conn.prepare_threshold = self._prepare_threshold
            yield conn
        except psycopg.errors.ReadOnlySqlTransaction as error:
            if not _server_is_read_only(conn):
                raise  # a write in a transaction of ours declared read-only: a bug, not the server
            log.warning(
                "the database server is read-only (a demoted primary?): this worker drops its connections",
                extra={"event": "db.server_read_only"},
            )
            pool.drain()  # every connection to that server: closed now, or as it comes back
            raise ServerReadOnly("the database server is read-only (a failover?)") from error
        finally:
            self._checkin(pool, conn)

    def _watched(self, conn: PooledConnection, round_trip: Callable[..., None], *args: Any) -> None:
        """Run a round trip that may commit, under the watchdog: a commit whose wait for the synchronous
        standby was cut short raises CommitUnconfirmed, and a connection the watchdog cancelled is
        closed (a late cancel must not hit the next request's statement). A plain call rather than a
        `with` block: it runs on every request, and a generator context manager costs more."""
        conn.sync_wait_cut_short = False
        self._watchdog.watch(conn)
        try:
            round_trip(*args)
        finally:
            cancelled = not self._watchdog.release(conn)
            if cancelled:
                conn.close()
        if cancelled or conn.sync_wait_cut_short:
            raise CommitUnconfirmed("the commit's wait for the synchronous standby was cut short")

    @contextmanager
    def transaction(self, *, one_snapshot: bool = False, pool_timeout: float | None = None) -> Iterator[Runner]:
        """One transaction on a pooled connection, committed when the block ends without error.

        `one_snapshot=True`: a read-only transaction whose statements all see the same snapshot
        (REPEATABLE READ), so that, say, a page and its total count agree.

        `pool_timeout`: seconds to wait for a connection instead of DB_POOL_TIMEOUT, for work that
        must give up sooner than a request (a /metrics scrape while the database is down).

        Nothing in it is prepared: behind a pooler that cannot carry prepared statements, a statement
        prepared elsewhere would fail mid-transaction, and only the caller's block could run again.
        A failed one ends with a plain ROLLBACK: psycopg's rollback() adds DEALLOCATE ALL (in case the
        transaction changed the schema; ours never do), which a pooler sends to whichever server
        connection is free, destroying the statements other clients prepared there. What preparing
        would save is in docs/performance.md (figures behind the code).

        A pending lookup (PendingLookup) is settled alone first: nothing in the block runs before it.
        """
        settle_pending_lookup()
        with self._connection(pool_timeout) as conn, conn.cursor() as cur:
            conn.prepare_threshold = None
            if self.settings_are_defaults:
                cur.execute(BEGIN_ONE_SNAPSHOT if one_snapshot else BEGIN)
            else:
                cur.execute(self._begin_one_snapshot if one_snapshot else self._begin)
            try:
                yield Runner(cur, self.queries)
            except BaseException:
                with suppress(psycopg.Error):  # a lost connection cannot roll back; the pool drops it
                    cur.execute(ROLLBACK)
                raise
            self._watched(conn, conn.commit)

    @contextmanager
    def _one_statement(
        self, query: sql.Composable | str, params: Params, prepare: bool | None, row_factory: Any = dict_row
    ) -> Iterator[Cursor]:
        """Run one statement in its own transaction, in one round trip; yield the cursor holding its rows."""
        statement = self.queries[query] if isinstance(query, str) else query
        with self._connection() as conn, conn.cursor(row_factory=row_factory) as cur:
            try:
                self._watched(conn, self._pipeline, cur, statement, params, prepare)
            except _NOT_PREPARED_HERE as fault:
                if conn.prepare_threshold is None:
                    raise  # nothing of ours was prepared: not the pooler's doing
                self._stop_preparing(conn, fault)
                # it did not run: run it again, unprepared
                self._watched(conn, self._pipeline, cur, statement, params, prepare)
            yield cur

    def _pipeline(self, cur: Cursor, statement: sql.Composable, params: Params, prepare: bool | None) -> None:
        """The settings and the statement in one implicit transaction: both run or neither does.
        The statement alone where they are the connection's defaults already."""
        if self.settings_are_defaults:
            try:
                cur.execute(statement, params, prepare=prepare)
            except _NOT_PREPARED_HERE as fault:
                if cur.pgresult is None:
                    raise  # the statement itself was refused: it did not run
                # It ran and committed; psycopg's tidying up after it failed (with libpq < 17 it
                # deallocates a statement it evicts by name, and a pooler sent that elsewhere).
                self._stop_preparing(cur.connection, fault)
            return
        with cur.connection.pipeline():
            cur.execute(self._local_settings)
            cur.execute(statement, params, prepare=prepare)

    def _stop_preparing(self, conn: psycopg.Connection[Row], fault: psycopg.Error) -> None:
        """The server connection under `conn` lacks a statement `conn` prepared: a pooler in transaction
        mode (PgBouncer before 1.21, or later without max_prepared_statements) hands each transaction
        to any server connection. From now on this pool prepares nothing: each connection stops as it
        is next checked out, new ones are opened without. Said once, in one warning."""
        conn.prepare_threshold = None
        with self._lock:
            if self._prepare_threshold is None:
                return
            self._prepare_threshold = None
        log.warning(
            "a prepared statement was missing on the server (a pooler in transaction mode?): this worker "
            "stops preparing statements; set DB_PREPARED_STATEMENTS=false to start that way",
            extra={"event": "db.prepared_statements_off", "sqlstate": fault.sqlstate},
        )

    def fetch_one(self, query: sql.Composable | str, params: Params, *, prepare: bool | None = None) -> Row | None:
        """The statement's first row, or None. A pending lookup (PendingLookup) rides in the same
        statement when `query` names a plain SELECT (carried_by); it is settled alone first otherwise."""
        lookup = _take_pending_lookup()
        if lookup is not None:
            carrier = self.carried_by(lookup, query, params)
            if carrier is not None:
                return self._fetch_one_carrying(lookup, carrier, {**params, **lookup.params}, prepare)
            lookup.settle_alone()
        with self._one_statement(query, params, prepare) as cur:
            return cur.fetchone()

    def fetch_all(self, query: sql.Composable | str, params: Params, *, prepare: bool | None = None) -> list[Row]:
        """`prepare=False`: plan with this call's values every time, never a generic plan (see tasks/listing.py).
        A pending lookup (PendingLookup) is settled alone first."""
        settle_pending_lookup()
        with self._one_statement(query, params, prepare) as cur:
            return cur.fetchall()

    def carried_by(self, lookup: PendingLookup, query: sql.Composable | str, params: Params) -> sql.SQL | None:
        """The statement that runs `lookup` and the named statement `query` as one (the lookup's
        `carrier` with `query` in its {statement} hole), or None where `query` cannot carry it: it is
        not a named plain SELECT, or it gives a parameter the lookup also has another value; or the
        database is a Citus coordinator (carries_lookups)."""
        if not self.carries_lookups or not isinstance(query, str):
            return None
        if any(params.get(name, value) != value for name, value in lookup.params.items()):
            return None
        key = (lookup.carrier, query)
        carrier = self._carriers.get(key)
        if carrier is None and key not in self._carriers:
            statement = self.queries[query].as_string()
            if _PLAIN_SELECT.match(statement):
                carrier = sql.SQL(self.queries[lookup.carrier].format(statement=sql.SQL(statement)).as_string())
            self._carriers[key] = carrier
        return carrier

    def _fetch_one_carrying(
        self, lookup: PendingLookup, carrier: sql.SQL, params: Params, prepare: bool | None
    ) -> Row | None:
        """fetch_one of `carrier`: the lookup's verdict first (raising to refuse: the read's row is
        never seen), then the read's row. If the round trip fails, the lookup stays pending."""
        try:
            with self._one_statement(carrier, params, prepare, _lookup_and_answer) as cur:
                found, answer = cur.fetchone() or (None, None)
        except BaseException:
            defer_lookup(lookup)  # unanswered: settled alone before the request's answer leaves
            raise
        then = lookup.settle(found)
        if then is not None:
            then()
        return answer

    def ping(self) -> None:
        self.fetch_all(sql.SQL("SELECT 1"), {})

    def fetch_values(self, query: str, params: Mapping[str, str | bytes]) -> tuple[bytes | None, ...] | None:
        """The one row (or None) of the named read-only statement `query`, as PostgreSQL's text of each
        value, straight through libpq: a `str` parameter goes as text, `bytes` as binary (bytea).

        For the lookup that every request with a personal access token makes before its own statement:
        psycopg's cursor (adapting, describing, making rows) costs several times what libpq does, and
        that lookup must cost a request little (docs/tokens.md has the figures). It runs alone, without
        the per-transaction settings: it must be a single-row lookup whose values do not depend on
        TimeZone. It is prepared once per connection while this pool prepares statements, and runs
        under the watchdog like every round trip.
        """
        statement = self._raw_statements.get(query) or self._compile_raw(query)
        values = [params[name] for name in statement.parameters]
        encoded = [value.encode() if isinstance(value, str) else value for value in values]
        formats = [0 if isinstance(value, str) else 1 for value in values]
        with self._connection() as conn:
            try:
                result = self._run_raw(conn, statement, encoded, formats)
            except _NOT_PREPARED_HERE as fault:
                self._stop_preparing(conn, fault)  # it did not run: run it again, unprepared
                result = self._run_raw(conn, statement, encoded, formats)
        if result.ntuples == 0:
            return None
        return tuple(result.get_value(0, column) for column in range(result.nfields))

    def _compile_raw(self, query: str) -> _RawStatement:
        """`query` with libpq's $1, $2 ... for its %(name)s parameters (and % for %%), once per name."""
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) is None:
                return "%"
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        text = _NAMED_PARAMETER.sub(number, self.queries[query].as_string())
        statement = _RawStatement(f"todo_api_{query}".encode(), text.encode(), tuple(names))
        self._raw_statements[query] = statement
        return statement

    def _run_raw(self, conn: PooledConnection, statement: _RawStatement, values: list[Any], formats: list[int]) -> Any:
        """One round trip of `statement` (a PREPARE first, on a connection that has not prepared it)."""
        pgconn = conn.pgconn
        prepare = self._prepare_threshold is not None
        if prepare and statement.name not in conn.raw_prepared:
            _raise_for(conn, pgconn.prepare(statement.name, statement.text), pq.ExecStatus.COMMAND_OK)
            conn.raw_prepared = conn.raw_prepared | {statement.name}
        results: list[Any] = []
        if prepare:
            self._watched(conn, lambda: results.append(pgconn.exec_prepared(statement.name, values, formats)))
        else:
            self._watched(
                conn, lambda: results.append(pgconn.exec_params(statement.text, values, param_formats=formats))
            )
        return _raise_for(conn, results[0], pq.ExecStatus.TUPLES_OK)


BEGIN = sql.SQL("BEGIN")
ROLLBACK = sql.SQL("ROLLBACK")
BEGIN_ONE_SNAPSHOT = sql.SQL("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
# Where statement_timeout's value comes from (pg_settings.source): these hold for every new server
# connection of the role and database, so also for each transaction PgBouncer hands to any of them. A
# value set by the client ("client": options=-c, which PgBouncer drops) or in a session does not.
EVERY_CONNECTION = (
    "default",
    "environment variable",
    "configuration file",
    "command line",
    "database",
    "user",
    "database user",
)
UTC_NAMES = ("UTC", "Etc/UTC")


def defaults_hold(conn: psycopg.Connection[Any], statement_timeout_ms: int) -> bool:
    """Whether every transaction of `conn` (fresh, in autocommit mode) starts with `statement_timeout_ms`
    and TimeZone UTC. The timeout must be a default of every server connection. TimeZone may have any
    source: the client's connection keeps it, and PgBouncer sets a server connection's TimeZone to the
    client's each time it hands one over (it tracks that parameter, not statement_timeout)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("SELECT name, setting, source FROM pg_settings WHERE name IN ('statement_timeout', 'TimeZone')")
        found = {name: (setting, source) for name, setting, source in cur.fetchall()}
    timeout, timeout_source = found["statement_timeout"]
    return (
        timeout == str(statement_timeout_ms)
        and timeout_source in EVERY_CONNECTION
        and found["TimeZone"][0] in UTC_NAMES
    )


def _is_citus_coordinator(conn: psycopg.Connection[Any]) -> bool:
    """Whether `conn`'s database has the citus extension (todo-api migrate creates it on a coordinator)."""
    with conn.cursor(row_factory=tuple_row) as cur:
        cur.execute("SELECT EXISTS (SELECT FROM pg_extension WHERE extname = 'citus')")
        found = cur.fetchone()
    return bool(found and found[0])


@dataclass(frozen=True)
class _RawStatement:
    """A named statement as Database.fetch_values sends it: its prepared name, its text with $n
    placeholders, and the names of its parameters in their order."""

    name: bytes
    text: bytes
    parameters: tuple[str, ...]


def _raise_for(conn: PooledConnection, result: Any, expected: pq.ExecStatus) -> Any:
    """`result` if it has the `expected` status; else the error psycopg would raise for it (an
    OperationalError when the connection is gone, which the pool then drops)."""
    if result.status == expected:
        return result
    if conn.pgconn.status == pq.ConnStatus.BAD:
        raise psycopg.OperationalError("the connection to the database was lost")
    raise psycopg.errors.error_from_result(result, encoding=conn.info.encoding)


def _closed_by_server(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server has closed this idle connection: its socket has something to read although
    no statement is in flight (the server's goodbye, or the end of the stream). One poll; a round trip
    only then, in case the server had something else to say."""
    if not select.select([conn.fileno()], [], [], 0)[0]:
        return False
    try:
        conn.execute("")
    except psycopg.Error:
        return True
    return False


def _server_is_read_only(conn: psycopg.Connection[Any]) -> bool:
    """Whether the server says (in the parameters it reports, no round trip) that it is a standby or
    makes every transaction read-only."""
    return "on" in (
        conn.info.parameter_status("in_hot_standby"),
        conn.info.parameter_status("default_transaction_read_only"),
    )


def _number_prepared_statements_uniquely(conn: psycopg.Connection[Any]) -> bool:
    """Start this connection's prepared-statement names at a random number, as psycopg names them
    _pg3_0, _pg3_1, ... on every connection; False if psycopg no longer keeps the counter here.

    Behind a pooler in transaction mode, the server connection a statement lands on may hold
    another client's _pg3_1, a different statement, and would run it with our parameters (seen
    with PgBouncer 1.18: a SELECT answered with the rows of another connection's statement). With
    names no other connection uses, a wrong server connection can only answer "does not exist",
    which proves that the statement did not run.
    """
    manager = getattr(conn, "_prepared", None)
    if not isinstance(getattr(manager, "_prepared_idx", None), int):
        return False
    manager._prepared_idx = secrets.randbits(60)  # type: ignore[union-attr]
    return True


class Runner:
    """Runs named (or composed) statements on the cursor of one open transaction."""

    def __init__(self, cursor: psycopg.Cursor[Row], queries: dict[str, sql.SQL]):
        self._cursor = cursor
        self._queries = queries

    def _statement(self, query: sql.Composable | str) -> sql.Composable:
        return self._queries[query] if isinstance(query, str) else query

    def fetch_one(self, query: sql.Composable | str, params: Params, *, prepare: bool | None = None) -> Row | None:
        self._cursor.execute(self._statement(query), params, prepare=prepare)
        return self._cursor.fetchone()

    def fetch_all(self, query: sql.Composable | str, params: Params, *, prepare: bool | None = None) -> list[Row]:
        """`prepare=False`: plan with this call's values every time, never a generic plan (see tasks/listing.py)."""
        self._cursor.execute(self._statement(query), params, prepare=prepare)
        return self._cursor.fetchall()

    def execute(self, query: sql.Composable | str, params: Params) -> int:
        self._cursor.execute(self._statement(query), params)
        return self._cursor.rowcount


@dataclass(frozen=True)
class PendingLookup:
    """A lookup that decides whether the request may go on at all (a personal access token's,
    auth/bearer.py), left for the request's first statement to carry, so that a read makes one round
    trip, not two.

    `carrier` names a statement with the lookup and a `{statement}` hole, for a named plain SELECT of
    the request (Database.carried_by); its columns are the lookup's, then `answered`, then the read's.
    `settle(row)` gets the lookup's row (None when none) and raises to refuse the request; it returns
    what is left to do once the connection is handed back (or None). `settle_alone()` runs the lookup
    by itself: before any other statement, and before the answer of a request that ran none."""

    carrier: str
    params: Params
    settle: Callable[[tuple[Any, ...] | None], Callable[[], None] | None]
    settle_alone: Callable[[], None]


_PENDING = "todo_api_pending_lookup"


def defer_lookup(lookup: PendingLookup) -> None:
    """Leave `lookup` for this request's first statement (settle_pending_lookup before answering)."""
    setattr(g, _PENDING, lookup)


def _take_pending_lookup() -> PendingLookup | None:
    return g.pop(_PENDING, None) if has_request_context() else None


def settle_pending_lookup() -> None:
    """Run this request's pending lookup alone, if no statement has carried it yet; raises to refuse."""
    lookup = _take_pending_lookup()
    if lookup is not None:
        lookup.settle_alone()


def _lookup_and_answer(cursor: psycopg.Cursor[Any]) -> RowMaker[tuple[tuple[Any, ...], Row | None]]:
    """Rows of a carrier (PendingLookup): (the lookup's values, the read's row or None when it has none)."""
    result = cursor.pgresult  # the names as dict_row reads them: cheaper than cursor.description
    names = [result.fname(i).decode() for i in range(result.nfields)] if result is not None else []
    if "answered" not in names:
        return tuple_row(cursor)  # the per-transaction settings' row, before the carrier's in a pipeline
    split = names.index("answered")  # the lookup's columns come first: the first is the carrier's
    answer_names = names[split + 1 :]

    def make(values: Any) -> tuple[tuple[Any, ...], Row | None]:
        answer = dict(zip(answer_names, values[split + 1 :], strict=True)) if values[split] else None
        return tuple(values[:split]), answer

    return make


def current_database() -> Database:
    """The app's Database (create_app keeps it in app.extensions)."""
    return current_app.extensions["todo_api.db"]
