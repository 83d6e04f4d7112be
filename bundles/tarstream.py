"""A streaming tar reader: one pass, no seeking, headers checked by checksum.

Shared by the bundle reader (``bundles.archive``) and the scanner's layer walk. It stands in
for :mod:`tarfile`, whose stream mode copies its buffer on every small read and whose
per-member overhead dominated both: ustar, PAX (``path``, ``linkpath``, ``size``; global
headers ignored), GNU long names and old GNU sparse headers are understood; anything else is
returned as it is for the caller to accept or refuse.
"""

from __future__ import annotations

import io
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO, Final

SPOOL_LIMIT: Final = 32 << 20  # members up to this size are read in one piece by ``open()``
_CHUNK: Final = 1 << 20


class TarError(Exception):
    """A tar stream is malformed (bad checksum, truncated, bad number)."""


_BLOCK: Final = 512
_REGULAR: Final = frozenset(b"07\0")
_TYPE_MODES: Final = {
    ord("0"): stat.S_IFREG,
    0: stat.S_IFREG,
    ord("7"): stat.S_IFREG,
    ord("1"): stat.S_IFREG,
    ord("2"): stat.S_IFLNK,
    ord("3"): stat.S_IFCHR,
    ord("4"): stat.S_IFBLK,
    ord("5"): stat.S_IFDIR,
    ord("6"): stat.S_IFIFO,
}


@dataclass(frozen=True, slots=True)
class TarMember:
    """One entry of a tar stream, after any PAX or GNU long-name headers for it."""

    name: str
    type: int  # the typeflag byte
    mode: int  # permission bits
    size: int
    linkname: str

    def isreg(self) -> bool:
        return self.type in _REGULAR

    def isdir(self) -> bool:
        return self.type == ord("5")

    def issym(self) -> bool:
        return self.type == ord("2")

    def islnk(self) -> bool:
        return self.type == ord("1")

    @property
    def st_mode(self) -> int:
        return _TYPE_MODES.get(self.type, stat.S_IFREG) | (self.mode & 0o7777)


_NO_DATA: Final = frozenset(b"123456")


class _Section(io.RawIOBase):
    """A member's content: the next ``size`` bytes of the tar stream, read at most once."""

    def __init__(self, stream: BinaryIO, size: int, spool_limit: int = SPOOL_LIMIT) -> None:
        self._spool_limit = spool_limit
        self._stream = stream
        self.left = size
        self._size = size

    def open(self) -> BinaryIO:
        if self.left != self._size:
            raise TarError("a tar member's content was read twice")
        if self._size <= self._spool_limit:  # small: one read, one copy
            data = self._stream.read(self._size)
            if len(data) < self._size:
                raise TarError("unexpected end of data inside a file")
            self.left = 0
            return io.BytesIO(data)
        return io.BufferedReader(self, _CHUNK)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.left <= 0:
            return 0
        view = memoryview(buffer)[: min(len(buffer), self.left)]
        count = self._stream.readinto(view)  # type: ignore[attr-defined]
        if not count:
            raise TarError("unexpected end of data inside a file")
        self.left -= count
        return int(count)

    def close(self) -> None:  # the tar stream stays open for the next member
        super().close()


def _number(field: bytes) -> int:
    """A numeric header field: octal text, or GNU base-256 when the high bit is set."""
    if field and field[0] & 0x80:
        value = int.from_bytes(field[1:], "big")
        return -value if field[0] & 0x40 else value
    text = field.split(b"\0", 1)[0].strip()
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarError(f"bad number {field!r} in a tar header") from None


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax(data: bytes) -> dict[str, str]:
    """PAX extended header records: ``LEN KEY=VALUE\\n``."""
    records: dict[str, str] = {}
    at = 0
    while at < len(data):
        space = data.find(b" ", at)
        if space < 0:
            break
        try:
            length = int(data[at:space])
        except ValueError:
            raise TarError("bad PAX record length") from None
        if length <= 0:
            raise TarError("bad PAX record length")
        record = data[space + 1 : at + length - 1]
        key, eq, value = record.partition(b"=")
        if eq:
            records[key.decode("utf-8", "surrogateescape")] = value.decode(
                "utf-8", "surrogateescape"
            )
        at += length
    return records


def read_tar(
    stream: BinaryIO, *, spool_limit: int = SPOOL_LIMIT
) -> Iterator[tuple[TarMember, Callable[[], BinaryIO]]]:
    """Iterate a tar stream (ustar, PAX, GNU long names) in one pass, without seeking.

    Members up to ``spool_limit`` bytes are read in one piece when opened; larger ones
    stream (a reader bounded in memory passes 0).

    A small reader in place of :mod:`tarfile`, whose per-member overhead was most of a
    layer walk: headers are checked by checksum, PAX ``path``/``linkpath``/``size`` and GNU
    ``L``/``K`` records apply to the next member, global PAX headers are ignored.
    """
    read = stream.read
    pending: dict[str, str] = {}
    zero_blocks = 0
    while True:
        header = read(_BLOCK)
        if not header:
            return  # no end-of-archive blocks: accepted, as tar itself does
        if len(header) < _BLOCK:
            raise TarError("unexpected end of data inside a tar header")
        if header.count(0) == _BLOCK:
            zero_blocks += 1
            if zero_blocks == 2:
                return
            continue
        zero_blocks = 0
        checksum = _number(header[148:156])
        unsigned = sum(header) - sum(header[148:156]) + 256
        if checksum != unsigned:
            signed = unsigned - 2 * sum(b for b in header if b > 127)
            if checksum != signed:
                raise TarError("tar header checksum mismatch")
        typeflag = header[156]
        size = _number(header[124:136])
        padded = (size + _BLOCK - 1) // _BLOCK * _BLOCK
        if typeflag in (ord("x"), ord("g"), ord("L"), ord("K")):
            data = read(padded)
            if len(data) < padded:
                raise TarError("unexpected end of data inside an extended header")
            data = data[:size]
            if typeflag == ord("x"):
                pending.update(_pax(data))
            elif typeflag == ord("L"):
                pending["path"] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif typeflag == ord("K"):
                pending["linkpath"] = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            continue
        name = _text(header[0:100])
        if header[257:263] == b"ustar\0" and header[345] != 0:
            name = _text(header[345:500]) + "/" + name
        linkname = _text(header[157:257])
        if pending:
            name = pending.get("path", name)
            linkname = pending.get("linkpath", linkname)
            if "size" in pending:
                try:
                    size = int(pending["size"])
                except ValueError:
                    raise TarError("bad PAX size") from None
                padded = (size + _BLOCK - 1) // _BLOCK * _BLOCK
            pending = {}
        if typeflag == ord("S") and header[482]:  # old GNU sparse: more headers follow
            while True:
                extra = read(_BLOCK)
                if len(extra) < _BLOCK:
                    raise TarError("unexpected end of data inside a sparse header")
                if not extra[504]:
                    break
        if typeflag == ord("5"):
            name = name.rstrip("/")
        if typeflag in _NO_DATA:
            size = padded = 0  # as tar itself: links, devices and directories carry no data
        member = TarMember(name, typeflag, _number(header[100:108]), size, linkname)
        section = _Section(stream, size, spool_limit)
        yield member, section.open
        skip = padded - (size - section.left)
        while skip > 0:
            chunk = read(min(skip, _CHUNK))
            if not chunk:
                raise TarError("unexpected end of data inside a file")
            skip -= len(chunk)
