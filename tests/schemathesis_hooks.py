"""schemathesis hooks (loaded by tests/schemathesis.toml)."""

from __future__ import annotations

import schemathesis
from schemathesis.core.parameters import ParameterLocation

LIST_TASKS = "GET /api/{user_id}/tasks"
SYNC_TASKS = "GET /api/{user_id}/sync"
LIST_DELIVERIES = "GET /api/{user_id}/webhooks/{webhook_id}/deliveries"
OPAQUE = {LIST_TASKS: "cursor", SYNC_TASKS: "token", LIST_DELIVERIES: "cursor"}
WEBHOOK_BODIES = ("POST /api/{user_id}/webhooks", "PATCH /api/{user_id}/webhooks/{webhook_id}")
# An https:// URL the API registers (a host name: checked only when delivering) and that, were a
# delivery process to try it, goes nowhere but this machine.
WEBHOOK_URL = "https://localhost/schemathesis"
TASK_BODIES = (
    "POST /api/{user_id}/tasks",
    "PUT /api/{user_id}/tasks/{task_id}",
    "PATCH /api/{user_id}/tasks/{task_id}",
)


@schemathesis.hook
def map_case(context, case):
    """A listing's cursor (tasks, a webhook's deliveries) and a sync token are opaque and sealed: no
    string the document allows is valid unless the server issued it (for this user, and a cursor for
    the same sort and filters), so a made-up one is a 400 however well-formed. Schema-valid cases
    leave it out; schema-violating ones keep it (and must get a 400)."""
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
    if is_task_body and body_negative:
        _keep_too_long_when_trimmed(case.body)
    if case.operation.label in WEBHOOK_BODIES and isinstance(case.body, dict) and not body_negative:
        _valid_webhook_body(case.body)
    # A list_id, parent_id or after names one of the user's lists or tasks (API.md §8, §9): a made-up
    # id is a 400 by design, whatever the document allows. Schema-valid cases name none (null in a
    # body, absent from the listing's query); schema-violating ones keep theirs.
    references = REFERENCES.get(case.operation.label, ())
    if references and isinstance(case.body, dict) and not body_negative:
        for name in references:
            if name in case.body:
                case.body[name] = None
    if case.operation.label == LIST_TASKS and not negative and case.query:
        for name in ("list_id", "parent_id"):
            if case.query.get(name) != "none":
                case.query.pop(name, None)
    if case.operation.label == LIST_TASKS and negative and case.query and "tag" in case.query:
        tags = case.query["tag"]
        limit = TRIMMED_LIMITS["tag"]
        case.query["tag"] = (
            [_too_long_when_trimmed(tag, limit) for tag in tags]
            if isinstance(tags, list)
            else _too_long_when_trimmed(tags, limit)
        )
    return case


REFERENCES = {
    "POST /api/{user_id}/tasks": ("list_id", "parent_id"),
    "POST /api/{user_id}/tasks/{task_id}/move": ("list_id", "parent_id", "after"),
    "POST /api/{user_id}/lists/{list_id}/move": ("after",),
}
TRIMMED_LIMITS = {"title": 200, "tags": 50, "tag": 50}  # API.md §3: trimmed; the limit applies after trimming


def _too_long_when_trimmed(text: object, limit: int) -> object:
    """A schema-violating string may be "too long" only by whitespace at its ends, which the service
    trims before it counts (API.md §3) and which no JSON Schema maxLength can leave out: such a
    string is valid. Its ends become visible characters, so it stays as long and really is too long."""
    if not isinstance(text, str) or len(text) <= limit or len(text.strip()) > limit:
        return text
    core = text.strip()
    start = text.index(core) if core else 0
    return "x" * start + core + "x" * (len(text) - start - len(core))


def _keep_too_long_when_trimmed(body: dict) -> None:
    if "title" in body:
        body["title"] = _too_long_when_trimmed(body["title"], TRIMMED_LIMITS["title"])
    if isinstance(body.get("tags"), list):
        body["tags"] = [_too_long_when_trimmed(tag, TRIMMED_LIMITS["tags"]) for tag in body["tags"]]


def _valid_webhook_body(body: dict) -> None:
    """A webhook's url is valid by where it points (API.md §10: no address literal in a refused range),
    and `"*"` stands alone in `events`: neither is a JSON Schema rule. Schema-valid bodies get a
    url the service takes and a lone "*"."""
    if "url" in body:
        body["url"] = WEBHOOK_URL
    if isinstance(body.get("events"), list) and "*" in body["events"]:
        body["events"] = ["*"]
