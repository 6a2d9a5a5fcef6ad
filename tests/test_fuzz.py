"""Hostile input: generated bodies, query strings and cursors never get a 500, and bad ones write nothing."""

from __future__ import annotations

import json
import string

from conftest import Api
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIELDS = ["title", "description", "completed", "priority", "tags", "due_at", "id", "version", "colour"]
json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=300)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5),
    max_leaves=20,
)
task_like = st.dictionaries(st.sampled_from(FIELDS), json_values, max_size=6)
fuzz = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@fuzz
@given(body=task_like | json_values)
def test_generated_json_bodies_are_created_or_refused_never_500(api: Api, body):
    response = api.post(data=json.dumps(body), headers={"Content-Type": "application/json"})
    assert response.status_code in (201, 400), response.get_data(as_text=True)
    if response.status_code == 400:
        assert response.json["error"]["code"] in ("validation_error", "bad_request")


@fuzz
@given(raw=st.binary(max_size=400))
def test_generated_bytes_are_refused_cleanly(api: Api, raw):
    response = api.post(data=raw, headers={"Content-Type": "application/json"})
    assert response.status_code in (201, 400)


@fuzz
@given(body=task_like)
def test_generated_patches_change_or_refuse_never_500(api: Api, body):
    task_id = getattr(api, "_fuzz_task", None) or api.create()["id"]
    api._fuzz_task = task_id
    response = api.patch(f"/{task_id}", data=json.dumps(body), headers={"Content-Type": "application/json"})
    assert response.status_code in (200, 400), response.get_data(as_text=True)


query_names = st.sampled_from(
    ["status", "priority", "tag", "q", "due_before", "due_after", "sort", "limit", "cursor", "total", "page"]
)


@fuzz
@given(params=st.lists(st.tuples(query_names, st.text(max_size=40)), max_size=5))
def test_generated_query_strings_never_500(api: Api, params):
    response = api.get(query_string=params)
    assert response.status_code in (200, 400), response.get_data(as_text=True)


@fuzz
@given(cursor=st.text(alphabet=string.ascii_letters + string.digits + "-_.=", min_size=1, max_size=200))
def test_generated_cursors_are_400_naming_cursor(api: Api, cursor):
    response = api.get(query_string={"cursor": cursor})
    assert response.status_code == 400
    assert "cursor" in response.json["error"]["details"]


@fuzz
@given(position=st.integers(min_value=0), replacement=st.sampled_from("AbZz09-_."))
def test_a_real_cursor_with_one_character_changed_is_400(api: Api, position, replacement):
    if not getattr(api, "_cursor", None):
        for n in range(3):
            api.create(title=f"t{n}")
        api._cursor = api.get(query_string={"limit": 1}).json["meta"]["next_cursor"]
    cursor = api._cursor
    i = position % len(cursor)
    if cursor[i] == replacement:
        return
    tampered = cursor[:i] + replacement + cursor[i + 1 :]
    response = api.get(query_string={"limit": 1, "cursor": tampered})
    assert response.status_code == 400, tampered
    assert "cursor" in response.json["error"]["details"]
