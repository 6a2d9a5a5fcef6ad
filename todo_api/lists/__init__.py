"""Lists (API.md §8): the REST routes, the operations they share with the MCP tools, the schemas,
the MCP tools and the OpenAPI paths. A task's list_id meets this feature in the database only (the
foreign key of migrations/0009), so neither feature imports the other."""

# Every named statement of sql/lists.sql the feature runs: checked at start-up.
QUERY_NAMES = (
    "lock_lists",
    "insert_list",
    "last_list_position",
    "list_lists",
    "get_list",
    "get_list_version",
    "rename_list",
    "lock_list",
    "list_neighbour_positions",
    "lock_other_lists",
    "set_list_positions",
    "move_list",
    "count_list_tasks",
    "delete_list",
)
