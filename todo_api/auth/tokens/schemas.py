"""Marshmallow schemas of personal access tokens: the POST body, and a token as clients see it."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from ...platform.fields import ReadOnly, Text, Timestamp, format_timestamp
from ..scopes import SCOPES

MAX_NAME_LENGTH = 100
MAX_EXPIRY_DAYS = 365
DEFAULT_EXPIRY_DAYS = 90
READ_ONLY_FIELDS = ("id", "expires_at", "token", "created_at", "last_used_at")


class Scopes(fields.List):
    """One or more of the scopes there are; duplicates dropped, first kept, order kept."""

    def __init__(self, **kwargs: Any):
        super().__init__(fields.String(validate=validate.OneOf(SCOPES)), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        scopes = list(dict.fromkeys(super()._deserialize(value, attr, data, **kwargs)))
        if not scopes:
            raise ValidationError("Give at least one scope.")
        return scopes


class WholeNumber(fields.Integer):
    """A JSON number without a fraction (30, or 30.0 as JSON Schema's `integer` allows): not a string
    of digits, not a boolean, not 30.5."""

    def __init__(self, **kwargs: Any):
        super().__init__(strict=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool):
            raise self.make_error("invalid")
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return super()._deserialize(value, attr, data, **kwargs)


class TokenInputSchema(Schema):
    """POST body: a name, scopes, and how many days the token lives (absent: 90; null is refused)."""

    class Meta:
        unknown = RAISE

    name = Text(required=True, strip=True, validate=validate.Length(min=1, max=MAX_NAME_LENGTH))
    scopes = Scopes(required=True)
    expires_in_days = WholeNumber(validate=validate.Range(min=1, max=MAX_EXPIRY_DAYS), load_default=DEFAULT_EXPIRY_DAYS)

    id = ReadOnly()
    expires_at = ReadOnly()
    token = ReadOnly()
    created_at = ReadOnly()
    last_used_at = ReadOnly()


class TokenSchema(Schema):
    """A token's metadata as clients see it; `token` only in the answer to the POST that made it."""

    id = fields.Integer()
    name = fields.String()
    scopes = fields.List(fields.String(validate=validate.OneOf(SCOPES)))
    expires_at = Timestamp()
    created_at = Timestamp()
    last_used_at = Timestamp(allow_none=True)


class CreatedTokenSchema(TokenSchema):
    """The answer to the POST: the metadata and, this once, the token itself."""

    token = fields.String()


def dump_token(row: dict[str, Any]) -> dict[str, Any]:
    """A token's metadata (never its hash, which no statement returns)."""
    return {
        "id": row["id"],
        "name": row["name"],
        "scopes": row["scopes"],
        "expires_at": format_timestamp(row["expires_at"]),
        "created_at": format_timestamp(row["created_at"]),
        "last_used_at": format_timestamp(row["last_used_at"]),
    }


token_input = TokenInputSchema()
