"""JWKS mode (API.md §1): tokens shaped like better-auth 1.7's, signed with EdDSA, ES256, RS256 and
PS256 by keys generated here, verified against a JWK Set endpoint the tests serve on 127.0.0.1."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from conftest import SECRET, assert_error, free_port, make_token
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from flask import Flask
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from jwt.warnings import InsecureKeyLengthWarning

from todo_api import create_app
from todo_api.auth.jwks import JwksCache, JwksUnavailable
from todo_api.platform.config import load_settings

ALGORITHMS = ("EdDSA", "ES256", "RS256", "PS256")
JWKS_PATH = "/api/auth/jwks"
LONG = 60.0  # a cooldown or max age that never runs out during a test
TRICKLE_INTERVAL = 0.2  # between the bytes of a trickling JWKS response: well inside any read timeout


# --- keys, tokens and the JWKS endpoint --------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class SigningKey:
    """A key pair as Better Auth holds one: a 32-character kid, the private key, the public JWK."""

    def __init__(self, algorithm: str, private_key: Any):
        self.algorithm = algorithm
        self.kid = secrets.token_urlsafe(24)[:32]
        self.private_key = private_key

    def jwk(self) -> dict[str, Any]:
        """The public JWK as better-auth publishes it: kty, crv/x(/y) or n/e, alg, kid; no `use`."""
        public = self.private_key.public_key()
        if isinstance(public, ed25519.Ed25519PublicKey):
            fields = OKPAlgorithm.to_jwk(public, as_dict=True)
        elif isinstance(public, ec.EllipticCurvePublicKey):
            fields = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            fields = RSAAlgorithm.to_jwk(public, as_dict=True)
        fields.pop("key_ops", None)
        return {**fields, "alg": self.algorithm, "kid": self.kid}

    def public_pem(self) -> bytes:
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], *, kid: str | None = None, without_kid: bool = False) -> str:
        """A token with better-auth's header: alg and kid (this key's unless told), no typ."""
        header: dict[str, Any] = {"typ": None} if without_kid else {"typ": None, "kid": kid or self.kid}
        return jwt.encode(claims, self.private_key, algorithm=self.algorithm, headers=header)


_PRIVATE_KEYS: dict[tuple[str, int], Any] = {}


def _private_key(algorithm: str, index: int) -> Any:
    """Generated once per session (RSA generation is slow); index tells keys of one alg apart."""
    if (algorithm, index) not in _PRIVATE_KEYS:
        if algorithm == "EdDSA":
            _PRIVATE_KEYS[algorithm, index] = ed25519.Ed25519PrivateKey.generate()
        elif algorithm == "ES256":
            _PRIVATE_KEYS[algorithm, index] = ec.generate_private_key(ec.SECP256R1())
        else:
            _PRIVATE_KEYS[algorithm, index] = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return _PRIVATE_KEYS[algorithm, index]


def signing_key(algorithm: str, index: int = 0) -> SigningKey:
    return SigningKey(algorithm, _private_key(algorithm, index))


def better_auth_claims(user_id: str, issuer: str, **changes: Any) -> dict[str, Any]:
    """The claims better-auth 1.7 puts in a token (15 minutes of life); a change to None drops a claim."""
    now = int(time.time())
    claims = {
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "emailVerified": True,
        "image": None,
        "createdAt": "2026-01-05T10:00:00.000Z",
        "updatedAt": "2026-01-05T10:00:00.000Z",
        "id": user_id,
        "sub": user_id,
        "iat": now,
        "exp": now + 15 * 60,
        "iss": issuer,
        "aud": issuer,
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None or name == "image"}


def handmade_token(header: dict[str, Any], claims: dict[str, Any], hmac_key: bytes | None) -> str:
    """A token PyJWT would refuse to make: HS256 keyed with public key bytes, or alg none (hmac_key None)."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = b"" if hmac_key is None else hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


class JwksServer:
    """A JWK Set endpoint on 127.0.0.1: serves `keys` at /api/auth/jwks and counts the hits.
    `status` other than 200 plays an outage; `body` replaces the document; `stall` hangs requests;
    `trickle` ("headers" or "body") answers `HTTP/1.1 200 OK` and then sends that part a byte at a
    time, each within a socket timeout of the last, for 10 s at most."""

    def __init__(self) -> None:
        self.keys: list[SigningKey] = []
        self.status = 200
        self.body: bytes | None = None
        self.stall = False
        self.trickle: str | None = None
        self.hits = 0
        self.released = threading.Event()
        self._count_lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != JWKS_PATH:
                    self.send_error(404)
                    return
                with owner._count_lock:
                    owner.hits += 1
                if owner.trickle:
                    self._trickle(owner.trickle)
                    return
                if owner.stall:
                    owner.released.wait(10)
                body = owner.body or json.dumps({"keys": [key.jwk() for key in owner.keys]}).encode()
                try:
                    self.send_response(owner.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (the stall case): nothing to answer

            def _trickle(self, part: str) -> None:
                self.close_connection = True
                head = b"HTTP/1.1 200 OK\r\n"
                head += (
                    b"Content-Type: application/json\r\nContent-Length: 9999\r\n\r\n" if part == "body" else b"X-Slow: "
                )
                try:
                    self.wfile.write(head)
                    for _ in range(int(10 / TRICKLE_INTERVAL)):
                        if owner.released.wait(TRICKLE_INTERVAL):
                            break
                        self.wfile.write(b"a")
                except OSError:
                    pass  # the client gave up: what this plays

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    def publish(self, *keys: SigningKey) -> None:
        self.keys = list(keys)

    def stop(self) -> None:
        self.released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.stop()


@pytest.fixture
def make_app(database_url: str) -> Iterator[Callable[..., Flask]]:
    """An app configured from the environment like production (plus JWKS cache tuning); closed after."""
    apps: list[Flask] = []

    def make(env: dict[str, str], *, cooldown: float = LONG, max_age: float = LONG, timeout: float = 2.0) -> Flask:
        settings = load_settings({"DATABASE_URL": database_url, **env})
        settings = dataclasses.replace(
            settings,
            db_pool_max_size=2,
            jwks_cooldown_seconds=cooldown,
            jwks_max_age_seconds=max_age,
            jwks_timeout_seconds=timeout,
        )
        app = create_app(settings, configure_logs=False)
        app.testing = True
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["todo_api.db"].close()


def new_user() -> str:
    return f"user-{uuid.uuid4().hex[:12]}"


def list_tasks(app: Flask, user_id: str, token: str):
    return app.test_client().get(f"/api/{user_id}/tasks", headers={"Authorization": f"Bearer {token}"})


def assert_ok(response) -> None:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json["data"] == []
    assert response.json["meta"]["request_id"] == response.headers["X-Request-ID"]


def assert_invalid_token(response, description: str | None = None) -> None:
    """401 `unauthorized` with the RFC 6750 invalid_token challenge (and this description, if given)."""
    assert_error(response, 401, "unauthorized")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="api", error="invalid_token", error_description="')
    if description is not None:
        assert f'error_description="{description}"' in challenge


def assert_jwks_unavailable(response) -> None:
    """503 `service_unavailable` with a Retry-After in whole seconds, and no challenge: not the token's fault."""
    error = assert_error(response, 503, "service_unavailable")
    assert error["details"] == {"jwks": "unreachable"}
    assert int(response.headers["Retry-After"]) >= 1
    assert "WWW-Authenticate" not in response.headers


# --- each algorithm: accepted, and every fault refused ---------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_better_auth_token_is_accepted_with_only_better_auth_url_configured(algorithm, jwks_server, make_app):
    key = signing_key(algorithm)
    jwks_server.publish(key)
    app = make_app({"BETTER_AUTH_URL": jwks_server.url})
    user_id = new_user()

    assert_ok(list_tasks(app, user_id, key.sign(better_auth_claims(user_id, jwks_server.url))))
    assert jwks_server.hits == 1


def _wrong_issuer(key: SigningKey, issuer: str, user_id: str) -> tuple[str, str]:
    return key.sign(better_auth_claims(user_id, issuer, iss="https://evil.example.com")), "issuer is not accepted"


def _wrong_audience(key: SigningKey, issuer: str, user_id: str) -> tuple[str, str]:
    return key.sign(
        better_auth_claims(user_id, issuer, aud="https://other-app.example.com")
    ), "audience is not accepted"


def _expired(key: SigningKey, issuer: str, user_id: str) -> tuple[str, str]:
    past = int(time.time()) - 3600
    return key.sign(better_auth_claims(user_id, issuer, iat=past - 900, exp=past)), "has expired"


def _tampered(key: SigningKey, issuer: str, user_id: str) -> tuple[str, str]:
    header, _, signature = key.sign(better_auth_claims("someone-else", issuer)).split(".")
    payload = _b64(json.dumps(better_auth_claims(user_id, issuer)).encode())
    return f"{header}.{payload}.{signature}", "signature or claims are invalid"


def _unknown_kid(key: SigningKey, issuer: str, user_id: str) -> tuple[str, str]:
    return key.sign(better_auth_claims(user_id, issuer), kid=secrets.token_urlsafe(24)), "No published key matches"


def _no_kid(key: SigningKey, issuer: str, user_id: str) -> tuple[str, str]:
    return key.sign(better_auth_claims(user_id, issuer), without_kid=True), "has no kid header"


def _alg_none(key: SigningKey, issuer: str, user_id: str) -> tuple[str, str]:
    header = {"alg": "none", "kid": key.kid}
    return handmade_token(header, better_auth_claims(user_id, issuer), None), "algorithm is not accepted"


def _hs256_keyed_with_public_pem(key: SigningKey, issuer: str, user_id: str) -> tuple[str, str]:
    header = {"alg": "HS256", "kid": key.kid}
    return handmade_token(header, better_auth_claims(user_id, issuer), key.public_pem()), "algorithm is not accepted"


def _hs256_keyed_with_public_jwk(key: SigningKey, issuer: str, user_id: str) -> tuple[str, str]:
    header = {"alg": "HS256", "kid": key.kid}
    jwk_bytes = json.dumps(key.jwk()).encode()
    return handmade_token(header, better_auth_claims(user_id, issuer), jwk_bytes), "algorithm is not accepted"


TOKEN_FAULTS = [
    _wrong_issuer,
    _wrong_audience,
    _expired,
    _tampered,
    _unknown_kid,
    _no_kid,
    _alg_none,
    _hs256_keyed_with_public_pem,
    _hs256_keyed_with_public_jwk,
]


@pytest.mark.parametrize("fault", TOKEN_FAULTS, ids=lambda fault: fault.__name__.strip("_"))
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_token_fault_is_401_invalid_token(algorithm, fault, jwks_server, make_app):
    key = signing_key(algorithm)
    jwks_server.publish(key)
    app = make_app({"BETTER_AUTH_URL": jwks_server.url})
    user_id = new_user()
    assert_ok(list_tasks(app, user_id, key.sign(better_auth_claims(user_id, jwks_server.url))))  # warm

    token, description = fault(key, jwks_server.url, user_id)

    response = list_tasks(app, user_id, token)
    assert_invalid_token(response)
    assert description in response.headers["WWW-Authenticate"]


@pytest.mark.parametrize("secret_as", ["public_pem", "public_jwk"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_hs256_keyed_with_the_public_key_is_401_when_the_shared_secret_is_on_too(
    algorithm, secret_as, jwks_server, make_app
):
    key = signing_key(algorithm)
    jwks_server.publish(key)
    app = make_app({"BETTER_AUTH_URL": jwks_server.url, "BETTER_AUTH_SECRET": SECRET})
    user_id = new_user()
    hmac_key = key.public_pem() if secret_as == "public_pem" else json.dumps(key.jwk()).encode()

    token = handmade_token({"alg": "HS256", "kid": key.kid}, better_auth_claims(user_id, jwks_server.url), hmac_key)

    assert_invalid_token(list_tasks(app, user_id, token), "The token's signature or claims are invalid.")
    assert jwks_server.hits == 0  # an HMAC token never goes near the JWKS


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_unknown_kid_is_401_after_exactly_one_refetch(algorithm, jwks_server, make_app):
    key = signing_key(algorithm)
    jwks_server.publish(key)
    app = make_app({"BETTER_AUTH_URL": jwks_server.url}, cooldown=0.05)
    user_id = new_user()
    assert_ok(list_tasks(app, user_id, key.sign(better_auth_claims(user_id, jwks_server.url))))
    time.sleep(0.06)

    stranger = key.sign(better_auth_claims(user_id, jwks_server.url), kid="not-a-published-kid")
    assert_invalid_token(list_tasks(app, user_id, stranger), "No published key matches the token's kid and alg.")
    assert jwks_server.hits == 2


# --- the key must be of the kind the token's alg needs -------------------------------------------


@pytest.mark.parametrize(
    ("token_algorithm", "key_algorithm"),
    [("ES256", "EdDSA"), ("EdDSA", "ES256"), ("RS256", "ES256"), ("ES256", "RS256")],
)
def test_kid_of_a_key_of_another_type_is_401(token_algorithm, key_algorithm, jwks_server, make_app):
    published = signing_key(key_algorithm)
    jwks_server.publish(published)
    app = make_app({"BETTER_AUTH_URL": jwks_server.url})
    user_id = new_user()
    signer = signing_key(token_algorithm, index=1)

    token = signer.sign(better_auth_claims(user_id, jwks_server.url), kid=published.kid)

    assert_invalid_token(list_tasks(app, user_id, token), "No published key matches the token's kid and alg.")


@pytest.mark.parametrize(("token_algorithm", "key_algorithm"), [("RS256", "PS256"), ("PS256", "RS256")])
def test_rsa_key_published_for_one_rsa_algorithm_does_not_verify_the_other(
    token_algorithm, key_algorithm, jwks_server, make_app
):
    published = signing_key(key_algorithm)
    jwks_server.publish(published)
    app = make_app({"BETTER_AUTH_URL": jwks_server.url})
    user_id = new_user()
    same_key_other_alg = SigningKey(token_algorithm, published.private_key)
    same_key_other_alg.kid = published.kid

    token = same_key_other_alg.sign(better_auth_claims(user_id, jwks_server.url))

    assert_invalid_token(list_tasks(app, user_id, token), "No published key matches the token's kid and alg.")


@pytest.mark.parametrize("algorithm", ["RS256", "PS256"])
def test_rsa_key_without_alg_in_the_jwks_verifies_either_rsa_algorithm(algorithm, jwks_server, make_app):
    key = signing_key(algorithm)
    jwk = {name: value for name, value in key.jwk().items() if name != "alg"}
    jwks_server.body = json.dumps({"keys": [jwk]}).encode()
    app = make_app({"BETTER_AUTH_URL": jwks_server.url})
    user_id = new_user()

    assert_ok(list_tasks(app, user_id, key.sign(better_auth_claims(user_id, jwks_server.url))))


def test_rsa_key_shorter_than_2048_bits_is_not_used(jwks_server, make_app):
    weak = SigningKey("RS256", rsa.generate_private_key(public_exponent=65537, key_size=1024))
    jwks_server.publish(weak)
    app = make_app({"BETTER_AUTH_URL": jwks_server.url})
    user_id = new_user()

    with pytest.warns(InsecureKeyLengthWarning):
        token = weak.sign(better_auth_claims(user_id, jwks_server.url))

    assert_invalid_token(list_tasks(app, user_id, token), "No published key matches the token's kid and alg.")


def test_key_marked_for_encryption_is_not_used(jwks_server, make_app):
    key = signing_key("ES256")
    jwks_server.body = json.dumps({"keys": [{**key.jwk(), "use": "enc"}]}).encode()
    app = make_app({"BETTER_AUTH_URL": jwks_server.url})
    user_id = new_user()

    assert_invalid_token(list_tasks(app, user_id, key.sign(better_auth_claims(user_id, jwks_server.url))))


def test_algorithm_outside_jwt_algorithms_is_401_without_fetching_keys(jwks_server, make_app):
    eddsa, rs256 = signing_key("EdDSA"), signing_key("RS256")
    jwks_server.publish(eddsa, rs256)
    app = make_app({"BETTER_AUTH_URL": jwks_server.url, "JWT_ALGORITHMS": "EdDSA"})
    user_id = new_user()

    response = list_tasks(app, user_id, rs256.sign(better_auth_claims(user_id, jwks_server.url)))

    assert_invalid_token(response, "The token's algorithm is not accepted.")
    assert jwks_server.hits == 0
    assert_ok(list_tasks(app, user_id, eddsa.sign(better_auth_claims(user_id, jwks_server.url))))


# --- configuration -----------------------------------------------------------------------------


def test_trailing_slash_in_better_auth_url_is_tolerated(jwks_server, make_app):
    key = signing_key("EdDSA")
    jwks_server.publish(key)
    app = make_app({"BETTER_AUTH_URL": jwks_server.url + "/"})
    user_id = new_user()

    # better-auth's iss and aud carry no trailing slash; the JWKS is fetched from /api/auth/jwks.
    assert_ok(list_tasks(app, user_id, key.sign(better_auth_claims(user_id, jwks_server.url))))
    assert jwks_server.hits == 1


def test_jwt_jwks_url_overrides_the_jwks_location(jwks_server, make_app):
    key = signing_key("ES256")
    jwks_server.publish(key)
    issuer = "https://auth.example.com"
    app = make_app({"BETTER_AUTH_URL": issuer, "JWT_JWKS_URL": jwks_server.url + JWKS_PATH})
    user_id = new_user()

    assert_ok(list_tasks(app, user_id, key.sign(better_auth_claims(user_id, issuer))))
    assert_invalid_token(list_tasks(app, user_id, key.sign(better_auth_claims(user_id, jwks_server.url))))


def test_hs256_with_the_shared_secret_keeps_working_beside_jwks(jwks_server, make_app):
    key = signing_key("EdDSA")
    jwks_server.publish(key)
    app = make_app({"BETTER_AUTH_URL": jwks_server.url, "BETTER_AUTH_SECRET": SECRET})
    user_id = new_user()

    hs256 = make_token(user_id, iss=jwks_server.url, aud=jwks_server.url)
    assert_ok(list_tasks(app, user_id, hs256))
    assert jwks_server.hits == 0
    assert_ok(list_tasks(app, user_id, key.sign(better_auth_claims(user_id, jwks_server.url))))


def test_hs256_token_is_401_when_only_jwks_is_configured(jwks_server, make_app):
    jwks_server.publish(signing_key("EdDSA"))
    app = make_app({"BETTER_AUTH_URL": jwks_server.url})
    user_id = new_user()

    token = make_token(user_id, iss=jwks_server.url, aud=jwks_server.url)

    assert_invalid_token(list_tasks(app, user_id, token), "The token's algorithm is not accepted.")


# --- key rotation --------------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_key_published_by_rotation_is_accepted_on_its_first_token(algorithm, jwks_server, make_app):
    old, new = signing_key(algorithm, 0), signing_key(algorithm, 1)
    jwks_server.publish(old)
    app = make_app({"BETTER_AUTH_URL": jwks_server.url}, cooldown=0.05)
    user_id = new_user()
    assert_ok(list_tasks(app, user_id, old.sign(better_auth_claims(user_id, jwks_server.url))))
    time.sleep(0.06)

    jwks_server.publish(new, old)  # better-auth keeps the old key published for a grace period

    assert_ok(list_tasks(app, user_id, new.sign(better_auth_claims(user_id, jwks_server.url))))
    assert_ok(list_tasks(app, user_id, old.sign(better_auth_claims(user_id, jwks_server.url))))
    assert jwks_server.hits == 2


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_key_removed_from_the_jwks_stops_verifying_once_the_cache_refreshes(algorithm, jwks_server, make_app):
    old, new = signing_key(algorithm, 0), signing_key(algorithm, 1)
    jwks_server.publish(new, old)
    app = make_app({"BETTER_AUTH_URL": jwks_server.url}, cooldown=0.05, max_age=0.2)
    user_id = new_user()
    old_token = old.sign(better_auth_claims(user_id, jwks_server.url))
    assert_ok(list_tasks(app, user_id, old_token))

    jwks_server.publish(new)
    assert_ok(list_tasks(app, user_id, old_token))  # the cached set still has it
    time.sleep(0.21)

    assert_invalid_token(list_tasks(app, user_id, old_token), "No published key matches the token's kid and alg.")
    assert_ok(list_tasks(app, user_id, new.sign(better_auth_claims(user_id, jwks_server.url))))


# --- the JWKS endpoint failing -----------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_warm_cache_keeps_verifying_while_the_jwks_endpoint_is_down(algorithm, jwks_server, make_app):
    key = signing_key(algorithm)
    jwks_server.publish(key)
    # Windows wide enough for a listing on a loaded machine (or on Citus) to fit inside the cooldown.
    app = make_app({"BETTER_AUTH_URL": jwks_server.url}, cooldown=0.5, max_age=0.5)
    user_id = new_user()
    assert_ok(list_tasks(app, user_id, key.sign(better_auth_claims(user_id, jwks_server.url))))

    jwks_server.status = 503
    time.sleep(0.55)

    assert_ok(list_tasks(app, user_id, key.sign(better_auth_claims(user_id, jwks_server.url))))
    assert jwks_server.hits == 2  # the refresh was tried, failed, and the cached key was used
    assert_ok(list_tasks(app, user_id, key.sign(better_auth_claims(user_id, jwks_server.url))))
    time.sleep(0.55)
    assert_ok(list_tasks(app, user_id, key.sign(better_auth_claims(user_id, jwks_server.url))))
    assert jwks_server.hits == 3


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_cold_cache_with_the_jwks_endpoint_down_is_503_with_retry_after(algorithm, jwks_server, make_app):
    key = signing_key(algorithm)
    jwks_server.publish(key)
    jwks_server.status = 503
    app = make_app({"BETTER_AUTH_URL": jwks_server.url}, cooldown=5)
    user_id = new_user()
    token = key.sign(better_auth_claims(user_id, jwks_server.url))

    response = list_tasks(app, user_id, token)
    assert_jwks_unavailable(response)
    assert response.headers["Retry-After"] == "5"  # when the cooldown lets the next fetch happen

    retry = list_tasks(app, user_id, token)
    assert_jwks_unavailable(retry)
    assert 1 <= int(retry.headers["Retry-After"]) <= 5
    assert jwks_server.hits == 1  # the retry inside the cooldown did not fetch again


def test_service_recovers_once_the_jwks_endpoint_is_back(jwks_server, make_app):
    key = signing_key("EdDSA")
    jwks_server.publish(key)
    jwks_server.status = 500
    app = make_app({"BETTER_AUTH_URL": jwks_server.url}, cooldown=0.05)
    user_id = new_user()
    token = key.sign(better_auth_claims(user_id, jwks_server.url))
    assert_jwks_unavailable(list_tasks(app, user_id, token))

    jwks_server.status = 200
    time.sleep(0.06)

    assert_ok(list_tasks(app, user_id, token))


@pytest.mark.parametrize(
    "outage",
    ["connection_refused", "not_json", "not_a_jwk_set", "stalls_past_the_timeout"],
)
def test_cold_cache_and_broken_jwks_is_503(outage, jwks_server, make_app):
    key = signing_key("EdDSA")
    jwks_server.publish(key)
    url = jwks_server.url
    if outage == "connection_refused":
        url = f"http://127.0.0.1:{free_port()}"
    elif outage == "not_json":
        jwks_server.body = b"<html>Bad gateway</html>"
    elif outage == "not_a_jwk_set":
        jwks_server.body = json.dumps([key.jwk()]).encode()
    else:
        jwks_server.stall = True
    app = make_app({"BETTER_AUTH_URL": url}, timeout=0.3)
    user_id = new_user()

    started = time.monotonic()
    assert_jwks_unavailable(list_tasks(app, user_id, key.sign(better_auth_claims(user_id, url))))
    assert time.monotonic() - started < 2


# --- a JWKS endpoint that trickles ------------------------------------------------------------------


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_fetch_from_a_trickling_jwks_endpoint_gives_up_at_its_deadline(part, jwks_server, caplog):
    """Each byte comes well within the socket timeout, so only a deadline for the whole fetch stops it."""
    jwks_server.trickle = part
    cache = JwksCache(jwks_server.url + JWKS_PATH, ["RS256"], timeout=1.0)

    started = time.monotonic()
    with pytest.raises(JwksUnavailable):
        cache.key("some-kid", "RS256")

    assert time.monotonic() - started < 1.0 + 0.75
    failures = [record for record in caplog.records if getattr(record, "event", None) == "jwks.fetch_failed"]
    assert [record.error for record in failures] == ["no complete response within 1.0 s"]


def test_a_trickling_jwks_endpoint_holds_no_request_past_the_fetch_deadline(jwks_server, make_app):
    """Issue 17 §2: keys loaded, cooldown over, the endpoint now trickles. Made-up kids from many
    threads at once are each a 401 within the deadline, and valid RS256 and HS256 tokens pass."""
    key = signing_key("RS256")
    jwks_server.publish(key)
    timeout, cooldown = 1.0, 1.5
    app = make_app(
        {"BETTER_AUTH_URL": jwks_server.url, "BETTER_AUTH_SECRET": SECRET}, cooldown=cooldown, timeout=timeout
    )
    user_id = new_user()
    rs256 = key.sign(better_auth_claims(user_id, jwks_server.url))
    assert_ok(list_tasks(app, user_id, rs256))
    jwks_server.trickle = "headers"
    time.sleep(cooldown)
    made_up = [key.sign(better_auth_claims(user_id, jwks_server.url), kid=secrets.token_urlsafe(24)) for _ in range(8)]
    hs256 = make_token(user_id, iss=jwks_server.url, aud=jwks_server.url)

    def timed(token: str) -> tuple[float, Any]:
        started = time.monotonic()
        response = list_tasks(app, user_id, token)
        return time.monotonic() - started, response

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(timed, [*made_up, rs256, rs256, hs256, hs256]))

    for elapsed, response in results[: len(made_up)]:
        assert_invalid_token(response, "No published key matches the token's kid and alg.")
        assert elapsed < timeout + 0.75
    for elapsed, response in results[len(made_up) :]:
        assert_ok(response)
        assert elapsed < timeout + 0.75
    assert jwks_server.hits == 2  # the first load, then one fetch for the whole burst


# --- a flood of made-up kids ---------------------------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_burst_of_random_kids_costs_at_most_one_fetch_per_cooldown(algorithm, jwks_server, make_app):
    key = signing_key(algorithm)
    jwks_server.publish(key)
    cooldown = 0.3
    app = make_app({"BETTER_AUTH_URL": jwks_server.url}, cooldown=cooldown)
    user_id = new_user()
    assert_ok(list_tasks(app, user_id, key.sign(better_auth_claims(user_id, jwks_server.url))))
    claims = better_auth_claims(user_id, jwks_server.url)
    forged = [key.sign(claims, kid=secrets.token_urlsafe(24)) for _ in range(40)]

    for _ in range(2):
        time.sleep(cooldown)
        hits_before, started = jwks_server.hits, time.monotonic()
        with ThreadPoolExecutor(max_workers=8) as pool:
            responses = list(pool.map(lambda token: list_tasks(app, user_id, token), forged))
        cooldowns_elapsed = int((time.monotonic() - started) / cooldown)
        for response in responses:
            assert_invalid_token(response, "No published key matches the token's kid and alg.")
        assert 1 <= jwks_server.hits - hits_before <= 1 + cooldowns_elapsed


def test_concurrent_cold_lookups_share_one_fetch_even_without_a_cooldown(jwks_server):
    key = signing_key("ES256")
    jwks_server.publish(key)
    cache = JwksCache(jwks_server.url + JWKS_PATH, ["ES256"], cooldown=0)

    with ThreadPoolExecutor(max_workers=16) as pool:
        found = list(pool.map(lambda _: cache.key(key.kid, "ES256"), range(64)))

    assert all(found_key is not None and found_key.key_id == key.kid for found_key in found)
    assert jwks_server.hits == 1


# --- the cache's clock, without sleeping -------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_rules_follow_its_clock(jwks_server):
    old, new = signing_key("EdDSA", 0), signing_key("EdDSA", 1)
    jwks_server.publish(old)
    clock = FakeClock()
    cache = JwksCache(jwks_server.url + JWKS_PATH, ["EdDSA"], max_age=300, cooldown=10, clock=clock)

    assert cache.key(old.kid, "EdDSA") is not None
    jwks_server.publish(new)
    clock.now += 9
    assert cache.key(new.kid, "EdDSA") is None  # inside the cooldown: no refetch
    assert jwks_server.hits == 1
    clock.now += 1
    assert cache.key(new.kid, "EdDSA") is not None  # cooldown over: one refetch finds it
    assert jwks_server.hits == 2
    assert cache.key(old.kid, "EdDSA") is None  # removed from the set just fetched
    assert jwks_server.hits == 2  # ...and the cooldown holds that lookup to the fresh set
    clock.now += 299
    assert cache.key(new.kid, "EdDSA") is not None
    assert jwks_server.hits == 2
    clock.now += 1
    assert cache.key(new.kid, "EdDSA") is not None  # max age reached: refreshed on use
    assert jwks_server.hits == 3


def test_cold_cache_failure_says_when_to_retry(jwks_server):
    jwks_server.status = 503
    clock = FakeClock()
    cache = JwksCache(jwks_server.url + JWKS_PATH, ["EdDSA"], cooldown=10, clock=clock)

    with pytest.raises(JwksUnavailable) as first:
        cache.key("kid", "EdDSA")
    clock.now += 7.5
    with pytest.raises(JwksUnavailable) as second:
        cache.key("kid", "EdDSA")

    assert (first.value.retry_after, second.value.retry_after) == (10, 3)
    assert jwks_server.hits == 1


def test_cache_refuses_algorithms_jwks_keys_cannot_verify():
    with pytest.raises(ValueError, match="HS256"):
        JwksCache("http://127.0.0.1:9/jwks", ["EdDSA", "HS256"])


# --- /readyz ---------------------------------------------------------------------------------------


def test_readyz_reports_jwks_ok_after_fetching_the_keys(jwks_server, make_app):
    jwks_server.publish(signing_key("EdDSA"))
    app = make_app({"BETTER_AUTH_URL": jwks_server.url})

    response = app.test_client().get("/readyz")

    assert response.status_code == 200
    assert response.json["data"] == {"status": "ok", "database": "ok", "jwks": "ok"}
    assert jwks_server.hits == 1


def test_readyz_reports_stale_keys_but_stays_ready_while_the_endpoint_is_down(jwks_server, make_app):
    jwks_server.publish(signing_key("EdDSA"))
    app = make_app({"BETTER_AUTH_URL": jwks_server.url}, cooldown=0.05, max_age=0.05)
    assert app.test_client().get("/readyz").json["data"]["jwks"] == "ok"
    jwks_server.status = 502
    time.sleep(0.06)

    for _ in range(2):
        response = app.test_client().get("/readyz")
        assert response.status_code == 200
        assert response.json["data"] == {"status": "ok", "database": "ok", "jwks": "stale"}
    assert jwks_server.hits == 2


def test_readyz_is_503_when_no_key_can_be_fetched(jwks_server, make_app):
    jwks_server.status = 503
    app = make_app({"BETTER_AUTH_URL": jwks_server.url})

    response = app.test_client().get("/readyz")

    error = assert_error(response, 503, "service_unavailable")
    assert error["details"] == {"database": "ok", "jwks": "unreachable"}
    assert response.headers["Retry-After"] == "1"


def test_readyz_says_jwks_is_disabled_with_only_the_shared_secret(client):
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json["data"] == {"status": "ok", "database": "ok", "jwks": "disabled"}


# --- under gunicorn, configured like production ----------------------------------------------------


@pytest.mark.process
def test_gunicorn_with_only_better_auth_url_serves_a_browser_with_better_auth_tokens(
    jwks_server, database_url, start_gunicorn
):
    import requests

    key = signing_key("EdDSA")
    jwks_server.publish(key)
    frontend = "http://localhost:3000"
    server = start_gunicorn(
        {"DATABASE_URL": database_url, "BETTER_AUTH_URL": jwks_server.url, "CORS_ALLOWED_ORIGINS": frontend}
    )
    user_id = new_user()
    token = key.sign(better_auth_claims(user_id, jwks_server.url))

    preflight = requests.options(
        f"{server.url}/api/{user_id}/tasks",
        headers={
            "Origin": frontend,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization",
        },
        timeout=5,
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == frontend
    for _ in range(4):  # spread over both workers, each with its own cache
        response = requests.get(
            f"{server.url}/api/{user_id}/tasks",
            headers={"Authorization": f"Bearer {token}", "Origin": frontend},
            timeout=5,
        )
        assert response.status_code == 200, response.text
        assert response.headers["Access-Control-Allow-Origin"] == frontend
    assert requests.get(f"{server.url}/readyz", timeout=5).json()["data"]["jwks"] == "ok"
    assert 1 <= jwks_server.hits <= 2
