"""Incremental sync (API.md §6): what changed since a token, read over the features' tables."""
