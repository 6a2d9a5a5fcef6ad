"""load_task_input, load_task_patch and load_complete are task_input.load, task_patch.load and
complete_input.load: the same fields for every body the schemas accept, the same errors for every
body they refuse (the shortcuts for plain bodies in schemas.py never accept what the schema
refuses, nor load a field differently)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from todo_api.tasks.schemas import (
    READ_ONLY_FIELDS,
    _load_plain,
    complete_input,
    load_complete,
    load_task_input,
    load_task_patch,
    task_input,
    task_patch,
)

LOADERS = [(load_task_input, task_input, False), (load_task_patch, task_patch, True)]

PLAIN_BODIES = [
    {"title": "Write the report"},
    {"title": "  Trimmed  ", "description": "  kept as sent  ", "completed": True},
    {"title": "All", "description": None, "priority": "high", "tags": ["Work", "work ", " home"]},
    {"title": "Due", "due_at": "2026-12-01T09:00:00+01:00", "remind_at": "2026-11-30t08:00:00.5z"},
    {"title": "Zone", "timezone": "Europe/Berlin", "recurrence": None, "due_at": None, "remind_at": None},
    {"title": "t" * 200, "description": "d" * 1000, "tags": ["x" * 50]},
    {"title": "🎉" * 200, "description": "é" * 1000, "tags": [f"tag{n}" for n in range(20)]},
    {"title": "Duplicates do not count", "tags": [f"tag{n}" for n in range(20)] + ["TAG0", "Tag1"]},
    {"title": "Empty", "description": "", "tags": []},
]

REFUSED_OR_UNUSUAL_BODIES = [
    {},
    {"description": "no title"},
    {"title": ""},
    {"title": "   "},
    {"title": "\t\n\u3000"},
    {"title": None},
    {"title": 1},
    {"title": ["x"]},
    {"title": True},
    {"title": "t" * 201},
    {"title": "  " + "t" * 201},
    {"title": "🎉" * 201},
    {"title": "nul\x00inside"},
    {"title": "lone \ud800 surrogate"},
    {"title": "x", "description": "d" * 1001},
    {"title": "x", "description": "nul\x00"},
    {"title": "x", "description": "\udfff"},
    {"title": "x", "description": 5},
    {"title": "x", "completed": "yes"},
    {"title": "x", "completed": 1},
    {"title": "x", "completed": 0},
    {"title": "x", "completed": None},
    {"title": "x", "priority": "urgent"},
    {"title": "x", "priority": "HIGH"},
    {"title": "x", "priority": None},
    {"title": "x", "priority": ["high"]},
    {"title": "x", "tags": None},
    {"title": "x", "tags": "home"},
    {"title": "x", "tags": [1]},
    {"title": "x", "tags": [""]},
    {"title": "x", "tags": ["   "]},
    {"title": "x", "tags": ["x" * 51]},
    {"title": "x", "tags": ["nul\x00"]},
    {"title": "x", "tags": ["\ud800"]},
    {"title": "x", "tags": [None]},
    {"title": "x", "tags": [["nested"]]},
    {"title": "x", "tags": [f"tag{n}" for n in range(21)]},
    {"title": "x", "tags": {"a": 1}},
    {"title": "x", "due_at": "2026-12-01T09:00:00"},
    {"title": "x", "due_at": "2026-12-01"},
    {"title": "x", "due_at": "2026-13-01T09:00:00Z"},
    {"title": "x", "due_at": "2026-02-30T09:00:00Z"},
    {"title": "x", "due_at": "0001-01-01T00:00:00+01:00"},
    {"title": "x", "due_at": "9999-12-31T23:59:59-01:00"},
    {"title": "x", "due_at": "2026-12-01 09:00:00Z"},
    {"title": "x", "due_at": 1700000000},
    {"title": "x", "due_at": "2026-12-01T09:00:00.1234567891Z"},
    {"title": "x", "remind_at": "tomorrow"},
    {"title": "x", "remind_at": ""},
    {"title": "x", "timezone": "europe/berlin"},
    {"title": "x", "timezone": "Mars/Olympus"},
    {"title": "x", "timezone": None},
    {"title": "x", "timezone": ""},
    {"title": "x", "timezone": "UTC\x00"},
    {"title": "x", "timezone": 1},
    {"title": "x", "timezone": "posix/Europe/Berlin"},
    {"title": "x", "recurrence": "FREQ=WEEKLY;BYDAY=MO", "due_at": "2026-12-07T09:00:00+01:00"},
    {"title": "x", "recurrence": "FREQ=DAILY", "due_at": "2026-12-01T09:00:00Z", "timezone": "Europe/Berlin"},
    {"title": "x", "recurrence": "FREQ=DAILY"},
    {"title": "x", "recurrence": "FREQ=SECONDLY", "due_at": "2026-12-01T09:00:00Z"},
    {"title": "x", "recurrence": "RRULE:FREQ=weekly", "due_at": "2026-12-01T09:00:00Z"},
    {"title": "x", "recurrence": ""},
    {"title": "x", "recurrence": 7},
    {"title": "x", "id": 1},
    {"title": "x", "version": 3},
    {"title": "x", "user_id": "someone-else"},
    {"title": "x", "completed_at": None},
    {"title": "x", "next_id": None},
    {"title": "x", "created_at": "2026-12-01T09:00:00Z"},
    {"title": "x", "updated_at": None},
    {"title": "x", "colour": "red"},
    {"title": "x", "Title": "y"},
    {"title": "", "description": 5, "priority": "urgent", "tags": [""], "due_at": "soon", "id": 1, "extra": 0},
]


def outcome(load: Any, body: dict[str, Any]) -> tuple[str, Any]:
    """What loading `body` gives: the fields, or the error messages (a body is loaded twice: a copy each time)."""
    try:
        return "loaded", load(dict(body))
    except ValidationError as error:
        return "refused", error.normalized_messages()


def assert_same_as_schema(body: dict[str, Any]) -> None:
    for load, schema, partial in LOADERS:
        expected = outcome(schema.load, body)
        assert outcome(load, body) == expected, body
        if expected[0] == "loaded":
            assert list(load(dict(body))) == list(expected[1]), "fields in the schema's order"
        plain = _load_plain(dict(body), partial=partial)
        assert plain is None or ("loaded", plain) == expected, body


@pytest.mark.parametrize("body", PLAIN_BODIES + REFUSED_OR_UNUSUAL_BODIES)
def test_loading_a_body_is_the_schemas_load(body):
    assert_same_as_schema(body)


@pytest.mark.parametrize("body", PLAIN_BODIES)
def test_plain_bodies_take_the_shortcut(body):
    assert _load_plain(body, partial=False) is not None
    assert _load_plain(body, partial=True) is not None


@pytest.mark.parametrize("value", [None, 1, "x", "2026-12-01T09:00:00Z"])
@pytest.mark.parametrize("field", READ_ONLY_FIELDS)
def test_read_only_fields_are_refused_whatever_their_value(field, value):
    for load, schema, _ in LOADERS:
        expected = ("refused", {field: ["This field is read-only."]})
        assert outcome(schema.load, {"title": "x", field: value}) == expected
        assert outcome(load, {"title": "x", field: value}) == expected


@pytest.mark.parametrize(
    "body",
    [
        {"completed": True},
        {"completed": False},
        {},
        {"completed": None},
        {"completed": 1},
        {"completed": "true"},
        {"completed": True, "title": "x"},
        {"title": "x"},
        {"Completed": True},
    ],
)
def test_loading_a_complete_body_is_the_schemas_load(body):
    assert outcome(load_complete, body) == outcome(complete_input.load, body)


def test_a_loaded_body_gets_a_tags_list_of_its_own():
    first, second = load_task_input({"title": "a"}), load_task_input({"title": "b"})
    first["tags"].append("x")
    assert second["tags"] == [] and task_input.load({"title": "c"})["tags"] == []


WRITABLE = ["title", "description", "completed", "priority", "tags", "due_at", "recurrence", "timezone", "remind_at"]
near_limits = st.sampled_from(["", " ", "x", "\x00", "\ud800", "é", "🎉", "t" * 50, "t" * 51, "t" * 200, "t" * 201])
texts = near_limits | st.text(max_size=60) | st.builds(lambda a, b: a + b, near_limits, near_limits)
timestamps = st.sampled_from(
    [
        "2026-12-01T09:00:00Z",
        "2026-12-01T09:00:00+01:00",
        "2026-12-01t09:00:00.123z",
        "2026-12-01T09:00:00",
        "2026-02-29T09:00:00Z",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:30:00+01:00",
    ]
)
values = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-2, max_value=2)
    | texts
    | timestamps
    | st.sampled_from(["none", "low", "medium", "high", "High", "UTC", "Europe/Berlin", "Etc/GMT+1", "FREQ=DAILY"])
    | st.lists(texts, max_size=22)
)
bodies = st.dictionaries(st.sampled_from([*WRITABLE, *READ_ONLY_FIELDS, "colour"]), values, max_size=6)
plain_bodies = st.fixed_dictionaries(
    {"title": texts},
    optional={
        "description": st.none() | texts,
        "completed": st.booleans(),
        "priority": st.sampled_from(["none", "low", "medium", "high"]),
        "tags": st.lists(texts, max_size=22),
        "due_at": st.none() | timestamps,
        "remind_at": st.none() | timestamps,
        "timezone": st.sampled_from(["UTC", "Europe/Berlin", "America/New_York", "utc"]),
        "recurrence": st.none(),
    },
)


@settings(max_examples=400, deadline=None)
@given(body=bodies | plain_bodies)
def test_generated_bodies_load_as_the_schema_loads_them(body):
    assert_same_as_schema(body)
