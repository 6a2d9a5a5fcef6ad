"""Webhooks (API.md §10): the REST routes, the operations, the schemas, the OpenAPI paths, the address
rules, and `todo-api deliver` (deliver.py, sending.py), which sends what the tasks trigger of
migrations/0011 queues."""

# Every named statement of sql/webhooks.sql the API runs: checked at start-up (deliver.py checks its own).
QUERY_NAMES = (
    "lock_user_webhooks",
    "insert_webhook",
    "list_webhooks",
    "get_webhook",
    "get_webhook_version",
    "update_webhook",
    "delete_webhook",
    "insert_test_delivery",
    "list_deliveries",
    # /metrics (metrics.py)
    "allow_delivery_metrics_fan_out",
    "count_deliveries_by_status",
)
