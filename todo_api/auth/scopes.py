"""Scopes (API.md §1): what a personal access token may do, and what each route and tool needs.

Each blueprint under /api/ declares, in one line beside its definition, the scope its reads and its
writes need (`declare(bp, read=READ, write=WRITE)`, or one scope for every method); `create_app`
refuses to start with a blueprint under /api/ that declares nothing, so a new feature cannot ship
routes that any token may call. The check runs right after the token's user matches the path's:
after 401 and 403 `forbidden`, before 404, 405 and 400. A JWT has every scope.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, Flask

from ..platform.errors import ApiError

READ = "tasks:read"
WRITE = "tasks:write"
WEBHOOKS = "webhooks"
SCOPES = (READ, WRITE, WEBHOOKS)
# What a token granted a scope may do: tasks:write includes everything tasks:read allows.
_IMPLIED = {READ: {READ}, WRITE: {READ, WRITE}, WEBHOOKS: {WEBHOOKS}}
JWT_ONLY = "jwt"  # a route no personal access token may call, whatever its scopes (the /tokens routes)
EVERY_SCOPE = frozenset({*SCOPES, JWT_ONLY})  # a JWT's: every scope, and what only a JWT may do
API_PREFIX = "/api/<user_id>/"
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Needs:
    """The scope a blueprint's reads need and the one its writes need."""

    read: str
    write: str

    def of(self, method: str) -> str:
        return self.read if method in READ_METHODS else self.write


def declare(bp: Blueprint, read: str, write: str | None = None) -> None:
    """Say which scope the blueprint's GETs (`read`) and its other methods (`write`, default `read`) need."""
    bp.needs_scope = Needs(read, write or read)  # type: ignore[attr-defined]


def granted(scopes: list[str]) -> frozenset[str]:
    """Everything a token with `scopes` may do (tasks:write brings tasks:read)."""
    return frozenset(implied for scope in scopes for implied in _IMPLIED[scope])


def collect(app: Flask) -> dict[str, Needs]:
    """The scopes each /api/ collection (`tasks`, `sync`, ...) needs, from its blueprint's declaration;
    a start-up error for a blueprint under /api/ that declared none."""
    needs: dict[str, Needs] = {}
    for bp in app.blueprints.values():
        prefix = bp.url_prefix or ""
        if not prefix.startswith(API_PREFIX):
            continue
        declared = getattr(bp, "needs_scope", None)
        if declared is None:
            raise RuntimeError(f"blueprint {bp.name!r} ({prefix}) declares no scope: call auth.scopes.declare on it")
        needs[prefix.removeprefix(API_PREFIX).split("/")[0]] = declared
    return needs


def needed(needs: dict[str, Needs], path: str, method: str) -> str | None:
    """The scope a request to `path` with `method` needs (None: no route there, so none is needed)."""
    segments = path.split("/", 4)  # "", "api", user_id, collection, rest
    declared = needs.get(segments[3]) if len(segments) > 3 else None
    return None if declared is None else declared.of(method)


def check(scopes: frozenset[str], need: str | None) -> None:
    """403 insufficient_scope unless `scopes` allow what `need` names."""
    if need is None or need in scopes:
        return
    raise insufficient_scope(need)


def insufficient_scope(need: str) -> ApiError:
    """403 with RFC 6750's challenge naming the scope needed; none is named for a JWT-only route (no
    scope would do: a personal access token cannot manage tokens)."""
    challenge = 'Bearer realm="api", error="insufficient_scope"'
    if need == JWT_ONLY:
        message = "Personal access tokens cannot manage tokens: sign in and use a session's token (a JWT)."
        return ApiError(403, message, code="insufficient_scope", headers={"WWW-Authenticate": challenge})
    return ApiError(
        403,
        f"This token lacks the {need} scope this request needs.",
        code="insufficient_scope",
        details={"scope": need},
        headers={"WWW-Authenticate": f'{challenge}, scope="{need}"'},
    )


def of_tool(read_only: bool) -> str:
    """The scope an MCP tool needs: tasks:read for a tool that only reads, else tasks:write (API.md §1)."""
    return READ if read_only else WRITE
