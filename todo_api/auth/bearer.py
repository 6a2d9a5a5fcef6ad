"""Bearer-token verification (API.md §1) and the decorator that guards views.

A bearer credential is a JWT or a personal access token (`tdo_…`, tokens/credentials.py). Under
/api/ authentication comes before everything else: 401 without a valid token, 403 when the token's
user is not the path's {user_id}, 403 insufficient_scope when a personal access token lacks the
scope the route needs (scopes.py), and only then routing errors (404, 405) and the view.

A personal access token's lookup on a GET of its own user's path is left for the view's first
statement to carry (platform/db.py, PendingLookup: one round trip, as with a JWT), and settled
before the view's answer leaves, whatever it is (docs/tokens.md, "One statement for a read").
"""

from __future__ import annotations

import functools
import hashlib
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import jwt
from flask import Response, current_app, g, request

from ..platform.config import Settings
from ..platform.db import PendingLookup, current_database, defer_lookup, settle_pending_lookup
from ..platform.errors import ApiError
from . import scopes
from .jwks import JwksCache, JwksUnavailable
from .tokens import credentials

F = TypeVar("F", bound=Callable[..., Any])

BARE_CHALLENGE = 'Bearer realm="api"'
MAX_USER_ID_LENGTH = 255
# A read of the token's own user may carry the lookup in its first statement: only a plain SELECT
# carries it (Database.carried_by), anything else runs after it, so a refused token changes nothing.
DEFERRABLE_METHODS = frozenset({"GET", "HEAD"})
VERIFIED_TOKENS_MAX_BYTES = 4 * 1024 * 1024  # per worker: about 10,000 tokens, whatever their length


def _unauthorized(description: str | None = None) -> ApiError:
    challenge = BARE_CHALLENGE
    if description is not None:
        challenge += f', error="invalid_token", error_description="{description}"'
    return ApiError(401, headers={"WWW-Authenticate": challenge})


@dataclass(frozen=True)
class _Verified:
    """A token whose signature and claims passed: reused until it expires or its key goes away."""

    user_id: str
    expires_at: float
    algorithm: str
    kid: str | None
    key: Any


class VerifiedTokens:
    """Verified tokens by the SHA-256 of the token, within `max_bytes` (estimated), least recently
    used evicted first; thread-safe (gthread workers share one per process).

    Keyed by a digest, an entry costs the same for a 10 KB token as for a short one, and the cache
    holds no token a memory dump could replay. When full, it forgets the users idle longest, one at
    a time, rather than every user at once.
    """

    ENTRY_OVERHEAD = 280  # bytes beyond the digest and the strings: measured with tracemalloc on CPython 3.11

    def __init__(self, max_bytes: int = VERIFIED_TOKENS_MAX_BYTES):
        self.max_bytes = max_bytes
        self.size = 0
        self._entries: OrderedDict[bytes, tuple[_Verified, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @staticmethod
    def digest(token: str) -> bytes:
        return hashlib.sha256(token.encode()).digest()

    def get(self, digest: bytes) -> _Verified | None:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            self._entries.move_to_end(digest)
            return entry[0]

    def put(self, digest: bytes, verified: _Verified) -> None:
        cost = self.ENTRY_OVERHEAD + sys.getsizeof(digest) + sys.getsizeof(verified.user_id)
        cost += sys.getsizeof(verified.kid) if verified.kid is not None else 0
        with self._lock:
            self._forget(digest)
            self._entries[digest] = (verified, cost)
            self.size += cost
            while self.size > self.max_bytes:
                self._forget(next(iter(self._entries)))

    def discard(self, digest: bytes) -> None:
        with self._lock:
            self._forget(digest)

    def _forget(self, digest: bytes) -> None:
        entry = self._entries.pop(digest, None)
        if entry is not None:
            self.size -= entry[1]


class TokenVerifier:
    """Turns a bearer token into the user id it speaks for, or raises a 401 ApiError.

    HMAC algorithms verify with BETTER_AUTH_SECRET, the others with a key from the JWKS (`jwks`,
    None when that mode is off); the token's `alg` must be in the configured list either way.
    """

    def __init__(self, settings: Settings, jwks: JwksCache | None = None):
        self.settings = settings
        self._secret = settings.better_auth_secret
        self._hmac_algorithms = list(settings.hmac_algorithms) if self._secret else []
        self._jwks = jwks
        self._options: dict[str, Any] = {
            "require": ["exp"],
            "verify_aud": settings.jwt_audience is not None,
            "verify_iss": settings.jwt_issuer is not None,
        }
        # Clients send the same token for its whole life (Better Auth: 15 minutes); checking its
        # signature and claims once, not on every request, is the largest saving on the hot path.
        self.verified = VerifiedTokens()

    def verify(self, token: str) -> str:
        digest = VerifiedTokens.digest(token)
        remembered = self.verified.get(digest)
        if remembered is not None:
            if (
                time.time() < remembered.expires_at + self.settings.jwt_leeway_seconds
                and self._key(remembered.algorithm, remembered.kid) is remembered.key
            ):
                return remembered.user_id
            self.verified.discard(digest)  # expired, or its key is gone: verified afresh below
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:
            raise _unauthorized("The token is malformed.") from None
        algorithm, kid = header.get("alg"), header.get("kid")
        key = self._key(algorithm, kid)
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                options=self._options,
                leeway=self.settings.jwt_leeway_seconds,
                issuer=self.settings.jwt_issuer,
                audience=self.settings.jwt_audience,
            )
        except jwt.ExpiredSignatureError:
            raise _unauthorized("The token has expired.") from None
        except jwt.ImmatureSignatureError:
            raise _unauthorized("The token is not valid yet.") from None
        except jwt.InvalidIssuerError:
            raise _unauthorized("The token's issuer is not accepted.") from None
        except jwt.InvalidAudienceError:
            raise _unauthorized("The token's audience is not accepted.") from None
        except jwt.MissingRequiredClaimError as error:
            raise _unauthorized(f"The token has no {error.claim} claim.") from None
        except jwt.InvalidTokenError:
            raise _unauthorized("The token's signature or claims are invalid.") from None
        user_id = self._user_id(claims)
        self.verified.put(digest, _Verified(user_id, float(claims["exp"]), algorithm, kid, key))
        return user_id

    def _key(self, algorithm: Any, kid: Any) -> str | jwt.PyJWK:
        """The key this token must verify with: the shared secret for an HMAC `alg`, the JWKS key
        named by `kid` for the others. A public key never verifies an HMAC token, and an `alg`
        outside the configured list (`none` included) is refused before any key is looked up."""
        if algorithm in self._hmac_algorithms:
            return self._secret  # type: ignore[return-value]  # the list is empty without a secret
        if self._jwks is None or algorithm not in self._jwks.algorithms:
            raise _unauthorized("The token's algorithm is not accepted.")
        if not kid:
            raise _unauthorized("The token has no kid header.")
        try:
            key = self._jwks.key(kid, algorithm)
        except JwksUnavailable as error:
            raise ApiError(
                503,
                "The keys that verify tokens cannot be fetched right now; retry shortly.",
                details={"jwks": "unreachable"},
                headers={"Retry-After": str(error.retry_after)},
            ) from None
        if key is None:
            raise _unauthorized("No published key matches the token's kid and alg.")
        return key

    def _user_id(self, claims: dict[str, Any]) -> str:
        user_id = claims.get(self.settings.jwt_user_claim)
        if not isinstance(user_id, str) or not user_id:
            raise _unauthorized(f"The token's {self.settings.jwt_user_claim} claim must be a non-empty string.")
        if len(user_id) > MAX_USER_ID_LENGTH or "\x00" in user_id:
            raise _unauthorized(f"The token's {self.settings.jwt_user_claim} claim is not a usable user id.")
        return user_id


def _bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise _unauthorized()  # no bearer credentials at all: the bare challenge
    return token


def authenticate(path_user_id: str | None, *, may_defer: bool = False) -> str:
    """Verify the request's token (401), match its user to the path's (403), then check that the
    token's scopes allow the request (403 insufficient_scope). `g.scopes` holds what it may do.

    `may_defer`: a personal access token's lookup on a read of the token's own user's path may be
    left for the request's first statement to carry in its round trip (_defer_lookup); the caller
    then settles it before answering (require_user)."""
    token = _bearer_token()
    if credentials.is_personal(token):
        return _authenticate_personal(token, path_user_id, may_defer)
    verifier: TokenVerifier = current_app.extensions["todo_api.auth"]
    user_id, g.scopes = verifier.verify(token), scopes.EVERY_SCOPE
    g.user_id = user_id
    if path_user_id is not None and path_user_id != user_id:
        raise ApiError(403)
    if path_user_id is not None:
        scopes.check(g.scopes, _needed_scope())
    return user_id


def _needed_scope() -> str | None:
    return scopes.needed(current_app.extensions["todo_api.scopes"], request.path, request.method)


def _authenticate_personal(token: str, path_user_id: str | None, may_defer: bool) -> str:
    try:
        presented = credentials.present(token)
    except credentials.Refused as refused:
        raise _unauthorized(str(refused)) from None
    if may_defer and request.method in DEFERRABLE_METHODS and path_user_id == presented.user_id:
        _defer_lookup(presented, _needed_scope())
        return presented.user_id
    try:
        holder = credentials.check(current_database(), token)
    except credentials.Refused as refused:
        raise _unauthorized(str(refused)) from None
    g.user_id, g.scopes = holder.user_id, holder.scopes
    if path_user_id is not None and path_user_id != holder.user_id:
        raise ApiError(403)
    if path_user_id is not None:
        scopes.check(holder.scopes, _needed_scope())
    return holder.user_id


def _defer_lookup(presented: credentials.Presented, needed: str | None) -> None:
    """Leave the token's lookup for the request's first statement (db.PendingLookup): nothing of the
    request is acted on before its answer is checked, and it is checked before any answer leaves."""
    database = current_database()

    def accept(holder: credentials.Holder) -> None:
        g.user_id, g.scopes = holder.user_id, holder.scopes
        try:
            scopes.check(holder.scopes, needed)  # the path's user is the token's (checked before deferring)
        except ApiError as refusal:
            refuse(refusal)

    def refuse(refusal: ApiError) -> NoReturn:
        g.token_refusal = refusal  # kept, in case the view catches it: require_user raises it again
        raise refusal

    def settle(row: tuple[Any, ...] | None) -> Callable[[], None] | None:
        try:
            holder, stale = credentials.decide_row(presented, row)
        except credentials.Refused as refused:
            refuse(_unauthorized(str(refused)))
        accept(holder)
        return functools.partial(credentials.touch, database, holder) if stale else None

    def settle_alone() -> None:
        try:
            holder = credentials.check_presented(database, presented)
        except credentials.Refused as refused:
            refuse(_unauthorized(str(refused)))
        accept(holder)

    defer_lookup(PendingLookup("with_access_token", presented.lookup_params(), settle, settle_alone))


def require_user(view: F) -> F:
    """Let the view run only for a valid token whose user is the path's {user_id}. A personal access
    token's deferred lookup is settled before the view's answer (or error) leaves: its verdict wins."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        authenticate(kwargs["user_id"], may_defer=True)
        try:
            answer = view(*args, **kwargs)
        except BaseException:
            _settle_before_answering()  # a refused token's 401 or 403 replaces what the view raised
            raise
        _settle_before_answering()
        return answer

    return wrapper  # type: ignore[return-value]


def _settle_before_answering() -> None:
    """Decide a deferred lookup no statement carried (alone, now); raise its refusal, even one
    that a statement's round trip met and the view caught."""
    settle_pending_lookup()
    refusal = g.get("token_refusal")
    if refusal is not None:
        raise refusal


def is_cors_preflight() -> bool:
    return request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers


def guard_api_requests_without_view() -> Response | None:
    """before_request: requests under /api/ that no guarded view will see (unknown route, 405,
    bad id, automatic OPTIONS) are authenticated here, so a 401 or 403 comes before 404/405.

    A CORS preflight needs no token (browsers never send one); it gets the plain OPTIONS answer,
    which flask-cors fills in for allowed origins, even on an unknown route, so that the browser
    goes on to the real request and shows its real 401 or 404.
    """
    if not request.path.startswith("/api/"):
        return None
    if is_cors_preflight():
        return current_app.make_default_options_response()
    if request.routing_exception is None and request.method != "OPTIONS":
        return None  # the view's @require_user does it
    segments = request.path.split("/")
    authenticate(segments[2] if len(segments) > 2 and segments[2] else None)
    return None
