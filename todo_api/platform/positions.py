"""Positions: the manual order of a group of siblings (API.md §9) as fractional-indexing keys.

A key is a string compared byte-wise (ASCII, PostgreSQL's COLLATE "C"); a new one can always be made
between two others, so a move writes one row however many siblings there are. Keys grow by about a
character each time an item goes between the same two neighbours again; past MAX_LENGTH the group is
rewritten with short, evenly spread keys (`spread`), which the caller does as one rebalance.
The scheme is the `fractional-indexing` package's (base 62, as in Figma's and Rocicorp's).
"""

from __future__ import annotations

from fractional_indexing import FIError, generate_key_between, generate_n_keys_between

MAX_LENGTH = 64


def between(before: str | None, after: str | None) -> str | None:
    """A key strictly between `before` and `after` (None: no bound on that side), or None when there
    is none short enough (a tie between the two, or a key past MAX_LENGTH): rebalance the group then."""
    if before is not None and after is not None and before >= after:
        return None
    try:
        key = generate_key_between(before, after)
    except FIError:
        return None
    return key if len(key) <= MAX_LENGTH else None


def spread(count: int) -> list[str]:
    """`count` short keys in increasing order: a group's positions after a rebalance."""
    return generate_n_keys_between(None, None, count)
