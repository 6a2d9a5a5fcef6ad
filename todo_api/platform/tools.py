"""What a feature needs to offer its operations as MCP tools (API.md §7) without importing the MCP
surface: the Tool type, and the checks of a call's arguments that every tool shares."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marshmallow import Schema, ValidationError

from .errors import invalid, validation_error

MAX_VERSION = 2**31 - 1  # the version columns are integers: a larger if_match matches no version


@dataclass(frozen=True)
class Tool:
    """One tool: what tools/list shows, and how a call runs (user id, arguments → structured result)."""

    name: str
    title: str
    description: str
    annotations: dict[str, bool]
    run: Callable[[str, dict[str, Any]], dict[str, Any]]

    def listing(self, input_schema: dict[str, Any], output_schema: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": input_schema,
            "outputSchema": output_schema,
            "annotations": {"title": self.title, **self.annotations, "openWorldHint": False},
        }


def split_arguments(
    arguments: dict[str, Any],
    schema: Schema | None = None,
    *,
    partial: bool = False,
    own: tuple[str, ...] = (),
    required: tuple[str, ...] = (),
    refused: tuple[str, ...] = (),
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split a call's arguments into the tool's own (ids and `if_match`: positive integers, those in
    `required` required), checked here, and the rest, loaded by the REST API's `schema` (none: no
    other argument is known; `refused`: names the schema knows that the tool does not take).
    Every problem at once, as one validation_error."""
    errors: dict[str, list[str]] = {}
    mine: dict[str, Any] = {}
    for name in own:
        if name not in arguments:
            if name in required:
                errors[name] = ["Missing data for required field."]
            continue
        value = arguments[name]
        if type(value) is not int or value < 1:
            errors[name] = ["Must be a positive integer."]
        mine[name] = value
    rest = {name: value for name, value in arguments.items() if name not in own}
    for name in [name for name in rest if schema is None or name in refused]:
        errors[name] = ["Unknown field."]
        del rest[name]
    loaded: dict[str, Any] = {}
    if schema is not None:
        try:
            loaded = schema.load(rest, partial=partial)
        except ValidationError as error:
            errors.update(invalid(error).details)
    if errors:
        raise validation_error(errors)
    return mine, loaded


def expected_versions(mine: dict[str, Any]) -> list[int] | None:
    """The versions a write accepts from the tool's `if_match` argument (None: any)."""
    if "if_match" not in mine:
        return None
    return [mine["if_match"]] if mine["if_match"] <= MAX_VERSION else []


def object_schema(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    """A JSON Schema object of these properties and no others."""
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    return schema
