"""Authentication and authorisation (API.md §1): 401 before 403 before 404/405, for every route."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from conftest import SECRET, assert_error, make_settings, make_token, task_row

from todo_api import create_app
from todo_api.auth.bearer import TokenVerifier, VerifiedTokens, _Verified

ROUTES = [
    ("GET", "/api/{user}/tasks"),
    ("POST", "/api/{user}/tasks"),
    ("GET", "/api/{user}/tasks/1"),
    ("PUT", "/api/{user}/tasks/1"),
    ("PATCH", "/api/{user}/tasks/1"),
    ("PATCH", "/api/{user}/tasks/1/complete"),
    ("DELETE", "/api/{user}/tasks/1"),
    # no view matches these: authentication still comes first
    ("GET", "/api/{user}/tasks/abc"),
    ("GET", "/api/{user}/nothing-here"),
    ("DELETE", "/api/{user}/tasks"),
    ("POST", "/api/{user}/tasks/1"),
    ("OPTIONS", "/api/{user}/tasks"),
]
INVALID_TOKEN = 'Bearer realm="api", error="invalid_token"'


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_missing_token_is_401_with_bare_challenge(client, method, path):
    response = client.open(path.format(user="alice"), method=method, json={"title": "x"})
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_invalid_token_is_401_with_invalid_token_challenge(client, method, path):
    headers = {"Authorization": "Bearer not.a.token"}
    response = client.open(path.format(user="alice"), method=method, json={"title": "x"}, headers=headers)
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith(INVALID_TOKEN + ', error_description="')


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_token_for_another_user_is_403(client, method, path):
    headers = {"Authorization": f"Bearer {make_token('mallory')}"}
    response = client.open(path.format(user="alice"), method=method, json={"title": "x"}, headers=headers)
    assert_error(response, 403, "forbidden")


def test_with_a_valid_token_routing_errors_follow(api):
    assert_error(api.get("/abc"), 404, "not_found")
    assert_error(api.client.get(f"/api/{api.user_id}/nothing", headers=_auth(api.user_id)), 404, "not_found")
    response = api.delete()
    assert_error(response, 405, "method_not_allowed")
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}


@pytest.mark.parametrize("header", ["Basic YWxpY2U6c2VjcmV0", "Token abc", "Bearer", "Bearer ", "bearer"])
def test_other_schemes_count_as_no_credentials(client, header):
    response = client.get("/api/alice/tasks", headers={"Authorization": header})
    assert_error(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api"'


def _auth(user_id: str, **kwargs) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(user_id, **kwargs)}"}


def _expect_invalid(client, token: str, user: str = "alice") -> str:
    response = client.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "unauthorized")
    challenge = response.headers["WWW-Authenticate"]
    assert challenge.startswith(INVALID_TOKEN)
    return challenge


def test_lowercase_bearer_scheme_is_accepted(client):
    response = client.get("/api/alice/tasks", headers={"Authorization": f"bearer {make_token('alice')}"})
    assert response.status_code == 200


def test_wrong_signature_is_401(client):
    _expect_invalid(client, make_token("alice", secret="another-secret-that-is-long-enough-xxxx"))


def test_tampered_payload_is_401(client):
    header, _, signature = make_token("alice").split(".")
    forged = jwt.encode({"sub": "alice", "exp": 9999999999}, "x" * 32).split(".")[1]
    _expect_invalid(client, f"{header}.{forged}.{signature}")


def test_expired_token_is_401_beyond_the_leeway(client):
    now = datetime.now(UTC)
    challenge = _expect_invalid(
        client, make_token("alice", exp=now - timedelta(seconds=31), iat=now - timedelta(hours=1))
    )
    assert "expired" in challenge


def test_expired_token_within_the_leeway_is_accepted(client):
    response = client.get("/api/alice/tasks", headers=_auth("alice", exp=datetime.now(UTC) - timedelta(seconds=20)))
    assert response.status_code == 200


def test_token_without_exp_is_401(client):
    token = jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256")
    assert "exp" in _expect_invalid(client, token)


def test_token_not_yet_valid_is_401(client):
    _expect_invalid(client, make_token("alice", nbf=datetime.now(UTC) + timedelta(minutes=5)))


def test_token_issued_in_the_future_is_401(client):
    _expect_invalid(client, make_token("alice", iat=datetime.now(UTC) + timedelta(minutes=5)))


@pytest.mark.parametrize("sub", ["", 42, None, ["alice"], "a" * 256, "al\x00ice"])
def test_unusable_sub_is_401(client, sub):
    now = datetime.now(UTC)
    token = jwt.encode({"sub": sub, "exp": now + timedelta(minutes=5)}, SECRET, algorithm="HS256")
    _expect_invalid(client, token)


def test_alg_none_is_401(client):
    token = jwt.encode({"sub": "alice", "exp": datetime.now(UTC) + timedelta(minutes=5)}, None, algorithm="none")
    _expect_invalid(client, token)


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_hmac_algorithms_beyond_hs256_need_jwt_algorithms(database_url, algorithm):
    secret = "s" * 64
    token = make_token("alice", secret=secret, algorithm=algorithm)
    _expect_invalid(
        create_app(make_settings(database_url, better_auth_secret=secret), configure_logs=False).test_client(), token
    )
    settings = make_settings(database_url, better_auth_secret=secret, jwt_algorithms=("HS256", algorithm))
    app = create_app(settings, configure_logs=False)
    try:
        response = app.test_client().get("/api/alice/tasks", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
    finally:
        app.extensions["todo_api.db"].close()


def test_issuer_and_audience_are_checked_when_configured(database_url):
    settings = make_settings(database_url, jwt_issuer="https://auth.example", jwt_audience="https://api.example")
    app = create_app(settings, configure_logs=False)
    client = app.test_client()
    try:
        good = make_token("alice", iss="https://auth.example", aud="https://api.example")
        assert client.get("/api/alice/tasks", headers={"Authorization": f"Bearer {good}"}).status_code == 200
        for claims in (
            {"iss": "https://evil.example", "aud": "https://api.example"},
            {"iss": "https://auth.example", "aud": "https://evil.example"},
            {"aud": "https://api.example"},
            {"iss": "https://auth.example"},
        ):
            _expect_invalid(client, make_token("alice", **claims))
    finally:
        app.extensions["todo_api.db"].close()


def test_custom_user_claim(database_url):
    app = create_app(make_settings(database_url, jwt_user_claim="uid"), configure_logs=False)
    try:
        token = make_token(None, uid="alice")
        response = app.test_client().get("/api/alice/tasks", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200
    finally:
        app.extensions["todo_api.db"].close()


def test_forbidden_request_touches_no_task(api, other_api, conn):
    task = other_api.create(title="Theirs")
    response = api.client.patch(
        f"/api/{other_api.user_id}/tasks/{task['id']}", json={"title": "Mine now"}, headers=_auth(api.user_id)
    )
    assert_error(response, 403, "forbidden")
    assert task_row(conn, task["id"])["title"] == "Theirs"


def test_health_routes_need_no_token(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200


def test_a_token_that_passed_once_is_refused_once_it_expires(database_url):
    app = create_app(make_settings(database_url, jwt_leeway_seconds=0), configure_logs=False)
    client = app.test_client()
    try:
        expires_at = int(time.time()) + 2  # JWT times are whole seconds
        token = make_token("alice", exp=expires_at)
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/alice/tasks", headers=headers).status_code == 200
        assert client.get("/api/alice/tasks", headers=headers).status_code == 200
        time.sleep(expires_at - time.time() + 0.1)
        assert "expired" in _expect_invalid(client, token)
    finally:
        app.extensions["todo_api.db"].close()


def test_a_remembered_token_still_answers_for_its_own_user_only(client):
    token = make_token("alice")
    assert client.get("/api/alice/tasks", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    response = client.get("/api/bob/tasks", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 403, "forbidden")


# --- the verified-token cache: bounded in bytes, least recently used out first, by digest ----------


def test_token_cache_keeps_a_digest_not_the_token_so_long_tokens_cost_no_more(settings):
    verifier = TokenVerifier(settings)
    long_token = make_token("alice", padding="x" * 10_000)
    short_token = make_token("carol")

    assert verifier.verify(long_token) == "alice"
    long_cost = verifier.verified.size
    assert verifier.verify(short_token) == "carol"

    assert verifier.verified.size - long_cost == long_cost  # the same for 10 KB as for 200 bytes
    assert long_cost < 1024
    assert set(verifier.verified._entries) == {VerifiedTokens.digest(long_token), VerifiedTokens.digest(short_token)}


def test_a_flood_of_large_tokens_stays_within_the_byte_budget_and_keeps_the_recent_users(settings):
    verifier = TokenVerifier(settings)
    verifier.verified = VerifiedTokens(max_bytes=64 * 1024)
    regular = make_token("regular")
    for n in range(400):
        assert verifier.verify(make_token(f"user-{n}", padding="x" * 10_000)) == f"user-{n}"
        if n % 10 == 0:
            assert verifier.verify(regular) == "regular"  # used now and then: stays in
        assert verifier.verified.size <= 64 * 1024

    assert VerifiedTokens.digest(regular) in verifier.verified._entries
    assert 100 < len(verifier.verified) < 200  # about 64 KiB / ~400 bytes: evicted one by one, never all


def test_token_cache_evicts_the_least_recently_used_first():
    cache = VerifiedTokens(max_bytes=3 * 400)
    entries = {name: _Verified(name, 0.0, "HS256", None, SECRET) for name in "abcd"}
    for name in "abc":
        cache.put(name.encode() * 32, entries[name])
    assert cache.get(b"a" * 32) is entries["a"]  # a is now the most recently used

    cache.put(b"d" * 32, entries["d"])

    assert [cache.get(name.encode() * 32) is not None for name in "abcd"] == [True, False, True, True]


def test_token_cache_holds_its_budget_and_its_books_under_concurrent_use():
    cache = VerifiedTokens(max_bytes=32 * 1024)
    entries = [_Verified(f"user-{n}", 0.0, "HS256", None, SECRET) for n in range(2000)]

    def work(offset: int) -> None:
        for n in range(2000):
            digest = str((n + offset) % 2000).encode().ljust(32, b"-")
            if cache.get(digest) is None:
                cache.put(digest, entries[(n + offset) % 2000])
            if n % 7 == 0:
                cache.discard(digest)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(work, range(0, 8 * 250, 250)))

    assert cache.size == sum(cost for _, cost in cache._entries.values()) <= 32 * 1024
