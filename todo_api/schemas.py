"""Marshmallow schemas: task input (strict types, NUL and unknown fields refused), task output,
list query parameters, and the {data, meta} envelope."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates_schema

from . import recurrence

PRIORITIES = ("none", "low", "medium", "high")
READ_ONLY_FIELDS = ("id", "user_id", "completed_at", "next_id", "created_at", "updated_at", "version")
MAX_TAGS = 20

_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$")


def format_timestamp(value: datetime | None) -> str | None:
    """A timestamp as RFC 3339 in UTC with the Z suffix."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def parse_timestamp(value: Any) -> datetime:
    """RFC 3339 with an explicit offset; raises ValidationError for anything else."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        raise ValidationError("Must be an RFC 3339 timestamp with an offset, like 2026-12-01T09:00:00+01:00.")
    try:
        parsed = datetime.fromisoformat(value.upper())  # RFC 3339 allows `t` and `z`; Python 3.11 reads only `Z`
    except ValueError:
        raise ValidationError("Not a valid date and time.") from None
    try:  # in UTC it must still fit years 1-9999, or the database hands back what Python cannot read
        parsed.astimezone(UTC)
    except OverflowError:
        raise ValidationError("Must be between years 1 and 9999 in UTC.") from None
    return parsed


class Text(fields.String):
    """A string that PostgreSQL can store: no NUL, no lone surrogate; optionally trimmed."""

    def __init__(self, *, strip: bool = False, **kwargs: Any):
        super().__init__(**kwargs)
        self.strip = strip

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("Must not contain the NUL character.")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("Must be valid Unicode text.") from None
        return text.strip() if self.strip else text


class StrictBoolean(fields.Boolean):
    """true or false only: "yes", 1 and "true" are not booleans."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise ValidationError("Not a valid boolean.")
        return value


class Timestamp(fields.Field):
    """RFC 3339 with offset on input; UTC with Z on output."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        return parse_timestamp(value)

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        return format_timestamp(value)


class ReadOnly(fields.Field):
    """A field the server owns: present in output, refused in input."""

    def __init__(self, **kwargs: Any):
        super().__init__(allow_none=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        raise ValidationError("This field is read-only.")


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
    try:
        recurrence.check_task_rule(recurrence.parse_rule(rule), task["due_at"], task["timezone"])
    except recurrence.RuleError as error:
        return {field: [str(error)]}
    return {}


class Tags(fields.List):
    """Up to 20 trimmed tags of 1-50 characters; case-insensitive duplicates dropped, first kept."""

    def __init__(self, **kwargs: Any):
        super().__init__(Text(strip=True, validate=validate.Length(min=1, max=50)), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        tags = super()._deserialize(value, attr, data, **kwargs)
        first_spelling: dict[str, str] = {}
        for tag in tags:
            first_spelling.setdefault(tag.casefold(), tag)
        unique = list(first_spelling.values())
        if len(unique) > MAX_TAGS:
            raise ValidationError(f"At most {MAX_TAGS} distinct tags.")
        return unique


class TaskInputSchema(Schema):
    """POST and PUT body: every writable field; omitted ones take their defaults."""

    class Meta:
        unknown = RAISE

    title = Text(required=True, strip=True, validate=validate.Length(min=1, max=200))
    description = Text(allow_none=True, validate=validate.Length(max=1000), load_default=None)
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
    created_at = ReadOnly()
    updated_at = ReadOnly()
    version = ReadOnly()

    @validates_schema(skip_on_field_errors=True)
    def _recurrence(self, data: dict[str, Any], **kwargs: Any) -> None:
        if errors := recurrence_errors(data, data):
            raise ValidationError(errors)


class TaskPatchSchema(TaskInputSchema):
    """PATCH body: only the fields given, at least one."""

    title = Text(strip=True, validate=validate.Length(min=1, max=200))
    description = Text(allow_none=True, validate=validate.Length(max=1000))
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


class CompleteSchema(Schema):
    """PATCH …/complete body, when there is one: {"completed": bool}."""

    class Meta:
        unknown = RAISE

    completed = StrictBoolean(required=True)


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
    created_at = Timestamp()
    updated_at = Timestamp()
    version = fields.Integer()


# The fields of a task, in TaskSchema's order: what each task statement returns (sql/tasks.sql),
# already as the API shows it (a test holds those rows equal to TaskSchema().dump of the stored row).
TASK_FIELDS = tuple(TaskSchema().fields)


def _comma_list(value: str) -> list[str]:
    return [item.strip() for item in value.split(",")]


class QueryArgsSchema(Schema):
    """Query parameters: unknown ones and ones given twice are errors naming them."""

    class Meta:
        unknown = RAISE

    repeatable: tuple[str, ...] = ()
    comma_lists: tuple[str, ...] = ()

    def load_args(self, args: Any) -> dict[str, Any]:
        """Load werkzeug MultiDict query args: names in `repeatable` may repeat, those in `comma_lists`
        are comma lists, the rest come once; an integer `limit` is read as a number."""
        raw: dict[str, Any] = {}
        errors: dict[str, list[str]] = {}
        for name, values in args.lists():
            if name in self.repeatable:
                raw[name] = values
            elif len(values) > 1:
                errors[name] = ["Give this parameter once."]
            elif name in self.comma_lists:
                raw[name] = _comma_list(values[0])
            elif name == "limit":
                digits = values[0].isascii() and values[0].isdigit()  # str.isdigit() also takes "²" and "٣"
                raw[name] = int(values[0]) if digits and len(values[0]) < 6 else values[0]
            else:
                raw[name] = values[0]
        try:
            loaded = self.load(raw)
        except ValidationError as error:
            errors = {**error.normalized_messages(), **errors}  # type: ignore[dict-item]
            raise ValidationError(errors) from None
        if errors:
            raise ValidationError(errors)
        return loaded


class ListQuerySchema(QueryArgsSchema):
    """Query parameters of GET /api/{user_id}/tasks (API.md §4, Listing)."""

    repeatable = ("tag",)
    comma_lists = ("priority",)

    status = fields.String(validate=validate.OneOf(("all", "pending", "completed")), load_default="all")
    priority = fields.List(fields.String(validate=validate.OneOf(PRIORITIES)), load_default=None)
    tag = fields.List(
        Text(strip=True, validate=validate.Length(min=1, max=50)),
        validate=validate.Length(max=MAX_TAGS),  # no task carries more
        load_default=list,
    )
    q = Text(validate=validate.Length(min=1, max=200), load_default=None)
    due_before = Timestamp(load_default=None)
    due_after = Timestamp(load_default=None)
    remind_before = Timestamp(load_default=None)
    remind_after = Timestamp(load_default=None)
    sort = fields.String(
        validate=validate.OneOf(
            [
                f"{direction}{key}"
                for key in ("created_at", "updated_at", "due_at", "remind_at", "priority", "title")
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


class SyncQuerySchema(QueryArgsSchema):
    """Query parameters of GET /api/{user_id}/sync (API.md §6)."""

    token = fields.String(validate=validate.Length(min=1, max=200), load_default=None)
    limit = fields.Integer(strict=True, validate=validate.Range(min=1, max=1000), load_default=200)


class DeletedTaskSchema(Schema):
    """A deletion as sync reports it (sync.py writes it out; the OpenAPI document is built from this)."""

    id = fields.Integer()
    deleted_at = Timestamp()


task_input = TaskInputSchema()
task_patch = TaskPatchSchema()
complete_input = CompleteSchema()
list_query = ListQuerySchema()
sync_query = SyncQuerySchema()


def envelope(data: Any, request_id: str | None, **meta: Any) -> dict[str, Any]:
    return {"data": data, "meta": {"request_id": request_id, **meta}}
