"""POST /mcp: the Model Context Protocol endpoint (API.md §7), serving the features' tools."""
