"""Marshmallow schemas of a list: input (strict types, NUL and unknown fields refused) and output.
The one description of a list's fields: the REST routes and the MCP tools load with these, and the
OpenAPI document and the tools' JSON Schemas come from them."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from ..platform.fields import ReadOnly, Reference, Text, Timestamp, format_timestamp
from .errors import NOT_A_LIST

MAX_NAME_LENGTH = 100
READ_ONLY_FIELDS = ("id", "user_id", "position", "created_at", "updated_at", "version")


class ListInputSchema(Schema):
    """POST and PATCH body: {"name"} (PATCH: an empty object is a 400 naming `body`)."""

    class Meta:
        unknown = RAISE

    name = Text(required=True, strip=True, validate=validate.Length(min=1, max=MAX_NAME_LENGTH))

    id = ReadOnly()
    user_id = ReadOnly()
    position = ReadOnly()
    created_at = ReadOnly()
    updated_at = ReadOnly()
    version = ReadOnly()


class ListPatchSchema(ListInputSchema):
    """PATCH body: the fields to change, at least one."""

    name = Text(strip=True, validate=validate.Length(min=1, max=MAX_NAME_LENGTH))

    @validates_schema
    def _not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ValidationError("Give at least one field to change.", "body")


class ListMoveSchema(Schema):
    """POST …/move body: {"after": <list id or null>} (null: first; absent: last)."""

    class Meta:
        unknown = RAISE

    after = Reference(NOT_A_LIST)


class ListSchema(Schema):
    """A list as clients see it."""

    id = fields.Integer()
    user_id = fields.String()
    name = fields.String()
    position = fields.String()
    created_at = Timestamp()
    updated_at = Timestamp()
    version = fields.Integer()


def dump_list(row: dict[str, Any]) -> dict[str, Any]:
    """ListSchema().dump(row), written out (as tasks' dump_task; tests hold the two equal)."""
    return {
        "id": row["id"],
        "user_id": row["user_id"],
        "name": row["name"],
        "position": row["position"],
        "created_at": format_timestamp(row["created_at"]),
        "updated_at": format_timestamp(row["updated_at"]),
        "version": row["version"],
    }


list_input = ListInputSchema()
list_patch = ListPatchSchema()
list_move = ListMoveSchema()
