"""The worker's chunked framing (todo_api/chunked.py) agrees with gunicorn's own chunked reader.

The worker gives a request to a thread once ChunkedBody says the body has ended; the thread then reads
it with gunicorn's ChunkedReader. They must agree on every prefix of every body: where gunicorn's reader
would wait for more, a thread would wait on the client (issue 22); where it completes or refuses, the
main loop must not keep waiting. Each case is fed in pieces, byte by byte included, and at each piece
both are asked about the bytes received so far.
"""

from __future__ import annotations

from itertools import pairwise
from types import SimpleNamespace

from gunicorn.http.body import ChunkedReader
from gunicorn.http.errors import ParseException
from gunicorn.http.unreader import Unreader
from hypothesis import given
from hypothesis import strategies as st

from todo_api.platform.chunked import ChunkedBody

MAX_SIZE_LINE, MAX_TRAILER_BYTES = 24, 40  # small, so that cases over gunicorn's limits stay short
HEAD = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"  # the body starts after it, as in the worker


class NeedsMore(Exception):
    pass


class Received(Unreader):
    """The bytes received so far; a read past them is where a thread would wait on the client."""

    def __init__(self, data: bytes) -> None:
        super().__init__()
        self.buf.write(data)

    def chunk(self, size_hint=None) -> bytes:
        raise NeedsMore


def gunicorn_reads(body: bytes) -> tuple[bool, int]:
    """Whether gunicorn's reader ends (complete or refused) on these bytes alone, and the content it read."""
    request = SimpleNamespace(
        limit_request_field_size=MAX_SIZE_LINE,
        max_buffer_headers=MAX_TRAILER_BYTES,
        parse_headers=lambda data, from_trailer: [],  # the trailer fields are the thread's to judge
    )
    content = 0
    try:
        for piece in ChunkedReader(request, Received(body)).parser:
            content += len(piece)
    except NeedsMore:
        return False, content
    except ParseException:
        return True, content
    return True, content


def assert_agree(pieces: list[bytes]) -> None:
    framing = ChunkedBody(len(HEAD), MAX_SIZE_LINE, MAX_TRAILER_BYTES)
    received = bytearray(HEAD)
    for piece in pieces:
        received += piece
        ended = framing.ended(received)
        expected, content = gunicorn_reads(bytes(received[len(HEAD) :]))
        assert ended == expected, bytes(received[len(HEAD) :])
        if ended:
            return
        assert framing.data_bytes == content


def splits(body: bytes) -> list[list[bytes]]:
    """All at once, byte by byte, and in two pieces at every point."""
    return [[body], [body[at : at + 1] for at in range(len(body))]] + [
        [body[:at], body[at:]] for at in range(len(body))
    ]


BODIES = {
    "one chunk": b"5\r\nhello\r\n0\r\n\r\n",
    "chunk data that looks like the end": b"7\r\n\r\n0\r\n\r\n\r\n0\r\n\r\n",
    "extension on the last chunk": b"5\r\nhello\r\n0;note=x\r\n\r\n",
    "quoted extensions and whitespace": b'5 ; a="b;\\"c" ;flag\r\nhello\r\n0 ;n = v\r\n\r\n',
    "trailers": b"5\r\nhello\r\n0\r\nX-A: 1\r\nX-B: 2\r\n\r\n",
    "upper-case size, leading zeros": b"000A\r\n0123456789\r\n00\r\n\r\n",
    "followed by the next request": b"1\r\nx\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    "size not hex": b"zz\r\n",
    "empty size": b"\r\nhello\r\n",
    "0x prefix": b"0x5\r\nhello\r\n0\r\n\r\n",
    "underscore in the size": b"1_0\r\n",
    "whitespace before the size": b" 5\r\nhello\r\n",
    "whitespace before the size, with an extension": b" 5;a\r\nhello\r\n",
    "whitespace after the size without an extension": b"5 \r\nhello\r\n",
    "data not followed by CRLF": b"5\r\nhelloXY",
    "data followed by a bare LF": b"5\r\nhello\n0\r\n\r\n",
    "bare LF after the size": b"5\nhello\r\n0\r\n\r\n",
    "empty extension name": b"5;=\r\nhello\r\n",
    "CR in an extension": b"5;a\rb\r\nhello\r\n",
    "unterminated quoted extension": b'5;a="b\r\nhello\r\n',
    "size line over the limit": b"1" * (MAX_SIZE_LINE + 5),
    "size line at the limit": b"0" * (MAX_SIZE_LINE - 1) + b"5\r\nhello\r\n0\r\n\r\n",
    "size line over the limit, its CRLF in the same read": b"0" * MAX_SIZE_LINE + b"5\r\nhello\r\n0\r\n\r\n",
    "bare LF in the trailers": b"0\r\nX-A: 1\nX-B: 2\r\n\r\n",
    "LF opening the trailers": b"0\r\n\nX-A: 1\r\n\r\n",
    "trailers over the limit": b"0\r\nX-Long: " + b"y" * MAX_TRAILER_BYTES + b"\r\n\r\n",
    "CR alone after the last chunk": b"0\r\n\rX: y\r\n\r\n",
}


def test_the_framing_ends_where_gunicorns_reader_does_however_the_body_is_split():
    for name, body in BODIES.items():
        for pieces in splits(body):
            try:
                assert_agree(pieces)
            except AssertionError as error:
                raise AssertionError(f"{name}, in {len(pieces)} pieces: {error}") from None


FRAGMENTS = [b"\r\n", b"\r", b"\n", b"0", b"1", b"5", b"a", b"F", b";", b"=", b" ", b"\t", b'"', b"\\", b"x", b"X: y"]


@st.composite
def chunked_bodies(draw) -> bytes:
    """A chunked body as a client might frame it, perhaps with framing characters inserted anywhere."""
    extension = st.sampled_from([b"", b";a", b";a=b", b' ;q="x;\\"y"', b"; a = b"])
    body = b""
    for data in draw(st.lists(st.binary(max_size=12), max_size=4)):
        size = draw(st.sampled_from([b"%x", b"%X", b"%03x"])) % len(data) if data else b"1"
        body += size + draw(extension) + b"\r\n" + (data or b"z") + b"\r\n"
    body += b"0" + draw(extension) + b"\r\n"
    body += b"".join(b"X-%d: v\r\n" % n for n in range(draw(st.integers(0, 3)))) + b"\r\n"
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(body)))
        body = body[:at] + draw(st.sampled_from(FRAGMENTS)) + body[at:]
    return body


@given(body=chunked_bodies(), cuts=st.lists(st.integers(0, 200), max_size=6))
def test_generated_bodies_end_where_gunicorns_reader_does(body, cuts):
    points = sorted({0, len(body), *(cut % (len(body) + 1) for cut in cuts)})
    assert_agree([body[start:end] for start, end in pairwise(points)])
    assert_agree([body[at : at + 1] for at in range(len(body))])
