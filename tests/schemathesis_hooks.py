"""schemathesis hooks (loaded by tests/schemathesis.toml)."""

from __future__ import annotations

import schemathesis
from schemathesis.core.parameters import ParameterLocation

LIST_TASKS = "GET /api/{user_id}/tasks"
SYNC_TASKS = "GET /api/{user_id}/sync"
OPAQUE = {LIST_TASKS: "cursor", SYNC_TASKS: "token"}


@schemathesis.hook
def map_case(context, case):
    """A listing cursor and a sync token are opaque and sealed: no string the document allows is valid
    unless the server issued it (for this user, and a cursor for the same sort and filters), so a
    made-up one is a 400 however well-formed. Schema-valid cases leave it out; schema-violating ones
    keep it (and must get a 400)."""
    negative = case.meta is not None and case.meta.is_negative_at(ParameterLocation.QUERY)
    if case.operation.label in OPAQUE and case.query and not negative:
        case.query.pop(OPAQUE[case.operation.label], None)
    return case
