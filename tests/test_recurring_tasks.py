"""Recurring tasks and reminders over HTTP (API.md §3, §5): the new fields on every route, their
400s, and the next occurrence a completion creates in the same transaction."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import psycopg
import pytest
from conftest import assert_error, task_row
from dateutil import rrule

# Saturday 09:00 in Berlin, the day before the clocks go forward (2027-03-28): the next daily
# occurrence is Sunday 09:00 CEST, 07:00Z. Far enough ahead that "now" never decides it.
WEEKEND = {
    "title": "Water the plants",
    "description": "Balcony first.",
    "priority": "high",
    "tags": ["home", "Garden"],
    "due_at": "2027-03-27T09:00:00+01:00",
    "recurrence": "rrule:freq=daily;count=3",
    "timezone": "Europe/Berlin",
    "remind_at": "2027-03-27T08:30:00+01:00",
}


def recurring(api, **fields):
    return api.create(**{**WEEKEND, **fields})


def assert_invalid(response, field: str) -> list[str]:
    error = assert_error(response, 400, "validation_error")
    assert list(error["details"]) == [field], error
    return error["details"][field]


def count_tasks(conn, user_id: str) -> int:
    return conn.execute("SELECT count(*) AS n FROM tasks WHERE user_id = %s", [user_id]).fetchone()["n"]


# --- the fields --------------------------------------------------------------------------------


def test_new_fields_are_stored_normalised_and_returned(api):
    task = recurring(api)
    assert task["recurrence"] == "FREQ=DAILY;COUNT=3"
    assert task["timezone"] == "Europe/Berlin"
    assert task["remind_at"] == "2027-03-27T07:30:00Z"
    assert task["next_id"] is None
    assert api.get(f"/{task['id']}").json["data"] == task


def test_defaults_are_no_rule_utc_no_reminder(api):
    task = api.create(title="plain")
    assert (task["recurrence"], task["timezone"], task["remind_at"], task["next_id"]) == (None, "UTC", None, None)


def test_rows_from_before_the_migration_read_the_defaults(api, conn):
    task_id = conn.execute(
        "INSERT INTO tasks (user_id, title) VALUES (%s, 'old') RETURNING id", [api.user_id]
    ).fetchone()["id"]
    task = api.get(f"/{task_id}").json["data"]
    assert (task["recurrence"], task["timezone"], task["remind_at"], task["next_id"]) == (None, "UTC", None, None)


def test_timezone_is_returned_as_given_and_backward_links_are_names(api):
    assert api.create(title="t", timezone="US/Eastern")["timezone"] == "US/Eastern"


def test_a_reminder_needs_no_due_at_or_rule(api):
    assert api.create(title="t", remind_at="2020-01-01T00:00:00-05:00")["remind_at"] == "2020-01-01T05:00:00Z"


def test_next_id_is_read_only(api):
    assert_invalid(api.post(json={"title": "t", "next_id": 1}), "next_id")
    task = api.create(title="t")
    assert_invalid(api.patch(f"/{task['id']}", json={"next_id": 1}), "next_id")


DUE = "2027-01-01T09:00:00Z"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"recurrence": "FREQ=DAILY"}, "recurrence"),  # no due_at
        ({"recurrence": "FREQ=DAILY;BYHOUR=9", "due_at": DUE}, "recurrence"),
        ({"recurrence": "FREQ=HOURLY", "due_at": DUE}, "recurrence"),
        ({"recurrence": "FREQ=DAILY;DTSTART=20270101T090000Z", "due_at": DUE}, "recurrence"),
        ({"recurrence": "FREQ=DAILY;FREQ=WEEKLY", "due_at": DUE}, "recurrence"),
        ({"recurrence": "FREQ=DAILY;COUNT=2;UNTIL=20271231", "due_at": DUE}, "recurrence"),
        ({"recurrence": "FREQ=MONTHLY;BYDAY=6MO", "due_at": DUE}, "recurrence"),
        ({"recurrence": "FREQ=YEARLY;BYMONTH=2;BYDAY=53MO", "due_at": DUE}, "recurrence"),
        ({"recurrence": "FREQ=YEARLY;BYMONTH=2;BYDAY=1MO,51MO", "due_at": DUE}, "recurrence"),
        ({"recurrence": "FREQ=WEEKLY;BYDAY=1MO", "due_at": DUE}, "recurrence"),
        ({"recurrence": "FREQ=MONTHLY;BYSETPOS=1", "due_at": DUE}, "recurrence"),
        ({"recurrence": "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30", "due_at": DUE}, "recurrence"),
        ({"recurrence": "FREQ=DAILY;UNTIL=20261231", "due_at": DUE}, "recurrence"),
        ({"recurrence": "FREQ=DAILY;BYMONTHDAY=" + "1," * 5000 + "1", "due_at": DUE}, "recurrence"),
        ({"recurrence": "FREQ=DAILY\x00", "due_at": DUE}, "recurrence"),
        ({"recurrence": "", "due_at": DUE}, "recurrence"),
        ({"recurrence": 1, "due_at": DUE}, "recurrence"),
        ({"recurrence": ["FREQ=DAILY"], "due_at": DUE}, "recurrence"),
        ({"timezone": "europe/berlin"}, "timezone"),
        ({"timezone": "Europe/Nowhere"}, "timezone"),
        ({"timezone": "posix/Europe/Berlin"}, "timezone"),
        ({"timezone": "right/UTC"}, "timezone"),
        ({"timezone": "localtime"}, "timezone"),
        ({"timezone": "/etc/localtime"}, "timezone"),
        ({"timezone": "../../../etc/passwd"}, "timezone"),
        ({"timezone": "Europe/Berlin\x00"}, "timezone"),
        ({"timezone": None}, "timezone"),
        ({"timezone": 1}, "timezone"),
        ({"timezone": "x" * 10_000}, "timezone"),
        ({"remind_at": "2027-01-01T09:00:00"}, "remind_at"),
        ({"remind_at": "tomorrow"}, "remind_at"),
        ({"remind_at": 1}, "remind_at"),
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_bad_values_are_400_naming_the_field_and_write_nothing(api, conn, fields, field, method):
    task = api.create(title="before")
    path = "" if method == "POST" else f"/{task['id']}"
    assert_invalid(api.request(method, path, json={"title": "t", **fields}), field)
    assert count_tasks(conn, api.user_id) == 1
    assert task_row(conn, task["id"])["version"] == 1


def test_patch_is_checked_as_the_task_it_leaves(api, conn):
    task = recurring(api)
    assert_invalid(api.patch(f"/{task['id']}", json={"due_at": None}), "due_at")
    plain = api.create(title="no due date")
    messages = assert_invalid(api.patch(f"/{plain['id']}", json={"recurrence": "FREQ=DAILY"}), "recurrence")
    assert messages == ["A task with a recurrence needs a due_at."]
    # Fine in New York (22:00 on May 3rd local is within UNTIL=20260503), not once the zone is UTC.
    late = api.create(
        title="t",
        due_at="2026-05-03T22:00:00-04:00",
        recurrence="FREQ=DAILY;UNTIL=20260503",
        timezone="America/New_York",
    )
    assert_invalid(api.patch(f"/{late['id']}", json={"timezone": "UTC"}), "timezone")
    # The field the request sent is named, recurrence first.
    assert_invalid(
        api.patch(f"/{late['id']}", json={"timezone": "UTC", "recurrence": "FREQ=DAILY;UNTIL=20260503"}), "recurrence"
    )
    for unchanged in (task, plain, late):
        assert task_row(conn, unchanged["id"])["version"] == 1
    # Clearing both at once is fine; so is a rule on a task that has a due_at.
    assert api.patch(f"/{task['id']}", json={"due_at": None, "recurrence": None}).status_code == 200
    assert api.patch(f"/{late['id']}", json={"recurrence": "FREQ=WEEKLY", "timezone": "UTC"}).status_code == 200


def test_a_patch_of_other_fields_leaves_the_rule_alone(api):
    task = recurring(api)
    changed = api.patch(f"/{task['id']}", json={"title": "Water the cactus", "remind_at": None}).json["data"]
    assert (changed["recurrence"], changed["timezone"], changed["remind_at"]) == (
        "FREQ=DAILY;COUNT=3",
        "Europe/Berlin",
        None,
    )


def test_the_database_refuses_a_rule_without_a_due_at(conn, api):
    with pytest.raises(psycopg.errors.CheckViolation):
        conn.execute("INSERT INTO tasks (user_id, title, recurrence) VALUES (%s, 't', 'FREQ=DAILY')", [api.user_id])


# --- the next occurrence -----------------------------------------------------------------------


COMPLETIONS = [
    ("PATCH", "/complete", None),
    ("PATCH", "/complete", {"completed": True}),
    ("PATCH", "", {"completed": True}),
    ("PUT", "", {**WEEKEND, "completed": True}),
]


@pytest.mark.parametrize(("method", "suffix", "body"), COMPLETIONS, ids=["toggle", "complete", "patch", "put"])
def test_completing_a_recurring_task_creates_its_next_occurrence(api, conn, method, suffix, body, caplog):
    caplog.set_level(logging.INFO)
    task = recurring(api)
    response = api.request(method, f"/{task['id']}{suffix}", json=body)
    assert response.status_code == 200, response.json
    done, following = response.json["data"], response.json["meta"]["next_occurrence"]
    assert done["completed"] is True and done["version"] == 2 and done["next_id"] == following["id"]
    assert response.headers["ETag"] == '"2"'
    assert following == {
        **following,
        "title": "Water the plants",
        "description": "Balcony first.",
        "priority": "high",
        "tags": ["home", "Garden"],
        "timezone": "Europe/Berlin",
        "completed": False,
        "completed_at": None,
        "version": 1,
        "next_id": None,
        "due_at": "2027-03-28T07:00:00Z",  # 09:00 CEST: the wall clock kept across the change
        "remind_at": "2027-03-28T06:30:00Z",  # still half an hour before
        "recurrence": "FREQ=DAILY;COUNT=2",
    }
    assert api.get(f"/{following['id']}").json["data"] == following
    assert api.get(f"/{task['id']}").json["data"] == done
    assert task_row(conn, task["id"])["next_id"] == following["id"]
    created = [r for r in caplog.records if getattr(r, "event", None) == "task.created"]
    assert [r.task_id for r in created] == [task["id"], following["id"]]


def test_a_patch_that_renames_and_completes_passes_on_the_new_title(api):
    task = recurring(api)
    response = api.patch(f"/{task['id']}", json={"title": "Water the roses", "completed": True, "tags": []})
    following = response.json["meta"]["next_occurrence"]
    assert (following["title"], following["tags"]) == ("Water the roses", [])


def test_count_counts_down_and_the_last_one_has_no_successor(api):
    task = recurring(api)
    seen = []
    for _ in range(3):
        response = api.patch(f"/{task['id']}/complete", json={"completed": True})
        assert response.status_code == 200
        following = response.json["meta"].get("next_occurrence")
        if following is None:
            break
        seen.append((following["due_at"], following["recurrence"]))
        task = following
    assert seen == [("2027-03-28T07:00:00Z", "FREQ=DAILY;COUNT=2"), ("2027-03-29T07:00:00Z", "FREQ=DAILY;COUNT=1")]
    assert task["recurrence"] == "FREQ=DAILY;COUNT=1" and "next_occurrence" not in response.json["meta"]


def test_reopening_and_completing_again_creates_nothing_more(api, conn):
    task = recurring(api)
    first = api.patch(f"/{task['id']}/complete").json["meta"]["next_occurrence"]
    assert api.patch(f"/{task['id']}/complete").json["data"]["completed"] is False
    again = api.patch(f"/{task['id']}/complete")
    assert again.json["data"]["completed"] is True and again.json["data"]["next_id"] == first["id"]
    assert "next_occurrence" not in again.json["meta"]
    assert count_tasks(conn, api.user_id) == 2


def test_a_task_created_completed_or_completed_again_creates_nothing(api, conn):
    task = recurring(api, completed=True)
    assert task["next_id"] is None
    for response in (
        api.patch(f"/{task['id']}", json={"completed": True}),
        api.put(f"/{task['id']}", json={**WEEKEND, "completed": True}),
        api.patch(f"/{task['id']}/complete", json={"completed": True}),
    ):
        assert response.status_code == 200 and "next_occurrence" not in response.json["meta"]
    assert count_tasks(conn, api.user_id) == 1


def test_completing_a_task_without_a_rule_adds_no_meta(api):
    task = api.create(title="once", due_at=DUE)
    response = api.patch(f"/{task['id']}/complete")
    assert response.json["data"]["completed"] is True and set(response.json["meta"]) == {"request_id"}


def test_if_match_mismatch_completes_nothing_and_creates_nothing(api, conn):
    task = recurring(api)
    response = api.patch(f"/{task['id']}/complete", headers={"If-Match": '"7"'})
    assert_error(response, 412, "precondition_failed")
    assert count_tasks(conn, api.user_id) == 1 and task_row(conn, task["id"])["completed"] is False
    assert api.patch(f"/{task['id']}/complete", headers={"If-Match": '"1"'}).json["meta"]["next_occurrence"]


def test_another_users_recurring_task_is_404_and_creates_nothing(api, other_api, conn):
    task = recurring(api)
    assert_error(other_api.patch(f"/{task['id']}/complete"), 404, "not_found")
    assert_error(other_api.patch(f"/{task['id']}", json={"due_at": None}), 404, "not_found")
    assert count_tasks(conn, api.user_id) == 1 and count_tasks(conn, other_api.user_id) == 0


def test_deleting_an_occurrence_deletes_only_it_and_next_id_keeps_its_value(api):
    task = recurring(api)
    following = api.patch(f"/{task['id']}/complete").json["meta"]["next_occurrence"]
    assert api.delete(f"/{following['id']}").status_code == 200
    assert api.get(f"/{task['id']}").json["data"]["next_id"] == following["id"]


def test_an_overdue_task_continues_from_now_without_a_backlog(api):
    task = api.create(title="daily", due_at="2020-01-01T09:00:00Z", recurrence="FREQ=DAILY;COUNT=1000")
    response = api.patch(f"/{task['id']}/complete")
    done, following = response.json["data"], response.json["meta"]["next_occurrence"]
    assert following["recurrence"] == "FREQ=DAILY;COUNT=999"  # the skipped days do not count
    completed_at, due = datetime.fromisoformat(done["completed_at"]), datetime.fromisoformat(following["due_at"])
    assert following["due_at"].endswith("T09:00:00Z") and completed_at < due <= completed_at + timedelta(days=1)


def test_a_rule_that_has_ended_completes_without_a_successor(api):
    task = api.create(title="t", due_at="2020-01-01T09:00:00Z", recurrence="FREQ=DAILY;UNTIL=20200105")
    response = api.patch(f"/{task['id']}/complete")
    assert response.json["data"]["completed"] is True and "next_occurrence" not in response.json["meta"]


def test_sync_carries_the_new_fields_and_the_spawned_occurrence(api):
    headers = {"Authorization": f"Bearer {api.token}"}
    first = api.client.get(f"/api/{api.user_id}/sync", headers=headers).json
    task = recurring(api)
    response = api.patch(f"/{task['id']}/complete")
    done, following = response.json["data"], response.json["meta"]["next_occurrence"]
    token = first["meta"]["sync_token"]
    changed = api.client.get(f"/api/{api.user_id}/sync", headers=headers, query_string={"token": token}).json
    assert sorted(changed["data"]["tasks"], key=lambda t: t["id"]) == [done, following]


def test_writes_that_cannot_create_an_occurrence_take_one_statement_not_the_locked_path(api, app, monkeypatch):
    """Completing, reopening or re-dating a task without a recurrence costs what it did before
    recurring tasks existed: one statement, no transaction that locks and reads the task first."""
    plain = api.create(title="Plain", due_at="2026-12-01T09:00:00Z")

    def no_transaction(*args, **kwargs):
        raise AssertionError("a write to a task without a recurrence opened a transaction")

    monkeypatch.setattr(app.extensions["todo_api.db"], "transaction", no_transaction)
    path = f"/{plain['id']}"
    answers = [
        api.patch(f"{path}/complete"),
        api.patch(f"{path}/complete"),
        api.patch(f"{path}/complete", json={"completed": True}),
        api.patch(path, json={"completed": False, "due_at": "2026-12-02T09:00:00Z"}),
        api.patch(path, json={"timezone": "Asia/Kolkata"}),
        api.put(path, json={"title": "Plain", "completed": True}),
    ]
    assert [answer.status_code for answer in answers] == [200] * 6
    assert [answer.get_json()["data"]["version"] for answer in answers] == [2, 3, 4, 5, 6, 7]
    assert all("next_occurrence" not in answer.get_json()["meta"] for answer in answers)


# --- rules that crashed the library, and stored rules today's grammar refuses ---------------------


# 2033 and 2034 start on a Saturday and a Sunday: dateutil failed on a 51st Monday of February
# then (an IndexError, a 500), and the rule was accepted in other years.
ORDINAL_PAST_THE_5TH = ["FREQ=YEARLY;BYMONTH=2;BYDAY=53MO", "FREQ=YEARLY;BYMONTH=2;BYDAY=1MO,51MO"]
WITHIN_THE_MONTH = "With BYMONTH, a BYDAY ordinal counts within the month: 1 to 5 or -5 to -1."


@pytest.mark.parametrize("rule", ORDINAL_PAST_THE_5TH)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_an_ordinal_past_the_5th_of_a_month_is_a_400_saying_why(api, conn, rule, method):
    task = api.create(title="before", due_at="2033-01-10T09:00:00Z")
    path = "" if method == "POST" else f"/{task['id']}"
    body = (
        {"recurrence": rule}
        if method == "PATCH"
        else {"title": "t", "due_at": "2033-01-10T09:00:00Z", "recurrence": rule}
    )
    assert assert_invalid(api.request(method, path, json=body), "recurrence") == [WITHIN_THE_MONTH]
    assert count_tasks(conn, api.user_id) == 1
    assert task_row(conn, task["id"])["version"] == 1


def insert_stored(conn, user_id: str, rule: str, due_at: str = "2033-02-07T09:00:00Z") -> int:
    """A recurring task as an earlier version stored it, whatever today's grammar says of its rule."""
    return conn.execute(
        "INSERT INTO tasks (user_id, title, due_at, recurrence) VALUES (%s, 'stored', %s, %s) RETURNING id",
        [user_id, due_at, rule],
    ).fetchone()["id"]


LEGACY = "FREQ=YEARLY;BYMONTH=2;BYDAY=1MO,51MO"  # accepted before: the first Monday of February


@pytest.mark.parametrize(("method", "suffix", "body"), COMPLETIONS[:3], ids=["toggle", "complete", "patch"])
def test_a_rule_stored_before_ordinals_were_capped_completes_with_its_successor(api, conn, method, suffix, body):
    task_id = insert_stored(conn, api.user_id, LEGACY)  # 2033-02-07 is the first Monday of February
    response = api.request(method, f"/{task_id}{suffix}", json=body)
    assert response.status_code == 200, response.json
    following = response.json["meta"]["next_occurrence"]
    assert (following["due_at"], following["recurrence"]) == ("2034-02-06T09:00:00Z", LEGACY)
    assert task_row(conn, task_id)["next_id"] == following["id"]


def test_a_rule_stored_before_ordinals_were_capped_takes_a_new_due_at_and_timezone(api, conn):
    task_id = insert_stored(conn, api.user_id, LEGACY)
    moved = api.patch(f"/{task_id}", json={"due_at": "2034-02-06T09:00:00Z"})
    assert moved.status_code == 200, moved.json
    assert (moved.json["data"]["due_at"], moved.json["data"]["recurrence"]) == ("2034-02-06T09:00:00Z", LEGACY)
    zoned = api.patch(f"/{task_id}", json={"timezone": "Pacific/Kiritimati"})
    assert zoned.status_code == 200, zoned.json
    assert task_row(conn, task_id)["version"] == 3


def test_a_stored_rule_that_cannot_be_followed_completes_without_a_successor(api, conn, caplog):
    task_id = insert_stored(conn, api.user_id, "FREQ=HOURLY")  # no version accepted it; the row says so
    response = api.patch(f"/{task_id}/complete")
    assert response.status_code == 200, response.json
    assert response.json["data"]["completed"] is True and response.json["data"]["next_id"] is None
    assert "next_occurrence" not in response.json["meta"] and count_tasks(conn, api.user_id) == 1
    [line] = [r for r in caplog.records if getattr(r, "event", None) == "task.recurrence_failed"]
    assert (line.task_id, line.user_id) == (task_id, api.user_id)
    # Changing its due_at is checked as the task it leaves: a 400 on the field sent.
    assert_invalid(api.patch(f"/{task_id}", json={"due_at": "2034-01-01T09:00:00Z"}), "due_at")
    assert task_row(conn, task_id)["version"] == 2


def test_whatever_the_library_raises_is_never_a_500(api, conn, monkeypatch):
    """A dateutil failure nobody has found yet: a 400 on the field sent when a rule is checked, and a
    completion without a successor for a task stored with a rule."""
    task = api.create(title="t", due_at="2033-01-10T09:00:00Z", recurrence="FREQ=MONTHLY;BYDAY=-1FR")

    def broken(self, year, month):
        raise KeyError("a bug in dateutil")

    monkeypatch.setattr(rrule._iterinfo, "rebuild", broken)
    body = {"title": "t", "due_at": "2033-01-10T09:00:00Z", "recurrence": "FREQ=MONTHLY;BYDAY=-1FR"}
    for method, path, json in [("POST", "", body), ("PUT", f"/{task['id']}", body)]:
        messages = assert_invalid(api.request(method, path, json=json), "recurrence")
        assert messages == ["This rule could not be expanded into dates."]
    assert_invalid(api.patch(f"/{task['id']}", json={"due_at": "2033-02-10T09:00:00Z"}), "due_at")
    response = api.patch(f"/{task['id']}/complete")
    assert response.status_code == 200, response.json
    assert response.json["data"]["completed"] is True and "next_occurrence" not in response.json["meta"]
    assert count_tasks(conn, api.user_id) == 1
