"""A personal access token's lookup rides in the request's first round trip (docs/tokens.md "What
the lookup costs"): nothing of the request is acted on before its answer is checked, and its
verdict wins over whatever the request would otherwise answer (401, then 403, then 404/405/400)."""

from __future__ import annotations

import contextlib
from typing import Any

import psycopg
import pytest
from conftest import assert_error, task_row
from psycopg import sql
from test_tokens import as_pat, created, jwt_headers, tokens_path

from todo_api.auth.bearer import require_user
from todo_api.auth.tokens import credentials
from todo_api.platform.db import Database, PendingLookup, defer_lookup
from todo_api.platform.errors import ApiError


def revoked(api) -> str:
    token = created(api, scopes=["tasks:write"])
    response = api.client.delete(tokens_path(api, f"/{token['id']}"), headers=jwt_headers(api))
    assert response.status_code == 200
    return token["token"]


def expired(api, conn) -> str:
    token = created(api, scopes=["tasks:write"])
    conn.execute("UPDATE access_tokens SET expires_at = now() - interval '1 second' WHERE user_id = %s", [api.user_id])
    return token["token"]


def refused_token(api, conn, kind: str) -> str:
    return revoked(api) if kind == "revoked" else expired(api, conn)


def assert_invalid_token(response) -> None:
    assert_error(response, 401, "unauthorized")
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def user_tasks(conn, user_id: str) -> list[dict[str, Any]]:
    return conn.execute("SELECT * FROM tasks WHERE user_id = %s ORDER BY id", [user_id]).fetchall()


@pytest.mark.parametrize("kind", ["revoked", "expired"])
@pytest.mark.parametrize(
    ("method", "path", "kwargs"),
    [
        ("GET", "?limit=nope", {}),  # a read whose view answers 400 before any statement
        ("GET", "?sort=-nothing", {}),
        ("GET", "/1/2/3", {}),  # unknown route: 404
        ("GET", "/not-an-id", {}),
        ("PATCH", "", {"json": {}}),  # 405
        ("POST", "", {"data": "title", "content_type": "text/plain"}),  # 415
        ("POST", "", {"json": {"title": "x", "bogus": 1}}),  # 400
        ("GET", "/999999999", {}),  # 404 after a statement
    ],
)
def test_a_refused_token_is_401_whatever_the_request_would_answer(api, conn, kind, method, path, kwargs):
    token = refused_token(api, conn, kind)
    assert_invalid_token(as_pat(api, token, method, path, **kwargs))
    assert user_tasks(conn, api.user_id) == []


@pytest.mark.parametrize("kind", ["revoked", "expired"])
def test_a_refused_tokens_reads_return_no_task_data(api, conn, kind):
    task = api.create(title="Secret plans")
    token = refused_token(api, conn, kind)
    for path, headers in [(f"/{task['id']}", {}), ("", {}), (f"/{task['id']}", {"If-None-Match": '"1"'})]:
        response = api.client.get(api.base + path, headers={"Authorization": f"Bearer {token}", **headers})
        assert_invalid_token(response)
        assert b"Secret plans" not in response.get_data()
    head = api.client.head(f"{api.base}/{task['id']}", headers={"Authorization": f"Bearer {token}"})
    assert head.status_code == 401 and 'error="invalid_token"' in head.headers["WWW-Authenticate"]
    assert "ETag" not in head.headers


def test_a_read_tokens_writes_are_403_and_write_nothing(api, conn):
    task = api.create(title="Keep me")
    token = created(api, scopes=["tasks:read"])["token"]
    before = task_row(conn, task["id"])
    attempts = [
        ("POST", "", {"json": {"title": "Not by this token"}}),
        ("POST", "", {"json": {"title": "x", "bogus": 1}}),  # 403 before the 400
        ("PATCH", f"/{task['id']}", {"json": {"title": "Changed"}}),
        ("PUT", f"/{task['id']}", {"json": {"title": "Replaced"}}),
        ("DELETE", f"/{task['id']}", {}),
        ("DELETE", "/999999999", {}),  # 403 before the 404
    ]
    for method, path, kwargs in attempts:
        response = as_pat(api, token, method, path, **kwargs)
        assert_error(response, 403, "insufficient_scope")
        assert 'scope="tasks:write"' in response.headers["WWW-Authenticate"]
    assert user_tasks(conn, api.user_id) == [before]
    assert as_pat(api, token, path=f"/{task['id']}").json["data"]["title"] == "Keep me"


def test_a_token_without_the_read_scope_gets_403_and_no_task_data(api):
    task = api.create(title="Private")
    token = created(api, scopes=["webhooks"])["token"]
    for path in (f"/{task['id']}", "", "?limit=nope", "/999999999"):
        response = as_pat(api, token, path=path)
        assert_error(response, 403, "insufficient_scope")
        assert b"Private" not in response.get_data()


def test_a_read_carries_the_lookup_in_its_own_round_trip(api, app, monkeypatch, citus):
    """On plain PostgreSQL. On a Citus coordinator the lookup runs alone (Database.carries_lookups)."""
    task = api.create(title="One round trip")
    token = created(api)["token"]
    alone: list[str] = []
    real = Database.fetch_values

    def spy(self, query, params):
        alone.append(query)
        return real(self, query, params)

    monkeypatch.setattr(Database, "fetch_values", spy)
    for _ in range(12):  # past psycopg's prepare threshold (5): prepared
        response = as_pat(api, token, path=f"/{task['id']}")
        assert response.status_code == 200 and response.json["data"]["title"] == "One round trip"
    assert app.extensions["todo_api.db"].carries_lookups is not citus
    carried_reads = [] if not citus else ["find_access_token"] * 12
    assert alone == carried_reads  # the lookup went with get_task, every time (plain PostgreSQL)
    assert_error(as_pat(api, token, path="?limit=nope"), 400, "validation_error")
    assert alone == [*carried_reads, "find_access_token"]  # no statement ran: the lookup alone, before the 400


@pytest.fixture
def plain_postgresql(citus):
    """The carrier statement (with_access_token) runs on plain PostgreSQL only (Database.carries_lookups)."""
    if citus:
        pytest.skip("on a Citus coordinator the lookup runs alone, never carried")


class Recorder:
    """A PendingLookup's verdicts, noted: the rows `settle` was given, and each `settle_alone`;
    both refuse (ApiError 401) unless `admit`."""

    def __init__(self, admit: bool = False):
        self.admit = admit
        self.settled: list[tuple[Any, ...] | None] = []
        self.settled_alone = 0

    def lookup(self, params: dict[str, Any]) -> PendingLookup:
        def settle(row: tuple[Any, ...] | None) -> None:
            self.settled.append(row)
            if not self.admit:
                raise ApiError(401)

        def settle_alone() -> None:
            self.settled_alone += 1
            if not self.admit:
                raise ApiError(401)

        return PendingLookup("with_access_token", params, settle, settle_alone)


def live_lookup_params(api) -> dict[str, Any]:
    token = created(api, scopes=["tasks:read"])["token"]
    return {"user_id": api.user_id, "token_hash": credentials.hash_token(token)}


@pytest.mark.usefixtures("plain_postgresql")
def test_a_named_select_carries_the_lookup_and_answers_as_it_would_alone(app, api):
    task = api.create(title="Carried")
    database: Database = app.extensions["todo_api.db"]
    params = live_lookup_params(api)
    recorder = Recorder(admit=True)
    with app.test_request_context():
        alone = database.fetch_one("get_task", {"user_id": api.user_id, "task_id": task["id"]})
        defer_lookup(recorder.lookup(params))
        carried = database.fetch_one("get_task", {"user_id": api.user_id, "task_id": task["id"]})
        defer_lookup(recorder.lookup(params))
        missing = database.fetch_one("get_task", {"user_id": api.user_id, "task_id": task["id"] + 1000})
    assert carried == alone and alone["title"] == "Carried"
    assert missing is None
    assert recorder.settled_alone == 0
    assert len(recorder.settled) == 2
    for token_id, scopes, token_hash, expired, stale in recorder.settled:  # find_access_token's columns
        assert isinstance(token_id, int) and scopes == "tasks:read"
        assert token_hash == params["token_hash"] and expired is False and isinstance(stale, bool)


@pytest.mark.usefixtures("plain_postgresql")
def test_an_unknown_or_expired_tokens_carrier_runs_no_read(app, api, conn):
    task = api.create(title="Unseen")
    database: Database = app.extensions["todo_api.db"]
    live = live_lookup_params(api)
    recorder = Recorder()
    with app.test_request_context():
        defer_lookup(recorder.lookup({"user_id": api.user_id, "token_hash": b"\0" * 32}))
        with pytest.raises(ApiError):
            database.fetch_one("get_task", {"user_id": api.user_id, "task_id": task["id"]})
        conn.execute(
            "UPDATE access_tokens SET expires_at = now() - interval '1 second' WHERE user_id = %s", [api.user_id]
        )
        defer_lookup(recorder.lookup(live))
        with pytest.raises(ApiError):
            database.fetch_one("get_task", {"user_id": api.user_id, "task_id": task["id"]})
    assert recorder.settled[0] is None  # no token row: no row at all
    assert recorder.settled[1][3] is True  # expired: the token's row, and the read's row not asked for


@pytest.mark.parametrize(
    "statement",
    [
        "insert",  # not a named statement
        "lock_task",  # a named SELECT ... FOR UPDATE
        "delete_task",  # a named write
        "other_user",  # a named SELECT, but of another user than the token's
    ],
)
def test_a_statement_that_cannot_carry_the_lookup_runs_only_after_it_is_settled_alone(app, api, conn, statement):
    task = api.create(title="Untouched")
    database: Database = app.extensions["todo_api.db"]
    params = {"user_id": api.user_id, "token_hash": b"\0" * 32}
    insert = sql.SQL("INSERT INTO tasks (user_id, title) VALUES ({}, 'written') RETURNING id").format(
        sql.Literal(api.user_id)
    )
    calls = {
        "insert": (insert, {}),
        "lock_task": ("lock_task", {"user_id": api.user_id, "task_id": task["id"]}),
        "delete_task": ("delete_task", {"user_id": api.user_id, "task_id": task["id"]}),
        "other_user": ("get_task", {"user_id": "someone-else", "task_id": task["id"]}),
    }
    query, query_params = calls[statement]
    recorder = Recorder()
    before = user_tasks(conn, api.user_id)
    with app.test_request_context():
        assert database.carried_by(recorder.lookup(params), query, query_params) is None
        defer_lookup(recorder.lookup(params))
        with pytest.raises(ApiError):
            database.fetch_one(query, query_params)
    assert (recorder.settled_alone, recorder.settled) == (1, [])
    assert user_tasks(conn, api.user_id) == before


def test_fetch_all_and_transactions_settle_the_lookup_alone_first(app, api):
    database: Database = app.extensions["todo_api.db"]
    params = {"user_id": api.user_id, "token_hash": b"\0" * 32}
    recorder = Recorder()
    entered = []
    with app.test_request_context():
        defer_lookup(recorder.lookup(params))
        with pytest.raises(ApiError):
            database.fetch_all("list_lists", {"user_id": api.user_id})
        defer_lookup(recorder.lookup(params))
        with pytest.raises(ApiError), database.transaction():
            entered.append(True)
    assert (recorder.settled_alone, entered) == (2, [])


def test_a_lookup_whose_round_trip_failed_is_left_to_be_settled_alone(app, api, monkeypatch):
    database: Database = app.extensions["todo_api.db"]
    monkeypatch.setitem(database.queries, "divide_by_zero", sql.SQL("SELECT 1 / 0 AS quotient"))
    recorder = Recorder(admit=True)
    with app.test_request_context():
        defer_lookup(recorder.lookup(live_lookup_params(api)))
        with pytest.raises(psycopg.errors.DivisionByZero):
            database.fetch_one("divide_by_zero", {})
        with database.transaction():
            pass
    assert (recorder.settled_alone, recorder.settled) == (1, [])  # transaction() settled it, before BEGIN


def test_a_refusal_the_view_caught_is_raised_before_the_answer(app, api, conn):
    task = api.create(title="Caught")
    token = revoked(api)
    database: Database = app.extensions["todo_api.db"]

    @require_user
    def careless_view(user_id: str) -> str:
        with contextlib.suppress(ApiError):
            database.fetch_one("get_task", {"user_id": user_id, "task_id": task["id"]})
        return "answered anyway"

    path = f"{api.base}/{task['id']}"
    request = app.test_request_context(path, headers={"Authorization": f"Bearer {token}"})
    with request, pytest.raises(ApiError) as refused:
        careless_view(user_id=api.user_id)
    assert refused.value.status == 401
