"""schemathesis hooks (loaded by tests/schemathesis.toml)."""

from __future__ import annotations

import schemathesis
from schemathesis.core.parameters import ParameterLocation

LIST_TASKS = "GET /api/{user_id}/tasks"
SYNC_TASKS = "GET /api/{user_id}/sync"
OPAQUE = {LIST_TASKS: "cursor", SYNC_TASKS: "token"}
TASK_BODIES = (
    "POST /api/{user_id}/tasks",
    "PUT /api/{user_id}/tasks/{task_id}",
    "PATCH /api/{user_id}/tasks/{task_id}",
)


@schemathesis.hook
def map_case(context, case):
    """A listing cursor and a sync token are opaque and sealed: no string the document allows is valid
    unless the server issued it (for this user, and a cursor for the same sort and filters), so a
    made-up one is a 400 however well-formed. Schema-valid cases leave it out; schema-violating ones
    keep it (and must get a 400)."""
    negative = case.meta is not None and case.meta.is_negative_at(ParameterLocation.QUERY)
    if case.operation.label in OPAQUE and case.query and not negative:
        case.query.pop(OPAQUE[case.operation.label], None)
    # A recurrence is valid only by the dates it yields from the task's due_at (API.md §5), which
    # no JSON Schema can say: schema-valid bodies send none (null, so a PATCH keeps a field to
    # change), schema-violating ones keep theirs.
    body_negative = case.meta is not None and case.meta.is_negative_at(ParameterLocation.BODY)
    is_task_body = case.operation.label in TASK_BODIES and isinstance(case.body, dict)
    if is_task_body and not body_negative and "recurrence" in case.body:
        case.body["recurrence"] = None
    return case
