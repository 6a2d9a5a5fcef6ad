"""Positions (API.md §9, Order): keys compared byte-wise, new items last, at most 64 characters with a
rebalance of the group, ties broken by id, sort=position pages, and the order 0009 gives old tasks."""

from __future__ import annotations

import random
from urllib.parse import urlsplit

import pytest
from conftest import connect, task_row
from test_moves import move, order

from todo_api.platform import positions


def test_keys_between_compare_byte_wise_and_never_pass_64_characters():
    keys = positions.spread(100)
    assert keys == sorted(keys, key=str.encode) and len(set(keys)) == 100
    low, high = "a0", "a1"
    for _ in range(500):  # always into the same gap: the key grows until there is no room
        middle = positions.between(low, high)
        if middle is None:
            break
        assert low.encode() < middle.encode() < high.encode() and len(middle) <= positions.MAX_LENGTH
        high = middle
    else:
        pytest.fail("a key never grew past 64 characters")
    assert positions.between("a5", "a5") is None and positions.between("a6", "a5") is None


def set_position(conn, task_id: int, position: str) -> None:
    conn.execute("UPDATE tasks SET position = %s WHERE id = %s", [position, task_id])


def test_new_tasks_go_last_among_their_siblings_whatever_else_is_in_the_inbox(api):
    parent = api.create()
    first, second = api.create(parent_id=parent["id"]), api.create(parent_id=parent["id"])
    later = api.create()
    assert order(api, parent_id=parent["id"]) == [first["id"], second["id"]]
    assert order(api, list_id="none", parent_id="none") == [parent["id"], later["id"]]


def test_a_move_that_finds_no_key_within_64_characters_rebalances_the_group(api, conn):
    a, b, c, d = (api.create(title=name) for name in "abcd")
    set_position(conn, a["id"], "a0" + "V" * 62)  # 64 characters, and b right after it: no room between
    set_position(conn, b["id"], "a0" + "V" * 61 + "W")
    set_position(conn, c["id"], "a0" + "V" * 61 + "X")
    set_position(conn, d["id"], "a1")
    versions = {task["id"]: task_row(conn, task["id"])["version"] for task in (a, b, c, d)}
    moved = move(api, d["id"], after=a["id"])
    assert moved.status_code == 200
    assert order(api, list_id="none", parent_id="none") == [a["id"], d["id"], b["id"], c["id"]]
    rows = {task["id"]: task_row(conn, task["id"]) for task in (a, b, c, d)}
    assert all(len(row["position"]) <= 64 for row in rows.values())
    for task in (a, b, c):  # rewritten: each version + 1
        assert rows[task["id"]]["version"] == versions[task["id"]] + 1
    assert rows[d["id"]]["version"] == versions[d["id"]] + 1


def test_ties_are_broken_by_id_and_a_move_between_them_rebalances(api, conn):
    a, b, c = (api.create(title=name) for name in "abc")
    set_position(conn, a["id"], "a5")
    set_position(conn, b["id"], "a5")
    set_position(conn, c["id"], "a6")
    assert order(api, list_id="none", parent_id="none") == [a["id"], b["id"], c["id"]]
    assert move(api, c["id"], after=a["id"]).status_code == 200
    assert order(api, list_id="none", parent_id="none") == [a["id"], c["id"], b["id"]]
    assert len({task_row(conn, task["id"])["position"] for task in (a, b, c)}) == 3


@pytest.mark.parametrize("sort", ["position", "-position"])
def test_sort_by_position_pages_in_byte_order(api, conn, sort):
    tasks = [api.create(title=str(n)) for n in range(7)]
    keys = ["a0a", "a0B", "a0b", "a0A", "a0_", "a0Z", "a0z"]  # byte order differs from a linguistic one
    for task, key in zip(tasks, keys, strict=True):
        set_position(conn, task["id"], key)
    expected = [task["id"] for key, task in sorted(zip(keys, tasks, strict=True), key=lambda pair: pair[0].encode())]
    if sort.startswith("-"):
        expected.reverse()
    ids, cursor = [], None
    while True:
        query = {
            "sort": sort,
            "limit": 3,
            "list_id": "none",
            "parent_id": "none",
            **({"cursor": cursor} if cursor else {}),
        }
        body = api.get(query_string=query).json
        ids += [task["id"] for task in body["data"]]
        if (cursor := body["meta"]["next_cursor"]) is None:
            break
    assert ids == expected


def test_listing_filters_name_one_of_the_users_lists_or_tasks(api, other_api):
    theirs = other_api.create()
    for name, value in (("list_id", "12345"), ("parent_id", str(theirs["id"])), ("parent_id", "0"), ("list_id", "x")):
        response = api.get(query_string={name: value})
        assert response.status_code == 400 and list(response.json["error"]["details"]) == [name]


def test_the_migration_orders_existing_tasks_by_creation_in_the_inbox(database_url):
    from yoyo import read_migrations

    from todo_api.cli import MIGRATIONS_DIR, yoyo_backend

    name = f"positions_{random.randrange(10**9)}"
    with connect(database_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = urlsplit(database_url)._replace(path=f"/{name}").geturl()
    migrations = read_migrations(str(MIGRATIONS_DIR))
    try:
        backend = yoyo_backend(url)
        with backend.lock():
            backend.apply_migrations(backend.to_apply(migrations.filter(lambda m: m.id < "0009")))
        backend.connection.close()
        with connect(url, autocommit=True) as conn:
            for title, created in (("third", "2026-03-01"), ("first", "2026-01-01"), ("second", "2026-02-01")):
                conn.execute("INSERT INTO tasks (user_id, title, created_at) VALUES ('ann', %s, %s)", [title, created])
            conn.execute("INSERT INTO tasks (user_id, title, created_at) VALUES ('ann', 'tied', '2026-02-01')")
        backend = yoyo_backend(url)
        with backend.lock():
            backend.apply_migrations(backend.to_apply(migrations))
        backend.connection.close()
        with connect(url, autocommit=True) as conn:
            rows = conn.execute(
                'SELECT title, list_id, parent_id, position FROM tasks ORDER BY position COLLATE "C", id'
            ).fetchall()
            assert [row[0] for row in rows] == ["first", "second", "tied", "third"]
            assert {(row[1], row[2]) for row in rows} == {(None, None)}
            assert all(len(row[3]) <= 64 and not row[3].endswith("0") for row in rows)
            assert positions.between(rows[-1][3], None) > rows[-1][3]  # a valid key: a new task goes after
    finally:
        with connect(database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_a_rebalance_shows_in_sync_like_any_other_change(api, conn):
    from test_sync import synced, walk

    a, b, c = (api.create(title=name) for name in "abc")
    set_position(conn, a["id"], "a5")
    set_position(conn, b["id"], "a5")
    set_position(conn, c["id"], "a6")
    token = synced(api)["meta"]["sync_token"]
    move(api, c["id"], after=a["id"])
    tasks, _, _, _ = walk(api, token)
    seen = {task["id"]: task["position"] for task in tasks}
    assert seen == {task["id"]: task_row(conn, task["id"])["position"] for task in (a, b, c) if task["id"] in seen}
    assert c["id"] in seen and b["id"] in seen  # the moved task and the one rewritten
