"""Marshmallow schemas: task input (strict types, NUL and unknown fields refused), task output,
and the listing's query parameters. The one description of a task's fields: the REST routes and
the MCP tools load with these, and the OpenAPI document and the tools' JSON Schemas come from them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

from ..platform.fields import (
    QueryArgsSchema,
    ReadOnly,
    Reference,
    StrictBoolean,
    Text,
    Timestamp,
    format_timestamp,
    parse_timestamp,
)
from . import recurrence
from .errors import NOT_A_SIBLING, NOT_YOUR_LIST, NOT_YOUR_TASK

PRIORITIES = ("none", "low", "medium", "high")
READ_ONLY_FIELDS = ("id", "user_id", "completed_at", "next_id", "position", "created_at", "updated_at", "version")
MAX_TAGS = 20
MAX_TITLE_LENGTH = 200
MAX_DESCRIPTION_LENGTH = 1000
MAX_TAG_LENGTH = 50


class RecurrenceRule(Text):
    """An RFC 5545 RRULE as API.md §5 accepts it; loaded as its normalised (stored) text."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        try:
            return recurrence.parse_rule(super()._deserialize(value, attr, data, **kwargs)).text
        except recurrence.RuleError as error:
            raise ValidationError(str(error)) from None


class TimeZone(Text):
    """An IANA zone name exactly as the tz database spells it (case-sensitive); returned as given."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        try:
            return recurrence.check_zone(super()._deserialize(value, attr, data, **kwargs))
        except recurrence.RuleError as error:
            raise ValidationError(str(error)) from None


def recurrence_errors(task: dict[str, Any], sent: Any) -> dict[str, list[str]]:
    """The cross-field rules of API.md §5 on a task as a write would leave it, under the field the
    request sent (`recurrence` first, then `due_at`, then `timezone`); empty when it is valid."""
    rule = task.get("recurrence")
    if rule is None:
        return {}
    field = next((name for name in ("recurrence", "due_at", "timezone") if name in sent), "recurrence")
    if task.get("due_at") is None:
        return {field: ["A task with a recurrence needs a due_at."]}
    try:  # a rule sent was parsed by its field already; a stored one may predate today's grammar
        recurrence.check_task_rule(recurrence.parse_rule(rule, stored=True), task["due_at"], task["timezone"])
    except recurrence.RuleError as error:
        return {field: [str(error)]}
    return {}


class Tags(fields.List):
    """Up to 20 trimmed tags of 1-50 characters; case-insensitive duplicates dropped, first kept."""

    def __init__(self, **kwargs: Any):
        super().__init__(Text(strip=True, validate=validate.Length(min=1, max=MAX_TAG_LENGTH)), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        unique = distinct_tags(super()._deserialize(value, attr, data, **kwargs))
        if len(unique) > MAX_TAGS:
            raise ValidationError(f"At most {MAX_TAGS} distinct tags.")
        return unique


def distinct_tags(tags: list[str]) -> list[str]:
    """Tags without case-insensitive duplicates, the first spelling of each kept."""
    first_spelling: dict[str, str] = {}
    for tag in tags:
        first_spelling.setdefault(tag.casefold(), tag)
    return list(first_spelling.values())


class TaskInputSchema(Schema):
    """POST and PUT body: every writable field; omitted ones take their defaults."""

    class Meta:
        unknown = RAISE

    title = Text(required=True, strip=True, validate=validate.Length(min=1, max=MAX_TITLE_LENGTH))
    description = Text(allow_none=True, validate=validate.Length(max=MAX_DESCRIPTION_LENGTH), load_default=None)
    completed = StrictBoolean(load_default=False)
    priority = fields.String(validate=validate.OneOf(PRIORITIES), load_default="none")
    tags = Tags(load_default=list)
    due_at = Timestamp(allow_none=True, load_default=None)
    recurrence = RecurrenceRule(allow_none=True, load_default=None)
    timezone = TimeZone(load_default="UTC")
    remind_at = Timestamp(allow_none=True, load_default=None)

    id = ReadOnly()
    user_id = ReadOnly()
    completed_at = ReadOnly()
    next_id = ReadOnly()
    list_id = ReadOnly()  # set on POST (TaskCreateSchema), then changed only by …/move
    parent_id = ReadOnly()
    position = ReadOnly()
    created_at = ReadOnly()
    updated_at = ReadOnly()
    version = ReadOnly()

    @validates_schema(skip_on_field_errors=True)
    def _recurrence(self, data: dict[str, Any], **kwargs: Any) -> None:
        if errors := recurrence_errors(data, data):
            raise ValidationError(errors)


class TaskCreateSchema(TaskInputSchema):
    """POST body: the writable fields, and the list and parent the task starts in (API.md §8, §9).
    An absent list_id is not null: a subtask then takes its parent's list (tasks/tree.py)."""

    list_id = Reference(NOT_YOUR_LIST)
    parent_id = Reference(NOT_YOUR_TASK)


class TaskPatchSchema(TaskInputSchema):
    """PATCH body: only the fields given, at least one."""

    title = Text(strip=True, validate=validate.Length(min=1, max=MAX_TITLE_LENGTH))
    description = Text(allow_none=True, validate=validate.Length(max=MAX_DESCRIPTION_LENGTH))
    completed = StrictBoolean()
    priority = fields.String(validate=validate.OneOf(PRIORITIES))
    tags = Tags()
    due_at = Timestamp(allow_none=True)
    recurrence = RecurrenceRule(allow_none=True)
    timezone = TimeZone()
    remind_at = Timestamp(allow_none=True)

    def _recurrence(self, data: dict[str, Any], **kwargs: Any) -> None:
        """Not a hook here: a PATCH is checked as the task it leaves, once the stored one is locked."""

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ValidationError("Give at least one field to change.", "body")


class MoveSchema(Schema):
    """POST …/move body: one or more of parent_id, list_id and after (API.md §9, Moving)."""

    class Meta:
        unknown = RAISE

    parent_id = Reference(NOT_YOUR_TASK)
    list_id = Reference(NOT_YOUR_LIST)
    after = Reference(NOT_A_SIBLING)

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ValidationError("Give at least one of parent_id, list_id and after.", "body")


class CompleteSchema(Schema):
    """PATCH …/complete body, when there is one: {"completed": bool}."""

    class Meta:
        unknown = RAISE

    completed = StrictBoolean(required=True)


# --- loading a task body: the schema, with a shortcut for plain bodies -------------------------

NOT_PLAIN = object()  # a value the shortcut leaves to the schema


def load_task_input(body: dict[str, Any]) -> dict[str, Any]:
    """task_input.load(body): the same fields, or the same ValidationError."""
    loaded = _load_plain(body, partial=False)
    return task_input.load(body) if loaded is None else loaded


def load_task_create(body: dict[str, Any]) -> dict[str, Any]:
    """task_create.load(body): as load_task_input, and a list_id or parent_id loaded by the schema."""
    if "list_id" in body or "parent_id" in body:
        return task_create.load(body)
    return load_task_input(body)


def load_task_patch(body: dict[str, Any]) -> dict[str, Any]:
    """task_patch.load(body): the same fields, or the same ValidationError."""
    loaded = _load_plain(body, partial=True)
    return task_patch.load(body) if loaded is None else loaded


def load_complete(body: dict[str, Any]) -> dict[str, Any]:
    """complete_input.load(body): the same fields, or the same ValidationError."""
    if body.keys() == {"completed"} and isinstance(body["completed"], bool):
        return {"completed": body["completed"]}
    return complete_input.load(body)


def _load_plain(body: dict[str, Any], *, partial: bool) -> dict[str, Any] | None:
    """A task body loaded as the schema would, if every field in it passes its own checks and
    needs no other (no recurrence rule: its checks span fields); None to let the schema load it.

    Most writes send a few plain fields (a title, a priority, tags, a due date), and marshmallow's
    generic load costs several times what this does (docs/performance.md). Every refusal, and so every
    error message, still comes from the schema; tests/test_task_loading.py holds the two equal.
    """
    if not body.keys() <= _PLAIN_FIELDS.keys() or (partial and not body) or (not partial and "title" not in body):
        return None  # read-only or unknown fields, an empty PATCH, a POST without a title
    loaded = {}
    for name, load_plain in _PLAIN_FIELDS.items():  # in the schema's order
        if name in body:
            value = load_plain(body[name])
            if value is NOT_PLAIN:
                return None
            loaded[name] = value
        elif not partial:
            default = task_input.fields[name].load_default  # the schema's own default
            loaded[name] = default() if callable(default) else default  # tags: a list of its own each time
    return loaded


def _plain_text(value: Any, min_length: int, max_length: int, *, strip: bool = False) -> Any:
    """`value` as Text(strip=strip) with Length(min_length, max_length) loads it, or NOT_PLAIN."""
    if not isinstance(value, str) or "\x00" in value:
        return NOT_PLAIN
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate
            return NOT_PLAIN
    text = value.strip() if strip else value
    return text if min_length <= len(text) <= max_length else NOT_PLAIN


def _plain_tags(value: Any) -> Any:
    if not isinstance(value, list):
        return NOT_PLAIN
    tags = [_plain_text(tag, 1, MAX_TAG_LENGTH, strip=True) for tag in value]
    if NOT_PLAIN in tags:
        return NOT_PLAIN
    unique = distinct_tags(tags)
    return unique if len(unique) <= MAX_TAGS else NOT_PLAIN


def _plain_timestamp(value: Any) -> Any:
    if value is None:
        return None
    try:
        return parse_timestamp(value)
    except ValidationError:
        return NOT_PLAIN


def _plain_zone(value: Any) -> Any:
    try:
        return recurrence.check_zone(value) if isinstance(value, str) else NOT_PLAIN
    except recurrence.RuleError:
        return NOT_PLAIN


_PLAIN_FIELDS: dict[str, Callable[[Any], Any]] = {
    "title": lambda value: _plain_text(value, 1, MAX_TITLE_LENGTH, strip=True),
    "description": lambda value: None if value is None else _plain_text(value, 0, MAX_DESCRIPTION_LENGTH),
    "completed": lambda value: value if isinstance(value, bool) else NOT_PLAIN,
    "priority": lambda value: value if isinstance(value, str) and value in PRIORITIES else NOT_PLAIN,
    "tags": _plain_tags,
    "due_at": _plain_timestamp,
    "recurrence": lambda value: None if value is None else NOT_PLAIN,
    "timezone": _plain_zone,
    "remind_at": _plain_timestamp,
}


class TaskSchema(Schema):
    """A task as clients see it."""

    id = fields.Integer()
    user_id = fields.String()
    title = fields.String()
    description = fields.String(allow_none=True)
    completed = fields.Boolean()
    completed_at = Timestamp(allow_none=True)
    priority = fields.String()
    tags = fields.List(fields.String())
    due_at = Timestamp(allow_none=True)
    recurrence = fields.String(allow_none=True)
    timezone = fields.String()
    remind_at = Timestamp(allow_none=True)
    next_id = fields.Integer(allow_none=True)
    list_id = fields.Integer(allow_none=True)
    parent_id = fields.Integer(allow_none=True)
    position = fields.String()
    created_at = Timestamp()
    updated_at = Timestamp()
    version = fields.Integer()


def dump_task(row: dict[str, Any]) -> dict[str, Any]:
    """TaskSchema().dump(row), written out: the hot path of every response that carries tasks.

    TaskSchema stays the schema of record (the OpenAPI document is built from it); marshmallow's
    generic dump, or one built from its fields, costs more a task (docs/performance.md). Tests hold
    the two equal (tests/test_tasks.py) and the SQL's {task_columns} in its order (tests/test_sql.py).
    """
    return {
        "id": row["id"],
        "user_id": row["user_id"],
        "title": row["title"],
        "description": row["description"],
        "completed": row["completed"],
        "completed_at": format_timestamp(row["completed_at"]),
        "priority": row["priority"],
        "tags": row["tags"],
        "due_at": format_timestamp(row["due_at"]),
        "recurrence": row["recurrence"],
        "timezone": row["timezone"],
        "remind_at": format_timestamp(row["remind_at"]),
        "next_id": row["next_id"],
        "list_id": row["list_id"],
        "parent_id": row["parent_id"],
        "position": row["position"],
        "created_at": format_timestamp(row["created_at"]),
        "updated_at": format_timestamp(row["updated_at"]),
        "version": row["version"],
    }


class IdOrNone(fields.String):
    """A listing's list_id or parent_id: `none`, or an id (digits in a query string, an integer from a
    tool). An id that cannot be one (0, past bigint) gets `unknown`: the message of an id the user
    does not have (the operation checks those), so an answer never tells the two apart."""

    def __init__(self, unknown: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.unknown = unknown

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int | str:
        if value == NONE:
            return NONE
        if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
            value = int(value)
        if type(value) is not int:
            raise ValidationError(self.unknown)
        if not 0 < value <= 2**63 - 1:
            raise ValidationError(self.unknown)
        return value


NONE = "none"  # list_id=none: the inbox; parent_id=none: top-level tasks
NOT_YOUR_LIST_FILTER = "Must be `none` or the id of one of your lists."
NOT_YOUR_TASK_FILTER = "Must be `none` or the id of one of your tasks."


class ListQuerySchema(QueryArgsSchema):
    """Query parameters of GET /api/{user_id}/tasks (API.md §4, Listing)."""

    repeatable = ("tag",)
    comma_lists = ("priority",)

    status = fields.String(validate=validate.OneOf(("all", "pending", "completed")), load_default="all")
    priority = fields.List(fields.String(validate=validate.OneOf(PRIORITIES)), load_default=None)
    tag = fields.List(
        Text(strip=True, validate=validate.Length(min=1, max=MAX_TAG_LENGTH)),
        validate=validate.Length(max=MAX_TAGS),  # no task carries more
        load_default=list,
    )
    q = Text(validate=validate.Length(min=1, max=200), load_default=None)
    due_before = Timestamp(load_default=None)
    due_after = Timestamp(load_default=None)
    remind_before = Timestamp(load_default=None)
    remind_after = Timestamp(load_default=None)
    list_id = IdOrNone(NOT_YOUR_LIST_FILTER, load_default=None)
    parent_id = IdOrNone(NOT_YOUR_TASK_FILTER, load_default=None)
    sort = fields.String(
        validate=validate.OneOf(
            [
                f"{direction}{key}"
                for key in ("created_at", "updated_at", "due_at", "remind_at", "priority", "title", "position")
                for direction in ("", "-")
            ]
        ),
        load_default="-created_at",
    )
    limit = fields.Integer(strict=True, validate=validate.Range(min=1, max=100), load_default=20)
    cursor = fields.String(validate=validate.Length(min=1, max=2048), load_default=None)
    total = fields.String(validate=validate.OneOf(("true", "false")), load_default="false")

    @post_load
    def _typed(self, data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        data["total"] = data["total"] == "true"
        return data


task_input = TaskInputSchema()
task_create = TaskCreateSchema()
move_input = MoveSchema()
task_patch = TaskPatchSchema()
complete_input = CompleteSchema()
list_query = ListQuerySchema()
