"""ETags with If-Match, and Idempotency-Key on create (API.md §4, Concurrency and retries)."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
import requests
from conftest import SECRET, assert_error, make_token, task_row

from todo_api.platform.idempotency import PURGE_BATCH

WRITES = [
    ("PUT", "", {"title": "Replaced"}),
    ("PATCH", "", {"title": "Patched"}),
    ("PATCH", "/complete", None),
    ("DELETE", "", None),
]


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
def test_if_match_with_the_current_version_writes(api, method, suffix, body):
    task = api.create()
    response = api.request(method, f"/{task['id']}{suffix}", json=body, headers={"If-Match": '"1"'})
    assert response.status_code == 200
    assert response.headers["ETag"] == ('"1"' if method == "DELETE" else '"2"')


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
@pytest.mark.parametrize("if_match", ['"2"', 'W/"1"', "1", "garbage", '"0"'])
def test_if_match_mismatch_is_412_and_changes_nothing(api, conn, method, suffix, body, if_match):
    task = api.create(title="Original")
    response = api.request(method, f"/{task['id']}{suffix}", json=body, headers={"If-Match": if_match})
    assert_error(response, 412, "precondition_failed")
    row = task_row(conn, task["id"])
    assert row is not None and row["title"] == "Original" and row["version"] == 1 and not row["completed"]


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
def test_if_match_star_matches_any_existing_task(api, method, suffix, body):
    task = api.create()
    api.patch(f"/{task['id']}", json={"title": "v2"})
    response = api.request(method, f"/{task['id']}{suffix}", json=body, headers={"If-Match": "*"})
    assert response.status_code == 200


def test_if_match_list_matches_any_of_its_strong_tags(api):
    task = api.create()
    response = api.patch(f"/{task['id']}", json={"title": "x"}, headers={"If-Match": 'W/"1", "7", "1"'})
    assert response.status_code == 200


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
def test_if_match_on_a_missing_task_is_404(api, other_api, method, suffix, body):
    theirs = other_api.create()
    response = api.request(method, f"/{theirs['id']}{suffix}", json=body, headers={"If-Match": '"1"'})
    assert_error(response, 404, "not_found")


def test_if_none_match_uses_weak_comparison_and_lists(api):
    task = api.create()
    for header in ('W/"1"', '"3", "1"', "*"):
        assert api.get(f"/{task['id']}", headers={"If-None-Match": header}).status_code == 304


# --- Idempotency-Key ---------------------------------------------------------------------------


def count_tasks(conn, user_id: str) -> int:
    return conn.execute("SELECT count(*) AS n FROM tasks WHERE user_id = %s", [user_id]).fetchone()["n"]


def test_retry_with_the_same_key_and_body_returns_the_first_response(api, conn):
    headers = {"Idempotency-Key": "key-1"}
    first = api.post(json={"title": "Once", "tags": ["a"]}, headers=headers)
    api.patch(f"/{first.json['data']['id']}", json={"title": "Changed since"})
    retry = api.post(
        data='{ "tags": ["a"],   "title": "Once" }', headers={**headers, "Content-Type": "application/json"}
    )
    assert first.status_code == retry.status_code == 201
    assert retry.json["data"] == first.json["data"]
    assert retry.headers["Location"] == first.headers["Location"]
    assert retry.headers["ETag"] == first.headers["ETag"] == '"1"'
    assert retry.json["meta"]["request_id"] == retry.headers["X-Request-ID"] != first.headers["X-Request-ID"]
    assert count_tasks(conn, api.user_id) == 1


def test_same_key_with_a_different_body_is_409_and_creates_nothing(api, conn):
    api.post(json={"title": "First"}, headers={"Idempotency-Key": "k"})
    response = api.post(json={"title": "Second"}, headers={"Idempotency-Key": "k"})
    assert_error(response, 409, "idempotency_conflict")
    assert count_tasks(conn, api.user_id) == 1


def test_a_request_that_failed_validation_is_not_remembered(api, conn):
    assert_error(api.post(json={"title": ""}, headers={"Idempotency-Key": "fix-me"}), 400, "validation_error")
    response = api.post(json={"title": "Fixed"}, headers={"Idempotency-Key": "fix-me"})
    assert response.status_code == 201 and response.json["data"]["title"] == "Fixed"
    assert count_tasks(conn, api.user_id) == 1


def test_keys_are_scoped_to_the_user(api, other_api, conn):
    mine = api.post(json={"title": "Same"}, headers={"Idempotency-Key": "shared"})
    theirs = other_api.post(json={"title": "Same"}, headers={"Idempotency-Key": "shared"})
    assert mine.status_code == theirs.status_code == 201
    assert mine.json["data"]["id"] != theirs.json["data"]["id"]
    assert theirs.json["data"]["user_id"] == other_api.user_id
    assert count_tasks(conn, api.user_id) == count_tasks(conn, other_api.user_id) == 1


@pytest.mark.parametrize("key", ["", "k" * 256, "has space", "tab\tkey", "ключ"])
def test_malformed_key_is_400_naming_the_header(api, conn, key):
    response = api.post(json={"title": "x"}, headers={"Idempotency-Key": key})
    error = assert_error(response, 400, "validation_error")
    assert list(error["details"]) == ["Idempotency-Key"]
    assert count_tasks(conn, api.user_id) == 0


def test_key_of_255_visible_characters_is_accepted(api):
    assert api.post(json={"title": "x"}, headers={"Idempotency-Key": "~" * 255}).status_code == 201


def test_expired_key_creates_anew_and_expired_keys_are_purged(api, conn):
    first = api.post(json={"title": "Old"}, headers={"Idempotency-Key": "old"})
    api.post(json={"title": "Other"}, headers={"Idempotency-Key": "stale"})
    conn.execute(
        # in UTC wall time: timestamptz - interval is only STABLE, which Citus refuses in an UPDATE
        "UPDATE idempotency_keys SET created_at = (created_at AT TIME ZONE 'UTC' - %s) AT TIME ZONE 'UTC' "
        "WHERE user_id = %s",
        [timedelta(hours=25), api.user_id],
    )
    again = api.post(json={"title": "New body is fine"}, headers={"Idempotency-Key": "old"})
    assert again.status_code == 201 and again.json["data"]["id"] != first.json["data"]["id"]
    keys = conn.execute("SELECT key FROM idempotency_keys WHERE user_id = %s", [api.user_id]).fetchall()
    assert [k["key"] for k in keys] == ["old"]  # "stale" was purged on the way
    assert count_tasks(conn, api.user_id) == 3


def test_expired_keys_are_purged_a_batch_per_create_oldest_first(api, conn):
    """Issue 22: a create forgets at most PURGE_BATCH expired keys, so a backlog costs no create more."""
    conn.execute(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, created_at)"
        " SELECT %s, 'old-' || n, 'x', now() - interval '25 hours' - n * interval '1 s'"
        " FROM generate_series(1, %s) AS n",
        [api.user_id, 2 * PURGE_BATCH + 50],
    )

    def expired() -> list[str]:
        rows = conn.execute(
            "SELECT key FROM idempotency_keys WHERE user_id = %s AND key LIKE 'old-%%' ORDER BY created_at",
            [api.user_id],
        ).fetchall()
        return [row["key"] for row in rows]

    backlog = expired()
    for n, left in enumerate([PURGE_BATCH + 50, 50, 0]):
        assert api.post(json={"title": f"t{n}"}, headers={"Idempotency-Key": f"new-{n}"}).status_code == 201
        assert expired() == backlog[len(backlog) - left :]  # the oldest went first
    assert count_tasks(conn, api.user_id) == 3


# --- races against a real gunicorn -------------------------------------------------------------


@pytest.fixture
def server(start_gunicorn, database_url):
    return start_gunicorn({"DATABASE_URL": database_url, "BETTER_AUTH_SECRET": SECRET}, workers=4)


def race(count: int, send) -> list[requests.Response]:
    """Run `send(i)` from `count` threads released at once; return the responses in order."""
    barrier = threading.Barrier(count)
    results: list[requests.Response | None] = [None] * count

    def run(i: int) -> None:
        barrier.wait(timeout=10)
        results[i] = send(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def test_two_patches_with_the_same_if_match_one_wins(server, conn):
    user = "race-if-match"
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    base = f"{server.url}/api/{user}/tasks"
    for _ in range(5):  # a few rounds, so a lucky ordering cannot hide a lost update
        task = requests.post(base, json={"title": "start"}, headers=headers, timeout=10).json()["data"]
        responses = race(
            2,
            lambda i, task=task: requests.patch(
                f"{base}/{task['id']}",
                json={"title": f"writer-{i}"},
                headers={**headers, "If-Match": '"1"'},
                timeout=10,
            ),
        )
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [200, 412]
        winner = next(r for r in responses if r.status_code == 200).json()["data"]["title"]
        row = task_row(conn, task["id"])
        assert row["title"] == winner and row["version"] == 2


def test_twenty_concurrent_posts_with_one_key_create_one_task(server, conn):
    user = "race-idempotency"
    headers = {"Authorization": f"Bearer {make_token(user)}", "Idempotency-Key": "one-key"}
    responses = race(
        20,
        lambda i: requests.post(
            f"{server.url}/api/{user}/tasks", json={"title": "Only once"}, headers=headers, timeout=30
        ),
    )
    assert count_tasks(conn, user) == 1
    created = [r for r in responses if r.status_code == 201]
    assert created and all(r.status_code in (201, 409) for r in responses)
    assert len({r.json()["data"]["id"] for r in created}) == 1
    assert len({r.headers["Location"] for r in created}) == 1


def test_concurrent_completions_of_one_recurring_task_create_one_successor(server, conn):
    user = f"race-recurrence-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    base = f"{server.url}/api/{user}/tasks"
    recurring = {"title": "Stand-up", "due_at": "2027-01-04T09:30:00+01:00", "recurrence": "FREQ=WEEKLY;BYDAY=MO,TU"}
    completions = [  # each round races two of the routes that complete a task
        ("PATCH", "/complete", {"completed": True}),
        ("PATCH", "", {"completed": True}),
        ("PUT", "", {**recurring, "completed": True}),
    ]
    for round_number in range(6):
        task = requests.post(base, json=recurring, headers=headers, timeout=10).json()["data"]
        pair = [completions[round_number % 3], completions[(round_number + 1) % 3]]
        responses = race(
            2,
            lambda i, task=task, pair=pair: requests.request(
                pair[i][0], f"{base}/{task['id']}{pair[i][1]}", json=pair[i][2], headers=headers, timeout=10
            ),
        )
        assert [r.status_code for r in responses] == [200, 200]
        created = [r.json()["meta"]["next_occurrence"] for r in responses if "next_occurrence" in r.json()["meta"]]
        assert len(created) == 1
        assert created[0]["due_at"] == "2027-01-05T08:30:00Z"
        row = task_row(conn, task["id"])
        assert row["next_id"] == created[0]["id"] and row["version"] == 3
    assert count_tasks(conn, user) == 12
