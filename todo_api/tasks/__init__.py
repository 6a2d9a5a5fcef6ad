"""Tasks (API.md §3-§5): the REST routes, the operations they share with the MCP tools, the schemas,
the listing, recurrence rules, the writes, the MCP tools and the OpenAPI paths."""

# Every named statement of sql/tasks.sql the feature runs: checked at start-up.
QUERY_NAMES = (
    "insert_task",
    "get_task",
    "get_task_version",
    "lock_task",
    "update_task",
    "set_task_completed",
    "delete_task",
    "list_tasks",
    "count_tasks",
    "forget_deletions",
    "find_list",
    "share_list",
    "last_sibling_position",
    "sibling_position",
    "next_sibling_position",
    "lock_siblings",
    "set_positions",
    "lock_task_tree",
    "task_ancestry",
    "lock_subtree",
    "move_task",
    "move_subtasks",
    "complete_subtasks",
)
