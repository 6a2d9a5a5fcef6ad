"""Marshmallow field types every feature's schemas use, the timestamp format of the API, and the
base schema of query parameters."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, missing

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
    """A field the server owns: present in output, refused in input whatever its value, null included."""

    def deserialize(self, value: Any, attr: str | None = None, data: Any = None, **kwargs: Any) -> Any:
        # Field.deserialize would answer null itself ("may not be null", or None with allow_none).
        if value is missing:
            return missing
        raise ValidationError("This field is read-only.")


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


class Reference(fields.Integer):
    """The id of another resource of the user (a list, a task), or null. Any integer loads: one that
    no id can be (0, negative, past bigint) gets `unknown`, the message the feature gives an id the
    user does not have, so an answer never tells an impossible id from another user's."""

    def __init__(self, unknown: str, **kwargs: Any):
        super().__init__(strict=True, allow_none=True, **kwargs)
        self.unknown = unknown

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        number = super()._deserialize(value, attr, data, **kwargs)
        if not 0 < number <= 2**63 - 1:  # bigint, as platform/http.py's MAX_ID
            raise ValidationError(self.unknown)
        return number
