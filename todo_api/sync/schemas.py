"""Marshmallow schemas of the sync route: its query parameters, and a deletion as it reports one."""

from __future__ import annotations

from marshmallow import Schema, fields, validate

from ..platform.fields import QueryArgsSchema, Timestamp


class SyncQuerySchema(QueryArgsSchema):
    """Query parameters of GET /api/{user_id}/sync (API.md §6)."""

    token = fields.String(validate=validate.Length(min=1, max=200), load_default=None)
    limit = fields.Integer(strict=True, validate=validate.Range(min=1, max=1000), load_default=200)


class DeletedTaskSchema(Schema):
    """A deletion as sync reports it (routes.py writes it out; the OpenAPI document is built from this)."""

    id = fields.Integer()
    deleted_at = Timestamp()


sync_query = SyncQuerySchema()
