"""The service's results never depend on the database's TimeZone (OPERATIONS.md; issue 17 §3).

Each test runs against a database of its own whose default TimeZone is east or west of UTC, as an
`initdb` on a host in Berlin or California leaves it. Every instant the contract accepts, years
0001 and 9999 included, must be stored and returned exactly, and list and sort, with no 500. The
PgBouncer run (tests/test_pgbouncer.py) runs this file again in transaction mode, where a
connection's `options=-c TimeZone=...` would not survive.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import pytest
from conftest import Api, connect, make_settings, migrate_all, sibling_url
from psycopg import sql

from todo_api import create_app

# Each value the contract accepts, and how it comes back (UTC, Z).
EXTREMES = {
    "0001-01-01T00:00:00Z": "0001-01-01T00:00:00Z",
    "0001-01-01T09:00:00+09:00": "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00.000001Z": "0001-01-01T00:00:00.000001Z",
    "2026-03-29T01:30:00Z": "2026-03-29T01:30:00Z",  # Berlin's spring-forward night
    "9999-12-31T15:30:00-08:00": "9999-12-31T23:30:00Z",
    "9999-12-31T23:30:00Z": "9999-12-31T23:30:00Z",
    "9999-12-31T23:59:59.999999Z": "9999-12-31T23:59:59.999999Z",
}


@pytest.fixture(scope="module", params=["Europe/Berlin", "America/Los_Angeles"], ids=["east", "west"])
def zoned_app(request, database_url):
    """The app on a database whose TimeZone is this zone (created once, reused by later runs)."""
    zone = request.param
    name = "todo_tz_" + zone.split("/")[1].lower()
    with connect(database_url, autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        conn.execute(sql.SQL("ALTER DATABASE {} SET TimeZone = {}").format(sql.Identifier(name), sql.Literal(zone)))
    url = sibling_url(database_url, name)
    migrate_all(url)
    with connect(url) as conn:  # the premise: a session here starts in that zone
        assert conn.execute("SHOW TimeZone").fetchone()[0] == zone
    app = create_app(make_settings(url), configure_logs=False)
    app.testing = True
    yield app
    app.extensions["todo_api.db"].close()


@pytest.fixture
def zoned_api(zoned_app) -> Api:
    return Api(zoned_app.test_client(), f"tz-{uuid.uuid4().hex[:12]}")


def test_every_accepted_due_at_is_stored_and_returned_exactly(zoned_api):
    for sent, returned in EXTREMES.items():
        created = zoned_api.post(json={"title": sent, "due_at": sent})
        assert created.status_code == 201, (sent, created.get_data(as_text=True))
        assert created.json["data"]["due_at"] == returned
        task_id = created.json["data"]["id"]
        assert zoned_api.get(f"/{task_id}").json["data"]["due_at"] == returned
        patched = zoned_api.patch(f"/{task_id}", json={"due_at": sent, "completed": True})
        assert patched.status_code == 200, patched.get_data(as_text=True)
        assert patched.json["data"]["due_at"] == returned


def test_listing_sorts_and_filters_extreme_due_dates_and_pages_through_them(zoned_api):
    for sent in EXTREMES:
        zoned_api.create(title=sent, due_at=sent)
    in_order = sorted(set(EXTREMES.values()), key=lambda text: datetime.fromisoformat(text.replace("Z", "+00:00")))

    for sort, expected in (("due_at", in_order), ("-due_at", in_order[::-1])):
        seen, cursor = [], None
        while True:
            query = {"sort": sort, "limit": 2, **({"cursor": cursor} if cursor else {})}
            page = zoned_api.get(query_string=query)
            assert page.status_code == 200, page.get_data(as_text=True)
            seen += [task["due_at"] for task in page.json["data"]]
            cursor = page.json["meta"]["next_cursor"]
            if cursor is None:
                break
        assert list(dict.fromkeys(seen)) == expected

    window = zoned_api.get(
        query_string={"due_after": "0001-01-01T00:00:00.000001Z", "due_before": "9999-12-31T23:30:00Z", "total": "true"}
    )
    assert window.status_code == 200, window.get_data(as_text=True)
    assert sorted({task["due_at"] for task in window.json["data"]}) == in_order[1:-2]


def test_completed_at_and_created_at_come_back_in_utc(zoned_api):
    task = zoned_api.create(completed=True)
    for field in ("completed_at", "created_at", "updated_at"):
        assert task[field].endswith("Z")
