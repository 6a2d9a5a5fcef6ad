"""GET /api/{user_id}/tasks (API.md §4, Listing): filters, every sort key both ways, keyset pages."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import Api, assert_error, direct_and_preparing, make_settings
from werkzeug.datastructures import MultiDict

from todo_api import create_app
from todo_api.platform.sealing import TokenCodec
from todo_api.sync.routes import TOKEN as SYNC_TOKEN
from todo_api.tasks.listing import CURSOR, ListQuery
from todo_api.tasks.schemas import list_query

RANK = {"none": 0, "low": 1, "medium": 2, "high": 3}
SORTS = [
    f"{direction}{key}"
    for key in ("created_at", "updated_at", "due_at", "remind_at", "priority", "title")
    for direction in ("", "-")
]
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

Params = Iterable[tuple[str, str]] | dict[str, str]


def insert_tasks(conn, user_id: str, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert tasks directly, to choose created_at and updated_at (the API takes them from the clock)."""
    tasks = []
    for row in rows:
        task = {
            "title": "A task",
            "description": None,
            "completed": False,
            "priority": "none",
            "tags": [],
            "due_at": None,
            "remind_at": None,
            "created_at": T0,
            "updated_at": T0,
            **row,
        }
        task["id"] = conn.execute(
            """INSERT INTO tasks (user_id, title, description, completed, completed_at, priority, tags, due_at,
                                  remind_at, created_at, updated_at)
               VALUES (%(user_id)s, %(title)s, %(description)s, %(completed)s,
                       CASE WHEN %(completed)s THEN %(updated_at)s END, %(priority)s, %(tags)s, %(due_at)s,
                       %(remind_at)s, %(created_at)s, %(updated_at)s)
               RETURNING id""",
            {**task, "user_id": user_id},
            prepare=False,  # the suite also runs through PgBouncer in transaction mode
        ).fetchone()["id"]
        tasks.append(task)
    return tasks


def tied_tasks(count: int = 24) -> list[dict[str, Any]]:
    """Tasks that share every sort key with others, some without due_at; titles sort alike in any collation."""
    return [
        {
            "title": ("pear", "apple", "fig", "apple")[i % 4],
            "priority": ("high", "none", "low", "none", "medium")[i % 5],
            "created_at": T0 + timedelta(hours=i % 3),
            "updated_at": T0 + timedelta(minutes=(i * 7) % 4),
            "due_at": None if i % 4 == 1 else T0 + timedelta(days=i % 3),
            "remind_at": None if i % 3 == 1 else T0 - timedelta(hours=i % 4),
        }
        for i in range(count)
    ]


def expected_ids(tasks: list[dict[str, Any]], sort: str) -> list[int]:
    """The contract's order: by the key, ties by id in the same direction, no due_at last either way."""
    key, descending = sort.lstrip("-"), sort.startswith("-")
    present = [task for task in tasks if task[key] is not None]
    missing = [task for task in tasks if task[key] is None]

    def order(task: dict[str, Any]) -> tuple[Any, int]:
        return (RANK[task[key]] if key == "priority" else task[key], task["id"])

    ordered = sorted(present, key=order, reverse=descending)
    ordered += sorted(missing, key=lambda task: task["id"], reverse=descending)
    return [task["id"] for task in ordered]


def _pairs(params: Params) -> list[tuple[str, str]]:
    return list(params.items()) if isinstance(params, dict) else list(params)


def listed(api, params: Params = ()) -> dict[str, Any]:
    response = api.get(query_string=_pairs(params))
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.json


def ids(api, params: Params = ()) -> list[int]:
    return [task["id"] for task in listed(api, params)["data"]]


def walk(api, params: Params = (), limit: int = 3, max_pages: int = 200) -> list[int]:
    """Follow next_cursor to the end; every page but the last is full."""
    seen: list[int] = []
    cursor = None
    for _ in range(max_pages):
        query = [*_pairs(params), ("limit", str(limit))] + ([("cursor", cursor)] if cursor else [])
        body = listed(api, query)
        assert body["meta"]["count"] == len(body["data"]) and body["meta"]["limit"] == limit
        seen += [task["id"] for task in body["data"]]
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return seen
        assert len(body["data"]) == limit
    raise AssertionError("the walk did not end")


def first_cursor(api, params: Params = (), limit: int = 2) -> str:
    cursor = listed(api, [*_pairs(params), ("limit", str(limit))])["meta"]["next_cursor"]
    assert cursor
    return cursor


def assert_names(response, *names: str) -> dict[str, Any]:
    error = assert_error(response, 400, "validation_error")
    assert sorted(error["details"]) == sorted(names), error
    return error


# --- sort and pages --------------------------------------------------------------------------


def test_default_listing_is_newest_first_with_the_list_meta(api, conn):
    tasks = insert_tasks(conn, api.user_id, tied_tasks(6))
    body = listed(api)
    assert [task["id"] for task in body["data"]] == expected_ids(tasks, "-created_at")
    assert body["meta"].keys() == {"request_id", "count", "limit", "next_cursor"}
    assert body["meta"]["count"] == 6 and body["meta"]["limit"] == 20 and body["meta"]["next_cursor"] is None
    assert body["data"][0].keys() == {
        "id", "user_id", "title", "description", "completed", "completed_at",
        "priority", "tags", "due_at", "recurrence", "timezone", "remind_at", "next_id",
        "list_id", "parent_id", "position", "created_at", "updated_at", "version",
    }  # fmt: skip


@pytest.mark.parametrize("sort", SORTS)
def test_every_sort_orders_by_its_key_then_id_in_the_same_direction(api, conn, sort):
    tasks = insert_tasks(conn, api.user_id, tied_tasks())
    expected = expected_ids(tasks, sort)
    assert ids(api, {"sort": sort, "limit": "100"}) == expected
    assert walk(api, {"sort": sort}, limit=3) == expected
    assert walk(api, {"sort": sort}, limit=7) == expected


@pytest.mark.parametrize("sort", SORTS)
@pytest.mark.parametrize("due_at", [T0, None], ids=["due", "no-due"])
def test_walk_over_25_identical_tasks_returns_each_once_in_id_order(api, conn, sort, due_at):
    same = {"title": "same", "priority": "medium", "created_at": T0, "updated_at": T0, "due_at": due_at}
    same["remind_at"] = due_at
    tasks = insert_tasks(conn, api.user_id, [same] * 25)
    by_id = sorted(task["id"] for task in tasks)
    assert walk(api, {"sort": sort}, limit=3) == (by_id[::-1] if sort.startswith("-") else by_id)


@pytest.mark.parametrize("sort", ["due_at", "-due_at", "remind_at", "-remind_at"])
def test_tasks_without_due_at_or_remind_at_come_last_in_both_directions(api, sort):
    key = sort.lstrip("-")
    early = api.create(title="early", **{key: "2026-05-01T09:00:00Z"})
    undated = [api.create(title=f"undated {n}") for n in range(3)]
    late = api.create(title="late", **{key: "2026-05-02T09:00:00+02:00"})
    dated = [late["id"], early["id"]] if sort.startswith("-") else [early["id"], late["id"]]
    undated_ids = sorted((task["id"] for task in undated), reverse=sort.startswith("-"))
    assert ids(api, {"sort": sort}) == dated + undated_ids
    for limit in (1, 2, 3):  # page boundaries before, at and inside the tasks without due_at
        assert walk(api, {"sort": sort}, limit=limit) == dated + undated_ids


def test_priority_sorts_by_rank_not_by_name(api):
    created = {priority: api.create(priority=priority)["id"] for priority in ("medium", "none", "high", "low")}
    assert ids(api, {"sort": "priority"}) == [created[p] for p in ("none", "low", "medium", "high")]
    assert ids(api, {"sort": "-priority"}) == [created[p] for p in ("high", "medium", "low", "none")]


def test_title_sorts_by_the_database_collation_of_the_stored_text(api, conn):
    titles = ["Zebra", "apple", "Äpfel", "éclair", "10 pens", "2 pens", "apple", "a b", "ab", "_x", "😀 smile"]
    tasks = [api.create(title=title) for title in titles]
    expected = [
        row["id"]
        for row in conn.execute("SELECT id FROM tasks WHERE user_id = %s ORDER BY title, id", [api.user_id]).fetchall()
    ]
    assert sorted(expected) == sorted(task["id"] for task in tasks)
    assert ids(api, {"sort": "title"}) == expected
    assert walk(api, {"sort": "-title"}, limit=2) == expected[::-1]


def test_next_cursor_is_null_exactly_when_nothing_follows(api):
    empty = listed(api)
    assert empty["data"] == [] and empty["meta"]["count"] == 0 and empty["meta"]["next_cursor"] is None
    created = [api.create(title=f"task {n}")["id"] for n in range(6)]
    newest_first = created[::-1]

    full = listed(api, {"limit": "6"})
    assert [task["id"] for task in full["data"]] == newest_first and full["meta"]["next_cursor"] is None

    first = listed(api, {"limit": "3"})
    assert first["meta"]["next_cursor"] is not None
    second = listed(api, {"limit": "3", "cursor": first["meta"]["next_cursor"]})
    assert [task["id"] for task in second["data"]] == newest_first[3:]
    assert second["meta"]["next_cursor"] is None  # ends on the last task: no empty page to fetch

    first = listed(api, {"limit": "5"})
    last = listed(api, {"limit": "5", "cursor": first["meta"]["next_cursor"]})
    assert [task["id"] for task in last["data"]] == newest_first[5:] and last["meta"]["next_cursor"] is None


@pytest.mark.parametrize("sort", ["-created_at", "created_at", "title", "-priority"])
def test_walk_returns_every_task_once_while_others_are_created(api, sort):
    originals = [api.create(title=f"m{n % 4}", priority=("low", "high")[n % 2])["id"] for n in range(13)]
    seen: list[int] = []
    cursor = None
    for page in range(20):
        query = {"sort": sort, "limit": "4", **({"cursor": cursor} if cursor else {})}
        body = listed(api, query)
        seen += [task["id"] for task in body["data"]]
        # New tasks land before, among and after the ones already listed.
        for title in ("a", f"m{page % 4}", "z"):
            api.create(title=title, priority="high")
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen))
    assert [task_id for task_id in seen if task_id in originals] == [
        task_id for task_id in ids(api, {"sort": sort, "limit": "100"}) if task_id in originals
    ]
    assert set(originals) <= set(seen)


def test_limit_may_change_between_pages(api):
    created = [api.create(title=f"task {n}")["id"] for n in range(7)]
    first = listed(api, {"limit": "2"})
    rest = listed(api, {"limit": "10", "cursor": first["meta"]["next_cursor"]})
    assert [task["id"] for task in first["data"] + rest["data"]] == created[::-1]


def test_limit_bounds(api):
    for n in range(3):
        api.create(title=f"task {n}")
    assert listed(api, {"limit": "1"})["meta"]["count"] == 1
    meta = listed(api, {"limit": "100"})["meta"]
    assert meta["count"] == 3 and meta["limit"] == 100 and meta["next_cursor"] is None


# --- filters ---------------------------------------------------------------------------------


def test_status_filter(api):
    pending = [api.create(title="open")["id"] for _ in range(2)]
    done = [api.create(title="done", completed=True)["id"] for _ in range(2)]
    assert ids(api, {"status": "pending"}) == pending[::-1]
    assert ids(api, {"status": "completed"}) == done[::-1]
    assert ids(api, {"status": "all"}) == ids(api) == (pending + done)[::-1]


def test_priority_takes_a_comma_separated_list(api):
    created = {priority: api.create(priority=priority)["id"] for priority in ("none", "low", "medium", "high")}
    assert ids(api, {"priority": "high"}) == [created["high"]]
    assert set(ids(api, {"priority": "low,high"})) == {created["low"], created["high"]}
    assert set(ids(api, {"priority": "high, none"})) == {created["high"], created["none"]}
    assert ids(api, {"priority": "high,high"}) == [created["high"]]


@pytest.mark.parametrize("value", ["urgent", "high,urgent", "", "high,", "HIGH", ",", "high;low"])
def test_priority_with_a_bad_member_is_400(api, value):
    assert_names(api.get(query_string={"priority": value}), "priority")


def test_tags_match_every_tag_given_case_insensitively(api):
    both = api.create(title="both", tags=["Home", "WORK"])["id"]
    home = api.create(title="home", tags=["home", "garden"])["id"]
    work = api.create(title="work", tags=["work"])["id"]
    api.create(title="none")
    umlaut = api.create(title="umlaut", tags=["Ärzte"])["id"]
    assert ids(api, [("tag", "home")]) == [home, both]
    assert ids(api, [("tag", "HOME"), ("tag", "work")]) == [both]
    assert ids(api, [("tag", "work"), ("tag", "Home")]) == [both]
    assert ids(api, [("tag", "work")]) == [work, both]
    assert ids(api, [("tag", "home"), ("tag", "garden"), ("tag", "work")]) == []
    assert ids(api, [("tag", " garden ")]) == [home]  # trimmed like the stored tags
    assert ids(api, [("tag", "ärzte")]) == [umlaut]
    assert ids(api, [("tag", "hom")]) == []  # whole tags, not substrings


def test_tags_are_folded_by_the_database_on_both_sides(api, conn):
    """Python folds "İ" to "i̇" (two code points); the database's lower() decides for stored and asked tags."""
    task = api.create(title="trip", tags=["izmir"])["id"]
    folds = conn.execute("SELECT lower('İZMIR') = 'izmir' AS same").fetchone()["same"]
    assert ids(api, [("tag", "İZMIR")]) == ([task] if folds else [])


def test_tag_may_repeat_up_to_twenty_times(api):
    task = api.create(title="tagged", tags=[f"t{n}" for n in range(20)])["id"]
    assert ids(api, [("tag", f"T{n}") for n in range(20)]) == [task]
    assert_names(api.get(query_string=[("tag", f"t{n}") for n in range(21)]), "tag")


def test_q_is_a_case_insensitive_substring_of_title_or_description(api):
    in_title = api.create(title="Buy MILK")["id"]
    in_description = api.create(title="Groceries", description="oat milk, please")["id"]
    api.create(title="Call mum", description="about the dentist")
    unicode = api.create(title="Straße ÉCOLE")["id"]
    assert ids(api, {"q": "milk"}) == [in_description, in_title]
    assert ids(api, {"q": "MiLk"}) == [in_description, in_title]
    assert ids(api, {"q": "k, p"}) == [in_description]
    assert ids(api, {"q": "école"}) == [unicode]
    assert ids(api, {"q": "dentist"}) != [] and ids(api, {"q": "nothing like this"}) == []


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("%", ["100% done", "a%b_c\\d"]),
        ("_", ["snake_case", "a%b_c\\d"]),
        ("\\", ["back\\slash", "a%b_c\\d"]),
        ("0%", ["100% done"]),
        ("e_c", ["snake_case"]),
        ("%b_c\\", ["a%b_c\\d"]),
        ("'; DROP TABLE tasks; --", ["'; DROP TABLE tasks; -- (not really)"]),
    ],
)
def test_q_treats_like_wildcards_and_quotes_literally(api, q, expected):
    titles = ["100% done", "100 done", "snake_case", "snakeXcase", "back\\slash", "backslash", "a%b_c\\d"]
    titles.append("'; DROP TABLE tasks; -- (not really)")
    by_id = {api.create(title=title)["id"]: title for title in titles}
    assert sorted(by_id[task_id] for task_id in ids(api, {"q": q})) == sorted(expected)


@pytest.mark.parametrize(
    ("field", "sort"),
    [
        *(("due_at", sort) for sort in ("due_at", "-due_at", "-created_at", "title")),
        *(("remind_at", sort) for sort in ("remind_at", "-remind_at", "due_at", "-created_at")),
    ],
)
def test_after_bounds_are_inclusive_and_before_bounds_exclusive(api, field, sort):
    due = {n: api.create(title=f"due {n}", **{field: f"2026-06-0{n}T12:00:00Z"})["id"] for n in (1, 2, 3)}
    api.create(title="undated")
    prefix = field.removesuffix("_at")

    def matching(**bounds: str) -> set[int]:
        named = {f"{prefix}_{name.removeprefix('due_')}": value for name, value in bounds.items()}
        found = ids(api, {"sort": sort, **named})
        assert walk(api, {"sort": sort, **named}, limit=1) == found
        return set(found)

    assert matching(due_after="2026-06-02T12:00:00Z") == {due[2], due[3]}
    assert matching(due_before="2026-06-02T12:00:00Z") == {due[1]}
    assert matching(due_after="2026-06-01T12:00:00Z", due_before="2026-06-03T12:00:00Z") == {due[1], due[2]}
    assert matching(due_after="2026-06-02T14:00:00+02:00") == {due[2], due[3]}  # the same instant
    assert matching(due_after="2026-06-02T12:00:00.000001Z") == {due[3]}
    assert matching(due_after="2026-06-03T12:00:00Z", due_before="2026-06-01T12:00:00Z") == set()
    assert matching(due_after="1970-01-01T00:00:00Z") == set(due.values())  # never the task without due_at
    assert matching(due_before="9999-12-31T23:59:59Z") == set(due.values())


def test_filters_combine(api):
    match = api.create(title="Pay rent", priority="high", tags=["home"], due_at="2026-06-01T00:00:00Z")["id"]
    api.create(title="Pay rent", priority="low", tags=["home"], due_at="2026-06-01T00:00:00Z")
    api.create(title="Pay rent", priority="high", tags=["work"], due_at="2026-06-01T00:00:00Z")
    api.create(title="Pay rent", priority="high", tags=["home"], due_at="2026-07-01T00:00:00Z")
    api.create(title="Pay rent", priority="high", tags=["home"], due_at="2026-06-01T00:00:00Z", completed=True)
    api.create(title="Call mum", priority="high", tags=["home"], due_at="2026-06-01T00:00:00Z")
    query = {
        "status": "pending",
        "priority": "high,medium",
        "q": "rent",
        "due_before": "2026-06-15T00:00:00Z",
        "sort": "due_at",
        "total": "true",
    }
    body = listed(api, [*query.items(), ("tag", "HOME")])
    assert [task["id"] for task in body["data"]] == [match] and body["meta"]["total"] == 1


def test_filters_never_reach_another_users_tasks(api, other_api):
    mine = api.create(title="shared words", tags=["home"], priority="high")["id"]
    other_api.create(title="shared words", tags=["home"], priority="high")
    for params in ({"q": "shared"}, {"tag": "home"}, {"priority": "high"}, {"sort": "title"}, {"total": "true"}):
        body = listed(api, params)
        assert [task["id"] for task in body["data"]] == [mine]
        assert body["meta"].get("total", 1) == 1


# --- total -----------------------------------------------------------------------------------


def test_total_counts_every_match_on_every_page(api):
    for n in range(7):
        api.create(title=f"task {n}", completed=n < 3)
    first = listed(api, {"total": "true", "limit": "2"})
    assert first["meta"]["total"] == 7 and first["meta"]["count"] == 2
    pending = listed(api, {"total": "true", "limit": "2", "status": "pending"})
    assert pending["meta"]["total"] == 4
    second = listed(api, {"total": "true", "limit": "2", "status": "pending", "cursor": pending["meta"]["next_cursor"]})
    assert second["meta"]["total"] == 4 and second["meta"]["count"] == 2
    assert "total" not in listed(api, {"total": "false"})["meta"]
    assert "total" not in listed(api)["meta"]
    assert listed(api, {"total": "true", "q": "no such task"})["meta"]["total"] == 0


# --- bad parameters --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("status", "done"),
        ("status", ""),
        ("status", "ALL"),
        ("status", "pending\x00"),
        ("limit", "0"),
        ("limit", "101"),
        ("limit", "-1"),
        ("limit", "+5"),
        ("limit", " 5"),
        ("limit", "abc"),
        ("limit", "1.5"),
        ("limit", "1e2"),
        ("limit", ""),
        ("limit", "²"),
        ("limit", "٣"),
        ("limit", "99999999999999999999"),
        ("sort", "colour"),
        ("sort", "+title"),
        ("sort", "-"),
        ("sort", "Title"),
        ("sort", "title,-id"),
        ("sort", "id"),
        ("sort", "--title"),
        ("total", "yes"),
        ("total", "1"),
        ("total", "TRUE"),
        ("total", ""),
        ("q", ""),
        ("q", "x" * 201),
        ("q", "nul\x00byte"),
        ("tag", ""),
        ("tag", "   "),
        ("tag", "x" * 51),
        ("tag", "nul\x00"),
        ("cursor", ""),
        ("cursor", "x" * 2049),
        ("due_before", "2026-06-01T12:00:00"),
        ("due_before", "2026-06-01"),
        ("due_before", "tomorrow"),
        ("due_before", "2026-13-01T00:00:00Z"),
        ("due_before", "2026-06-01 12:00:00Z"),
        ("due_after", "2026-06-01T12:00:00"),
        ("due_after", "2026-06-01T12:00:00+25:00"),
        ("due_after", "2026-06-01T12:00:00 02:00"),  # an unencoded "+" arrives as a space
        ("due_after", "1780000000"),
        ("remind_before", "2026-06-01T12:00:00"),
        ("remind_after", "tomorrow"),
        ("sort", "remind"),
    ],
)
def test_bad_value_is_400_naming_the_parameter(api, name, value):
    assert_names(api.get(query_string={name: value}), name)


@pytest.mark.parametrize("name", ["page", "offset", "Status", "sort_by", "per_page", "user_id", "tags"])
def test_unknown_parameter_is_400_naming_it(api, name):
    assert_names(api.get(query_string={name: "1"}), name)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("status", "pending"),
        ("sort", "title"),
        ("limit", "5"),
        ("q", "milk"),
        ("total", "true"),
        ("priority", "high"),
        ("due_before", "2026-06-01T00:00:00Z"),
        ("due_after", "2026-06-01T00:00:00Z"),
        ("remind_before", "2026-06-01T00:00:00Z"),
    ],
)
def test_parameter_given_twice_is_400_naming_it(api, name, value):
    error = assert_names(api.get(query_string=[(name, value), (name, value)]), name)
    assert error["details"][name] == ["Give this parameter once."]


def test_cursor_given_twice_is_400_naming_it(api):
    for n in range(3):
        api.create(title=f"task {n}")
    cursor = first_cursor(api)
    assert_names(api.get(query_string=[("cursor", cursor), ("cursor", cursor)]), "cursor")


def test_every_bad_parameter_is_named_at_once(api):
    response = api.get(query_string=[("status", "done"), ("limit", "0"), ("colour", "red"), ("sort", "x"), ("q", "")])
    assert_names(response, "status", "limit", "colour", "sort", "q")


# --- cursors ---------------------------------------------------------------------------------


@pytest.fixture
def five_tasks(api) -> list[int]:
    fields = {"tags": ["home"], "priority": "high", "due_at": "2026-01-01T00:00:00Z"}
    return [api.create(title=f"task {n}", **fields)["id"] for n in range(5)]


def _flip(text: str, index: int) -> str:
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]


def tampered_cursors(cursor: str) -> list[str]:
    return [
        _flip(cursor, 0),
        _flip(cursor, 5),  # the nonce
        _flip(cursor, len(cursor) // 2),
        _flip(cursor, len(cursor) - 1),  # may only touch unused bits: still refused
        cursor[:-1],
        cursor + "A",
        cursor + "=",
        cursor + "==",
        cursor + "!",
        cursor[1:],
        cursor[len(cursor) // 2 :] + cursor[: len(cursor) // 2],
        cursor + "." + cursor,
        "garbage",
        "a.b",
        ".",
        "é" * 40,
        "eyJ0ZXN0IjogMX0",
        "A" * 40,
        cursor.upper(),
    ]


def test_tampered_cursor_is_400_naming_cursor(api, five_tasks):
    cursor = first_cursor(api)
    assert listed(api, {"cursor": cursor})["meta"]["count"] == 3  # the genuine one works
    for bad in tampered_cursors(cursor):
        assert bad != cursor
        assert_names(api.get(query_string={"cursor": bad}), "cursor")


@pytest.mark.parametrize(
    ("issued", "reused"),
    [
        ({}, {"sort": "created_at"}),
        ({"sort": "title"}, {"sort": "-title"}),
        ({"sort": "title"}, {"sort": "priority"}),
        ({}, {"status": "pending"}),
        ({"status": "pending"}, {"status": "completed"}),
        ({"status": "pending"}, {}),
        ({}, {"tag": "home"}),
        ({"tag": "home"}, {"tag": "work"}),
        ({"priority": "high"}, {"priority": "high,low"}),
        ({"q": "task"}, {}),
        ({"due_after": "2020-01-01T00:00:00Z"}, {"due_after": "2020-01-02T00:00:00Z"}),
        ({"due_before": "2030-01-01T00:00:00Z"}, {"due_after": "2030-01-01T00:00:00Z"}),
    ],
)
def test_cursor_from_another_sort_or_filter_is_400_naming_cursor(api, issued, reused):
    for n in range(5):
        api.create(title=f"task {n}", tags=["home", "work"], priority="high", due_at="2026-01-01T00:00:00Z")
    cursor = first_cursor(api, issued)
    assert listed(api, {**issued, "cursor": cursor})["meta"]["count"] == 3
    assert_names(api.get(query_string={**reused, "cursor": cursor}), "cursor")


@pytest.mark.parametrize(
    ("issued", "reused"),
    [
        ({}, {"status": "all"}),
        ({"priority": "high,low"}, {"priority": "low, high"}),
        ({"sort": "-created_at", "tag": "home"}, {"tag": "home"}),
        ({"due_after": "2020-01-01T00:00:00Z"}, {"due_after": "2020-01-01T02:00:00+02:00"}),
    ],
)
def test_cursor_accepts_the_same_listing_spelled_differently(api, five_tasks, issued, reused):
    cursor = first_cursor(api, issued)
    assert listed(api, {**reused, "cursor": cursor})["meta"]["count"] == 3


def test_cursor_with_repeated_tags_in_another_order_is_the_same_listing(api):
    for n in range(4):
        api.create(title=f"task {n}", tags=["home", "work"])
    cursor = first_cursor(api, [("tag", "home"), ("tag", "work")])
    assert listed(api, [("tag", "work"), ("tag", "home"), ("cursor", cursor)])["meta"]["count"] == 2


def _plain(cursor: str) -> bytes:
    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))


def _codec(conn) -> TokenCodec:
    """The service's codec, built from the key in the database: lets a test forge cursors."""
    return TokenCodec(bytes(conn.execute("SELECT secret FROM signing_keys WHERE name = 'cursor'").fetchone()["secret"]))


def _fingerprint(sort: str) -> str:
    options = list_query.load_args(MultiDict({"sort": sort}))
    return ListQuery(options).fingerprint


def test_cursor_sealed_with_another_key_is_400(api, five_tasks):
    fingerprint = _fingerprint("-created_at")
    forged = TokenCodec(b"not the key" * 4).seal(
        CURSOR, json.dumps(["2026-01-01T00:00:00+00:00", 1]).encode(), user_id=api.user_id, context=fingerprint
    )
    assert_names(api.get(query_string={"cursor": forged}), "cursor")


def test_a_sync_token_is_not_a_cursor(api, conn, five_tasks):
    """Same key material, another purpose: a token sealed for sync never opens as a cursor."""
    payload = json.dumps(["2026-01-01T00:00:00+00:00", 1]).encode()
    codec = _codec(conn)
    cursor = codec.seal(CURSOR, payload, user_id=api.user_id, context=_fingerprint("-created_at"))
    assert api.get(query_string={"cursor": cursor}).status_code == 200  # the forging works
    token = codec.seal(SYNC_TOKEN, payload, user_id=api.user_id, context=_fingerprint("-created_at"))
    assert_names(api.get(query_string={"cursor": token}), "cursor")


@pytest.mark.parametrize(
    ("sort", "key", "task_id"),
    [
        ("-created_at", 12345, 1),
        ("-created_at", "not a date", 1),
        ("-created_at", "2026-01-01T00:00:00", 1),  # naive
        ("-created_at", "infinity", 1),  # only due_at has stand-ins
        ("-created_at", "2026-01-01T00:00:00+00:00", 0),
        ("-created_at", "2026-01-01T00:00:00+00:00", -1),
        ("-created_at", "2026-01-01T00:00:00+00:00", "1"),
        ("-created_at", "2026-01-01T00:00:00+00:00", 2**63),
        ("-created_at", None, 1),
        ("-created_at", "0001-01-01T00:00:00+01:00", 1),  # before year 1 in UTC
        ("-created_at", "2026-01-01T00:00:00Z", True),
        ("due_at", "2026-01-01", 1),
        ("priority", "urgent", 1),
        ("title", "nul\x00", 1),
        ("title", "\ud800", 1),  # a lone surrogate: not text PostgreSQL can take
        ("title", ["a"], 1),
    ],
)
def test_sealed_cursor_with_an_impossible_position_is_400_not_500(api, conn, sort, key, task_id):
    """Defence in depth: even a validly sealed cursor only ever carries a key of the sort's type."""
    for n in range(3):
        api.create(title=f"task {n}")
    codec, fingerprint = _codec(conn), _fingerprint(sort)
    fitting = {"-created_at": "2026-01-01T00:00:00+05:00", "due_at": "infinity", "priority": "low", "title": "m"}
    genuine = codec.seal(CURSOR, json.dumps([fitting[sort], 1]).encode(), user_id=api.user_id, context=fingerprint)
    assert api.get(query_string={"sort": sort, "cursor": genuine}).status_code == 200  # the forging works
    forged = codec.seal(CURSOR, json.dumps([key, task_id]).encode(), user_id=api.user_id, context=fingerprint)
    assert_names(api.get(query_string={"sort": sort, "cursor": forged}), "cursor")


def test_another_users_cursor_is_400_naming_cursor(api, other_api):
    """A cursor is bound to its user (API.md §4): the same listing's cursor from another user is refused."""
    for n in range(4):
        api.create(title=f"mine {n}")
        other_api.create(title=f"theirs {n}")
    theirs = first_cursor(other_api, {"sort": "title"})
    assert listed(other_api, {"sort": "title", "cursor": theirs})["meta"]["count"] == 2
    assert_names(api.get(query_string={"sort": "title", "cursor": theirs}), "cursor")


@pytest.mark.parametrize("sort", ["title", "-title", "created_at", "due_at", "priority"])
def test_cursor_holds_no_readable_task_text(api, sort):
    """A cursor is opaque (API.md §4, issue 17): a sort=title cursor once decoded to the title."""
    secret_title = "Carols surprise party"
    for n in range(3):
        api.create(title=f"{secret_title} {n}", due_at="2026-05-04T03:02:01Z", priority="high")
    cursor = first_cursor(api, {"sort": sort}, limit=1)
    for text in (cursor.encode(), _plain(cursor)):
        for needle in (b"Carol", b"surprise", b"2026", b"high", str(api.user_id).encode()):
            assert needle not in text
    assert len({first_cursor(api, {"sort": sort}, limit=1) for _ in range(3)}) == 3  # sealed afresh each time


def test_cursor_survives_deleting_the_task_it_points_at(api):
    created = [api.create(title=f"task {n}")["id"] for n in range(6)]
    first = listed(api, {"limit": "3"})
    assert api.delete(f"/{first['data'][-1]['id']}").status_code == 200
    rest = listed(api, {"cursor": first["meta"]["next_cursor"]})
    assert [task["id"] for task in rest["data"]] == created[::-1][3:]


@pytest.mark.parametrize("character", ["😀", "\x01", '"', "\\", "é"])
def test_cursor_after_the_longest_titles_fits_the_cursor_limit(api, character):
    created = [api.create(title=f"{n}" + character * 199)["id"] for n in range(3)]
    cursors = []
    seen = []
    cursor = None
    for _ in range(5):
        body = listed(api, {"sort": "title", "limit": "1", **({"cursor": cursor} if cursor else {})})
        seen += [task["id"] for task in body["data"]]
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            break
        cursors.append(cursor)
    assert seen == created and cursors and max(len(cursor) for cursor in cursors) <= 2048


@direct_and_preparing
def test_everyday_listings_are_prepared_and_value_dependent_ones_are_planned_each_time(database_url):
    """A status/sort/cursor listing is one index range scan whatever the values, so it is prepared;
    with a tag, word, priority or due filter the best plan depends on the value, so it never is."""
    app = create_app(make_settings(database_url, db_pool_min_size=1, db_pool_max_size=1), configure_logs=False)
    api = Api(app.test_client(), f"prepared-{uuid.uuid4().hex[:8]}")
    everyday = [{"status": "pending", "sort": "-priority"}, {"sort": "title"}]
    value_dependent = [{"tag": "home"}, {"q": "milk"}, {"priority": "high"}, {"due_before": "2026-01-01T00:00:00Z"}]
    try:
        for params in everyday + value_dependent:
            for _ in range(6):  # psycopg prepares a statement on its 5th run
                assert api.get(query_string=params).status_code == 200
        with app.extensions["todo_api.db"].pool.connection() as pooled:  # the only connection: max_size=1
            prepared = [row["statement"] for row in pooled.execute("SELECT statement FROM pg_prepared_statements")]
    finally:
        app.extensions["todo_api.db"].close()
    # The value-dependent listings all sort by created_at (the default), so none of them was prepared.
    listings = [statement for statement in prepared if "ORDER BY" in statement]
    assert sorted(statement.split("ORDER BY")[1].split()[0] for statement in listings) == ['"priority"', '"title"']
