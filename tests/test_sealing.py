"""Sealed tokens (platform/sealing.py): a token handed out by an earlier release still opens, so a
client's saved sync token or cursor survives an upgrade; one of another purpose or user does not."""

from __future__ import annotations

import pytest

from todo_api.platform.sealing import InvalidToken, TokenCodec
from todo_api.sync.routes import TOKEN as SYNC_TOKEN
from todo_api.tasks.listing import CURSOR

SECRET = b"a secret of thirty-two bytes...."
# Sealed with this secret by the code before issue 23's restructure (integrate at 95b26b1).
EARLIER_SYNC_TOKEN = "W6n9KkFo3vf7Oz_7w5z2j247Ttr7H_lIm-vxGJ7LY04hetpB"
EARLIER_CURSOR = "MXk62VqZLqKqUxwpm_NDzkYk5kQ8y9zlCZUIGKEiiTOvbghurzkPsqBGJwvsQ5666drL1zNk6Y2soNM"
CURSOR_CONTEXT = "0123456789abcdef"


def test_tokens_sealed_by_an_earlier_release_still_open():
    codec = TokenCodec(SECRET)
    assert codec.open(SYNC_TOKEN, EARLIER_SYNC_TOKEN, user_id="alice") == (42).to_bytes(8, "big")
    cursor = codec.open(CURSOR, EARLIER_CURSOR, user_id="alice", context=CURSOR_CONTEXT)
    assert cursor == b'["2026-01-01T00:00:00+00:00",7]'


@pytest.mark.parametrize(
    ("purpose", "token", "user_id", "context"),
    [
        (CURSOR, EARLIER_SYNC_TOKEN, "alice", ""),  # a sync token is no cursor
        (SYNC_TOKEN, EARLIER_CURSOR, "alice", CURSOR_CONTEXT),  # nor a cursor a sync token
        (SYNC_TOKEN, EARLIER_SYNC_TOKEN, "bob", ""),  # another user's
        (CURSOR, EARLIER_CURSOR, "alice", "another listing"),
    ],
)
def test_a_token_of_another_purpose_user_or_listing_does_not_open(purpose, token, user_id, context):
    with pytest.raises(InvalidToken):
        TokenCodec(SECRET).open(purpose, token, user_id=user_id, context=context)
