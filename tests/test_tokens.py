"""Personal access tokens (API.md §1): create, list, revoke; a token on a request (401 when unknown,
revoked or expired); only a JWT manages tokens; only the hash is stored."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import assert_error, make_token

from todo_api.auth.tokens import credentials
from todo_api.auth.tokens.operations import MAX_TOKENS

TOKEN_FORMAT = re.compile(r"^tdo_[A-Za-z0-9_-]{40,}$")


def tokens_path(api, rest: str = "") -> str:
    return f"/api/{api.user_id}/tokens{rest}"


def jwt_headers(api) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.token}"}


def create(api, **body: Any):
    payload = {"name": "cron job", "scopes": ["tasks:read"], **body}
    return api.client.post(tokens_path(api), json=payload, headers=jwt_headers(api))


def created(api, **body: Any) -> dict[str, Any]:
    response = create(api, **body)
    assert response.status_code == 201, response.json
    return response.json["data"]


def as_pat(api, token: str, method: str = "GET", path: str = "", **kwargs: Any):
    """A request to the user's tasks (path relative to them) with a personal access token."""
    return api.client.open(api.base + path, method=method, headers={"Authorization": f"Bearer {token}"}, **kwargs)


def stored(conn, user_id: str) -> list[dict[str, Any]]:
    return conn.execute("SELECT * FROM access_tokens WHERE user_id = %s ORDER BY id", [user_id]).fetchall()


# --- creating ---------------------------------------------------------------------------------


def test_create_answers_201_with_every_field_and_the_token_once(api, conn):
    before = datetime.now(UTC)
    data = created(api, name="  nightly export  ", scopes=["tasks:write", "tasks:read", "tasks:write"])
    assert set(data) == {"id", "name", "scopes", "expires_at", "token", "created_at", "last_used_at"}
    assert data["name"] == "nightly export"  # trimmed
    assert data["scopes"] == ["tasks:write", "tasks:read"]  # duplicates removed, order kept
    assert TOKEN_FORMAT.match(data["token"])
    assert data["last_used_at"] is None
    expires = datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00"))
    created_at = datetime.fromisoformat(data["created_at"].replace("Z", "+00:00"))
    assert expires - created_at == timedelta(days=90)  # the default
    assert before - timedelta(seconds=5) <= created_at <= datetime.now(UTC) + timedelta(seconds=5)
    [row] = stored(conn, api.user_id)
    assert row["id"] == data["id"]
    assert row["token_hash"] == hashlib.sha256(data["token"].encode()).digest()
    assert data["token"].encode() not in row["token_hash"]
    assert all(data["token"] not in str(value) for value in row.values())  # only the hash is kept


def test_tokens_have_256_random_bits_and_differ(api):
    first, second = created(api)["token"], created(api)["token"]
    assert first != second
    assert len(first) - len("tdo_") >= 40
    assert first[4:47] != second[4:47]


@pytest.mark.parametrize("days", [1, 365, 30.0])  # 30.0: a JSON Schema integer too
def test_expires_in_days_bounds_are_accepted(api, days):
    data = created(api, expires_in_days=days)
    expires = datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00"))
    created_at = datetime.fromisoformat(data["created_at"].replace("Z", "+00:00"))
    assert expires - created_at == timedelta(days=days)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"expires_in_days": 366}, "expires_in_days"),
        ({"expires_in_days": None}, "expires_in_days"),
        ({"expires_in_days": "30"}, "expires_in_days"),
        ({"expires_in_days": 30.5}, "expires_in_days"),
        ({"expires_in_days": 365.0001}, "expires_in_days"),
        ({"expires_in_days": 366.0}, "expires_in_days"),
        ({"expires_in_days": True}, "expires_in_days"),
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": None}, "name"),
        ({"name": "nul\x00byte"}, "name"),
        ({"name": 5}, "name"),
        ({"scopes": []}, "scopes"),
        ({"scopes": ["admin"]}, "scopes"),
        ({"scopes": "tasks:read"}, "scopes"),
        ({"scopes": None}, "scopes"),
        ({"token": "tdo_mine"}, "token"),
        ({"id": 1}, "id"),
        ({"last_used_at": None}, "last_used_at"),
        ({"user_id": "someone"}, "user_id"),
    ],
)
def test_bad_fields_are_400_naming_them_and_store_nothing(api, conn, body, field):
    error = assert_error(create(api, **body), 400, "validation_error")
    assert field in error["details"]
    assert stored(conn, api.user_id) == []


@pytest.mark.parametrize("missing", ["name", "scopes"])
def test_name_and_scopes_are_required(api, conn, missing):
    body = {"name": "x", "scopes": ["tasks:read"]}
    del body[missing]
    response = api.client.post(tokens_path(api), json=body, headers=jwt_headers(api))
    assert missing in assert_error(response, 400, "validation_error")["details"]
    assert stored(conn, api.user_id) == []


def test_idempotency_key_is_ignored_no_token_is_kept_to_replay(api, conn):
    """docs/tokens.md: replaying the first answer would mean keeping the token; a retry makes another."""
    headers = {**jwt_headers(api), "Idempotency-Key": "mint-once"}
    payload = {"name": "cron job", "scopes": ["tasks:read"]}
    first, again = (api.client.post(tokens_path(api), json=payload, headers=headers) for _ in range(2))
    assert first.status_code == again.status_code == 201
    assert first.json["data"]["token"] != again.json["data"]["token"]
    assert len(stored(conn, api.user_id)) == 2
    assert (
        conn.execute("SELECT count(*) FROM idempotency_keys WHERE user_id = %s", [api.user_id]).fetchone()["count"] == 0
    )


def test_a_100_character_name_is_accepted(api):
    assert created(api, name="n" * 100)["name"] == "n" * 100


def test_the_51st_token_is_409_limit_exceeded_expired_ones_counting(api, conn):
    for number in range(MAX_TOKENS):
        created(api, name=f"token {number}")
    conn.execute("UPDATE access_tokens SET expires_at = now() - interval '1 day' WHERE user_id = %s", [api.user_id])
    error = assert_error(create(api), 409, "limit_exceeded")
    assert error["details"] == {"limit": MAX_TOKENS}
    assert len(stored(conn, api.user_id)) == MAX_TOKENS
    listed = api.client.get(tokens_path(api), headers=jwt_headers(api)).json["data"]
    assert len(listed) == MAX_TOKENS  # expired tokens stay listed
    first = stored(conn, api.user_id)[0]["id"]
    assert api.client.delete(tokens_path(api, f"/{first}"), headers=jwt_headers(api)).status_code == 200
    assert created(api)["id"] > first  # room again


# --- listing and revoking ---------------------------------------------------------------------


def test_list_is_newest_first_without_the_secret(api, other_api):
    first, second = created(api, name="first"), created(api, name="second")
    created(other_api)
    response = api.client.get(tokens_path(api), headers=jwt_headers(api))
    assert response.status_code == 200
    data = response.json["data"]
    assert [token["id"] for token in data] == [second["id"], first["id"]]
    assert all("token" not in token and "token_hash" not in token for token in data)
    assert data[0] == {key: value for key, value in second.items() if key != "token"}
    assert response.json["meta"]["count"] == 2
    assert first["token"] not in response.get_data(as_text=True)


def test_revoke_answers_the_metadata_then_the_token_is_401_and_its_id_404(api, conn):
    token = created(api)
    assert as_pat(api, token["token"]).status_code == 200
    response = api.client.delete(tokens_path(api, f"/{token['id']}"), headers=jwt_headers(api))
    assert response.status_code == 200
    revoked = response.json["data"]
    assert revoked["id"] == token["id"] and "token" not in revoked
    assert revoked["last_used_at"] is not None
    assert stored(conn, api.user_id) == []
    refused = as_pat(api, token["token"])
    assert_error(refused, 401, "unauthorized")
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert api.client.get(tokens_path(api), headers=jwt_headers(api)).json["data"] == []
    at_mcp = api.client.post(
        "/mcp",
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={"Authorization": f"Bearer {token['token']}"},
    )
    assert_error(at_mcp, 401, "unauthorized")  # an HTTP 401, never a JSON-RPC answer
    again = api.client.delete(tokens_path(api, f"/{token['id']}"), headers=jwt_headers(api))
    assert_error(again, 404, "not_found")


def test_another_users_token_id_is_404_and_stays(api, other_api, conn):
    theirs = created(other_api)
    response = api.client.delete(tokens_path(api, f"/{theirs['id']}"), headers=jwt_headers(api))
    assert_error(response, 404, "not_found")
    assert len(stored(conn, other_api.user_id)) == 1
    assert as_pat(other_api, theirs["token"]).status_code == 200


def test_another_users_tokens_path_is_403(api, other_api):
    response = api.client.get(tokens_path(other_api), headers=jwt_headers(api))
    assert_error(response, 403, "forbidden")


# --- a token on a request ---------------------------------------------------------------------


def test_a_token_acts_for_its_user_and_notes_the_minute_of_use(api, conn):
    task = api.create(title="Read me")
    token = created(api, scopes=["tasks:write"])
    response = as_pat(api, token["token"], path=f"/{task['id']}")
    assert response.status_code == 200 and response.json["data"]["title"] == "Read me"
    [row] = stored(conn, api.user_id)
    now = datetime.now(UTC)
    assert row["last_used_at"] == row["last_used_at"].replace(second=0, microsecond=0)
    assert now - timedelta(minutes=1) <= row["last_used_at"] <= now
    listed = api.client.get(tokens_path(api), headers=jwt_headers(api)).json["data"][0]
    assert listed["last_used_at"] is not None
    written = as_pat(api, token["token"], "POST", json={"title": "By a script"})
    assert written.status_code == 201 and written.json["data"]["user_id"] == api.user_id


def test_last_used_is_written_only_when_the_stored_minute_is_older(api, conn):
    token = created(api)
    earlier = datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
    conn.execute("UPDATE access_tokens SET last_used_at = %s WHERE user_id = %s", [earlier, api.user_id])
    assert as_pat(api, token["token"]).status_code == 200
    touched = stored(conn, api.user_id)[0]["last_used_at"]
    assert touched > earlier
    # Within the same minute, nothing is written: a value set in the future stays as it is.
    future = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=5)
    conn.execute("UPDATE access_tokens SET last_used_at = %s WHERE user_id = %s", [future, api.user_id])
    assert as_pat(api, token["token"]).status_code == 200
    assert stored(conn, api.user_id)[0]["last_used_at"] == future


def test_the_path_user_must_be_the_tokens_user(api, other_api):
    token = created(api, scopes=["tasks:write"])
    response = api.client.get(other_api.base, headers={"Authorization": f"Bearer {token['token']}"})
    assert_error(response, 403, "forbidden")


def test_an_expired_token_is_401_invalid_token(api, conn):
    token = created(api)
    conn.execute("UPDATE access_tokens SET expires_at = now() - interval '1 second' WHERE user_id = %s", [api.user_id])
    response = as_pat(api, token["token"])
    assert_error(response, 401, "unauthorized")
    challenge = response.headers["WWW-Authenticate"]
    assert 'error="invalid_token"' in challenge and "expired" in challenge


def unknown_tokens(api) -> list[str]:
    real = created(api)["token"]
    return [
        credentials.mint(api.user_id),  # well formed, never issued
        real[:-1] + ("A" if real[-1] != "A" else "B"),  # the user part changed
        real[:10] + ("A" if real[10] != "A" else "B") + real[11:],  # the secret changed
        credentials.mint("somebody-else")[:47] + real[47:],  # another secret with this user
        "tdo_",
        "tdo_short",
        "tdo_" + "A" * 43 + "!!",
        "tdo_" + "A" * 43 + "_w",  # a user part that is not UTF-8 once decoded
    ]


def test_unknown_or_malformed_tokens_are_401_invalid_token(api):
    for token in unknown_tokens(api):
        response = as_pat(api, token)
        assert_error(response, 401, "unauthorized")
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"], token


def test_the_check_compares_hashes_in_constant_time(api, monkeypatch):
    token = created(api)["token"]
    compared: list[tuple[bytes, bytes]] = []
    real = credentials.hmac.compare_digest

    def spy(left: bytes, right: bytes) -> bool:
        compared.append((left, right))
        return real(left, right)

    monkeypatch.setattr(credentials.hmac, "compare_digest", spy)
    assert as_pat(api, token).status_code == 200
    digest = credentials.hash_token(token)
    assert compared == [(digest, digest)]


@pytest.mark.parametrize("user_id", ["a", "ü ser/with+odd=chars?", "x" * 255, "用户-🙂"])
def test_a_token_names_its_user_whatever_the_characters(user_id):
    token = credentials.mint(user_id)
    assert TOKEN_FORMAT.match(token)
    assert credentials.user_of(token) == user_id


def test_a_token_of_a_user_with_unusual_characters_works_at_mcp(client):
    from conftest import Api

    api = Api(client, "üser+odd=chars~")
    token = created(api, scopes=["tasks:write"])["token"]
    response = client.post(
        "/mcp",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "add_task", "arguments": {"title": "t"}},
        },
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    assert response.json["result"]["structuredContent"]["user_id"] == "üser+odd=chars~"


# --- only a JWT manages tokens ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "rest", "body"),
    [
        ("GET", "", None),
        ("POST", "", {"name": "more", "scopes": ["tasks:read"]}),
        ("DELETE", "/1", None),
        ("PUT", "", None),  # a 405 for a JWT
        ("GET", "/1/nothing", None),
    ],
)
@pytest.mark.parametrize("scopes", [["tasks:read"], ["tasks:write", "webhooks"]])
def test_a_personal_token_on_tokens_routes_is_403_insufficient_scope_without_a_scope(
    api, conn, method, rest, body, scopes
):
    token = created(api, scopes=scopes)
    response = api.client.open(
        tokens_path(api, rest), method=method, json=body, headers={"Authorization": f"Bearer {token['token']}"}
    )
    error = assert_error(response, 403, "insufficient_scope")
    assert error["details"] == {}
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="api", error="insufficient_scope"'
    assert len(stored(conn, api.user_id)) == 1


def test_a_forged_jwt_cannot_manage_tokens(api):
    forged = make_token(api.user_id, secret="another-secret-that-is-long-enough-0123")
    response = api.client.get(tokens_path(api), headers={"Authorization": f"Bearer {forged}"})
    assert_error(response, 401, "unauthorized")


def test_a_revoked_tokens_log_lines_hold_no_token_or_hash(api, caplog):
    caplog.set_level("DEBUG")
    token = created(api)
    as_pat(api, token["token"])
    api.client.delete(tokens_path(api, f"/{token['id']}"), headers=jwt_headers(api))
    as_pat(api, token["token"])
    events = [record.__dict__.get("event") for record in caplog.records]
    assert "token.created" in events and "token.revoked" in events
    digest = credentials.hash_token(token["token"])
    for record in caplog.records:
        line = str(record.__dict__) + record.getMessage()
        assert token["token"] not in line and token["token"][4:47] not in line
        assert digest.hex() not in line and str(digest) not in line
