"""The tools /mcp serves: every feature's, collected here, and their listing for tools/list."""

from __future__ import annotations

import copy
from typing import Any

from ..lists import tools as list_tools
from ..platform.tools import Tool
from ..tasks import tools as task_tools

# Each feature's tools module: TOOLS, and tool_schemas(components) -> {name: (input, output)}.
FEATURES = (task_tools, list_tools)
TOOLS: dict[str, Tool] = {tool.name: tool for feature in FEATURES for tool in feature.TOOLS}


def tool_listing(document: dict[str, Any]) -> list[dict[str, Any]]:
    """tools/list's `tools`, each with its JSON Schemas built from the OpenAPI document's components."""
    listing = []
    for feature in FEATURES:
        schemas = feature.tool_schemas(copy.deepcopy(document["components"]))
        listing += [tool.listing(*schemas[tool.name]) for tool in feature.TOOLS]
    return listing
