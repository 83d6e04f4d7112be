"""Request-body streams for the server: ``Content-Length`` bodies and chunked bodies.

``http.server`` hands the handler the raw socket file; it neither bounds a body by its length
nor decodes ``Transfer-Encoding: chunked`` (which Go clients such as skopeo use to stream a
layer of unknown length). Both readers here are raw streams, so blobs go to disk in chunks and
are never held whole in memory.
"""

from __future__ import annotations

import io
import re
from typing import Any, BinaryIO, Final

from bundles.bounded import Section

_LINE_LIMIT: Final = 4096
_TRAILERS: Final = 64  # trailer lines after the last chunk (each up to _LINE_LIMIT)
_CHUNK_SIZE: Final = re.compile(rb"[0-9A-Fa-f]{1,16}")
"""A chunk size as RFC 9112 writes it: hex digits only (no sign, prefix or underscore, which
``int(text, 16)`` would take: a negative size would read the rest of the connection)."""


class BodyError(Exception):
    """The request body is malformed (bad chunk framing, or shorter than declared)."""


class LengthReader(Section):
    """Exactly ``length`` bytes of ``source``."""

    def __init__(self, source: BinaryIO, length: int) -> None:
        super().__init__(source, length, short=_ended_early)


def _ended_early(got: int, size: int) -> BodyError:
    return BodyError(f"request body ended {size - got} bytes early")


class ChunkedReader(io.RawIOBase):
    """The decoded payload of a ``Transfer-Encoding: chunked`` body (RFC 9112 §7.1)."""

    def __init__(self, source: BinaryIO) -> None:
        super().__init__()
        self._source = source
        self._left = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def _line(self) -> bytes:
        line = self._source.readline(_LINE_LIMIT)
        if not line.endswith(b"\n"):
            raise BodyError("chunked body: framing line missing or too long")
        return line.rstrip(b"\r\n")

    def readinto(self, buffer: Any) -> int:
        if self._done:
            return 0
        if self._left == 0:
            size_text = self._line().split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise BodyError(f"chunked body: bad chunk size {size_text[:20]!r}")
            self._left = int(size_text, 16)
            if self._left == 0:
                for _ in range(_TRAILERS + 1):  # trailers, then the empty line
                    if not self._line():
                        break
                else:
                    raise BodyError(f"chunked body: more than {_TRAILERS} trailer lines")
                self._done = True
                return 0
        view = memoryview(buffer)[: min(len(buffer), self._left)]
        count = self._source.readinto(view)  # type: ignore[attr-defined]
        if not count:
            raise BodyError("chunked body ended inside a chunk")
        self._left -= count
        if self._left == 0 and self._source.read(2) != b"\r\n":
            raise BodyError("chunked body: chunk not followed by CRLF")
        return int(count)


def body_stream(headers: Any, source: BinaryIO) -> tuple[BinaryIO, int | None]:
    """The request body as a buffered stream and its declared length (None when chunked)."""
    if "chunked" in headers.get("Transfer-Encoding", "").lower():
        return io.BufferedReader(ChunkedReader(source), 1 << 20), None
    length_text = (headers.get("Content-Length") or "0").strip(" \t")  # a field's own OWS
    try:
        length = int(length_text)
    except ValueError as e:
        raise BodyError(f"Content-Length {length_text!r} is not a number") from e
    if length < 0:
        raise BodyError(f"Content-Length {length} is negative")
    if not (length_text.isascii() and length_text.isdigit()):  # int() also takes "+1", "1_0"
        raise BodyError(f"Content-Length {length_text!r} is not a plain decimal number")
    return io.BufferedReader(LengthReader(source, length), 1 << 20), length
