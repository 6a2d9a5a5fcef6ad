"""Personal access tokens (API.md §1): created and revoked by a signed-in user (a JWT), scoped and
expiring, stored only as a hash; the /tokens routes, their operations and schemas, and the check of
a token presented on a request (credentials.py)."""

# Every named statement of sql/tokens.sql the feature runs: checked at start-up.
QUERY_NAMES = (
    "lock_access_tokens_of_user",
    "count_access_tokens",
    "insert_access_token",
    "list_access_tokens",
    "delete_access_token",
    "find_access_token",
    "with_access_token",
    "touch_access_token",
)
