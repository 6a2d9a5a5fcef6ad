"""Tasks (API.md §3-§5): the REST routes, the operations they share with the MCP tools, the schemas,
the listing, recurrence rules and the locked writes that follow them."""
