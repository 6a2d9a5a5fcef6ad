"""Where a chunked request body ends (RFC 9112 §7.1), followed through its bytes as they arrive.

The gunicorn worker (workers.py) gives a request to a thread only once the thread can read it without
waiting on the client. For a chunked body that is when its framing is complete (the last chunk, the
trailer section and its final CRLF), or as soon as gunicorn's own reader (gunicorn.http.body.ChunkedReader)
would refuse what has come, so that the thread answers the refusal at once. This parser accepts and
refuses what that reader does, at the same byte and within the same limits (tests/test_chunked.py
holds the two together), and looks at each byte about once however the body is split across reads.
"""

from __future__ import annotations

import re

from gunicorn.http.body import CHUNK_EXT_RE  # the reader's own rule for extensions, so both agree

_HEX = re.compile(rb"[0-9A-Fa-f]+")

# What comes next (plain names, not an Enum: its member lookups cost more, docs/performance.md).
SIZE_LINE = "size line"  # a chunk's size, its extensions and CRLF
DATA = "data"
DATA_END = "data end"  # the CRLF after a chunk's data
TRAILERS = "trailers"  # after the last chunk: trailer fields, then an empty line


def chunk_size(line: bytes) -> int | None:
    """The size a chunk-size line (without its CRLF) announces, or None if gunicorn refuses the line."""
    size, semicolon, extensions = line.partition(b";")
    if semicolon:
        size = size.rstrip(b" \t")  # whitespace is allowed before the first ";" only
    if not _HEX.fullmatch(size) or (semicolon and not CHUNK_EXT_RE.fullmatch(b";" + extensions)):
        return None  # the rule for extensions refuses a CR in them too
    return int(size, 16)


class ChunkedBody:
    """The framing of one chunked body that starts at `start` in a buffer that only grows.

    `max_size_line` and `max_trailer_bytes` are gunicorn's limits: a size line, or a trailer section,
    that has not ended by then is refused.
    """

    def __init__(self, start: int, max_size_line: int, max_trailer_bytes: int) -> None:
        self.max_size_line = max_size_line
        self.max_trailer_bytes = max_trailer_bytes
        self.step = SIZE_LINE
        self.at = start  # where the current size line, data, CRLF or trailer section starts (or goes on)
        self.searched = start  # where the search for the current line's end goes on
        self.data_left = 0  # of the current chunk
        self.data_bytes = 0  # the body's content so far
        self.framing_bytes = 0  # size lines, extensions and CRLFs so far (not the trailer section)

    def ended(self, received: bytearray) -> bool:
        """Follow the framing through what has been received. True once it is complete, or refused as
        gunicorn's reader refuses it; False while that reader would wait for more."""
        while True:
            if self.step is SIZE_LINE:
                end = received.find(b"\r\n", self.searched)
                if end < 0:
                    self.searched = max(self.at, len(received) - 1)
                    return len(received) - self.at > self.max_size_line
                size = chunk_size(bytes(received[self.at : end]))
                if size is None:
                    return True
                self.framing_bytes += end + 2 - self.at
                self.at = self.searched = end + 2
                self.step, self.data_left = (DATA, size) if size else (TRAILERS, 0)
            elif self.step is DATA:
                taken = min(self.data_left, len(received) - self.at)
                self.at += taken
                self.data_left -= taken
                self.data_bytes += taken
                if self.data_left:
                    return False
                self.step = DATA_END
            elif self.step is DATA_END:
                if len(received) - self.at < 2:
                    return False
                if received[self.at : self.at + 2] != b"\r\n":
                    return True
                self.framing_bytes += 2
                self.at = self.searched = self.at + 2
                self.step = SIZE_LINE
            else:
                return self.trailers_ended(received)

    def trailers_ended(self, received: bytearray) -> bool:
        if received.startswith(b"\r\n", self.at) or received.find(b"\r\n\r\n", self.searched) >= 0:
            return True
        if len(received) - self.at > self.max_trailer_bytes or self.bare_line_feed(received):
            return True
        self.searched = max(self.at, len(received) - 3)
        return False

    def bare_line_feed(self, received: bytearray) -> bool:
        """Whether a trailer line ends in LF alone (gunicorn refuses it), in what came since the last look."""
        at = received.find(b"\n", self.searched)
        while at >= 0:
            if received[at - 1] != ord("\r"):  # the byte before the section is the last chunk's LF
                return True
            at = received.find(b"\n", at + 1)
        return False
