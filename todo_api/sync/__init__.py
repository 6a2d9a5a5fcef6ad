"""Incremental sync (API.md §6): what changed since a token, read over the features' tables and
answered in their API shapes. The one package that imports a feature (docs/architecture.md)."""

# Every named statement of sql/sync.sql the feature runs: checked at start-up.
QUERY_NAMES = ("sync_changes",)
