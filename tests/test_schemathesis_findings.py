"""Bugs that fuzzing the real service turned up (schemathesis, and probing around what it found),
each pinned by a plain test of the contract."""

from __future__ import annotations

import pytest
from conftest import assert_error

OUT_OF_RANGE_IDS = ("0", "9223372036854775808", "99999999999999999999999", "0" * 30)


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("task_id", OUT_OF_RANGE_IDS)
def test_out_of_range_task_id_is_404_for_every_method_of_the_route(api, method, task_id):
    # werkzeug's int(min, max) converter turned a range miss into a 405 when the same path had
    # rules for other methods.
    response = api.request(method, f"/{task_id}", json={"title": "x"})
    assert_error(response, 404, "not_found")


def test_out_of_range_task_id_still_needs_a_token_first(client, api):
    response = client.delete(f"{api.base}/0")
    assert_error(response, 401, "unauthorized")


def test_zero_padded_task_id_names_the_same_task(api):
    task = api.create()
    response = api.get(f"/{task['id']:025d}")
    assert response.status_code == 200
    assert response.json["data"]["id"] == task["id"]


@pytest.mark.parametrize("key", ["", " ", "key with spaces", "x" * 256, "caf\u00e9"])
def test_malformed_idempotency_key_is_a_400_naming_the_header(api, key):
    response = api.post(json={"title": "x"}, headers={"Idempotency-Key": key.encode("utf-8").decode("latin-1")})
    error = assert_error(response, 400, "validation_error")
    assert list(error["details"]) == ["Idempotency-Key"]


def test_well_formed_idempotency_key_is_accepted(api):
    response = api.post(json={"title": "x"}, headers={"Idempotency-Key": "a" * 255})
    assert response.status_code == 201


def test_complete_with_a_json_null_body_is_400_not_a_toggle(api):
    task = api.create()
    response = api.patch(f"/{task['id']}/complete", data="null", content_type="application/json")
    assert_error(response, 400, "bad_request")
    assert api.get(f"/{task['id']}").json["data"]["version"] == 1


def test_complete_without_a_body_still_toggles(api):
    task = api.create()
    response = api.patch(f"/{task['id']}/complete")
    assert response.status_code == 200
    assert response.json["data"]["completed"] is True


@pytest.mark.parametrize("due_at", ["9999-12-31T23:59:59-05:00", "0001-01-01T00:00:00+05:00"])
def test_timestamp_outside_years_1_to_9999_in_utc_is_a_400_not_a_500(api, due_at):
    # PostgreSQL stores it, and psycopg then cannot read it back into a Python datetime.
    error = assert_error(api.post(json={"title": "x", "due_at": due_at}), 400, "validation_error")
    assert list(error["details"]) == ["due_at"]
    error = assert_error(api.get(query_string={"due_before": due_at}), 400, "validation_error")
    assert list(error["details"]) == ["due_before"]


def test_timestamp_at_the_edge_of_the_range_is_accepted(api):
    task = api.create(due_at="9999-12-31T23:59:59+05:00")
    assert task["due_at"] == "9999-12-31T18:59:59Z"


def test_lowercase_t_and_z_of_rfc_3339_are_accepted(api):
    task = api.create(due_at="2026-07-12t20:05:09.5z")
    assert task["due_at"] == "2026-07-12T20:05:09.500000Z"
    response = api.get(query_string={"due_after": "2026-07-12t20:05:09z"})
    assert [t["id"] for t in response.json["data"]] == [task["id"]]


def test_limits_count_after_trimming_so_edge_whitespace_may_pass_them(api):
    # schemathesis sent a tag of 51 code points, a no-break space and 50 others, as "too long"
    # (the document's maxLength counts the raw string); API.md §3 counts after trimming: accepted.
    title, tag = "t" * 200, "\u00b9\f" + "*" * 48
    created = api.post(json={"title": "\u2003" + title + " ", "tags": ["\u00a0" + tag]})
    assert created.status_code == 201, created.json
    assert (created.json["data"]["title"], created.json["data"]["tags"]) == (title, [tag])
    for body in ({"title": "t" * 201}, {"title": "x", "tags": ["*" * 51]}):
        assert_error(api.post(json=body), 400, "validation_error")
    listed = api.get("", query_string={"tag": "\u00a0" + tag})  # the listing's tag filter is trimmed alike
    assert listed.status_code == 200, listed.json
    assert [task["title"] for task in listed.json["data"]] == [title]
    assert_error(api.get("", query_string={"tag": "*" * 51}), 400, "validation_error")
