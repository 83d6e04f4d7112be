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
from typing import BinaryIO, Final

from bundles import limits
from bundles.bounded import Section, read_exact
from bundles.limits import Unit

SPOOL_LIMIT: Final = 32 << 20  # members up to this size are read in one piece by ``open()``
_CHUNK: Final = 1 << 20
EXTENDED_HEADER: Final = limits.cap(
    "tar.extended_header_bytes",
    1 << 20,
    Unit.BYTES,
    "the size of the extended (PAX, GNU long-name and sparse) headers of one tar member",
)


class TarError(Exception):
    """A tar stream is malformed (bad checksum, truncated, bad number, a size out of range).
    ``cap`` is set when a header passed a cap (the caller names it in its refusal)."""

    def __init__(
        self, message: str, *, cap: limits.Cap | None = None, found: int | None = None
    ) -> None:
        super().__init__(message)
        self.cap = cap
        self.found = found


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


def _truncated(got: int, size: int) -> TarError:
    return TarError(f"unexpected end of data inside a file ({got} of {size} bytes)")


def _opener(section: Section, spool_limit: int) -> Callable[[], BinaryIO]:
    def open_member() -> BinaryIO:
        if section.read_so_far:
            raise TarError("a tar member's content was read twice")
        if section.size <= spool_limit:  # small: one read, one copy
            return io.BytesIO(read_exact(section, section.size, _truncated))
        return section.buffered(_CHUNK)

    return open_member


def _number(field: bytes) -> int:
    """A numeric header field: octal text, or GNU base-256 when the high bit is set (the
    second-highest bit makes it negative, in two's complement)."""
    if field and field[0] & 0x80:
        value = int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
        if field[0] & 0x40:
            value -= 1 << (8 * len(field) - 1)
        return value
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
        digits = data[at:space]
        if not digits.isdigit() or len(digits) > 20:
            raise TarError("bad PAX record length")
        length = int(digits)
        if length <= space - at or at + length > len(data):
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
    pending_bytes = 0
    zero_blocks = 0
    bound = EXTENDED_HEADER.value()
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
        if size < 0:
            raise TarError(f"a tar header declares a negative size ({size})")
        if typeflag in (ord("x"), ord("g"), ord("L"), ord("K")):
            # Checked before a byte of it is read: an extended header is held whole.
            pending_bytes += size
            if pending_bytes > bound:
                raise TarError(
                    f"an extended tar header of {size:,} bytes is over the "
                    f"{EXTENDED_HEADER.name} cap of {EXTENDED_HEADER.describe(bound)}",
                    cap=EXTENDED_HEADER,
                    found=pending_bytes,
                )
            padded = (size + _BLOCK - 1) // _BLOCK * _BLOCK
            data = read_exact(stream, padded, _header_truncated)[:size]
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
                text = pending["size"]
                if not text.isascii() or not text.isdigit() or len(text) > 20:
                    raise TarError(f"bad PAX size {text[:24]!r}")
                size = int(text)
            pending = {}
        pending_bytes = 0
        if typeflag == ord("S") and header[482]:  # old GNU sparse: more headers follow
            sparse = 0
            while True:
                extra = read(_BLOCK)
                if len(extra) < _BLOCK:
                    raise TarError("unexpected end of data inside a sparse header")
                sparse += _BLOCK  # extension headers count as extended headers do
                if sparse > bound:
                    raise TarError(
                        f"the sparse headers of {name!r} are over the {EXTENDED_HEADER.name} "
                        f"cap of {EXTENDED_HEADER.describe(bound)}",
                        cap=EXTENDED_HEADER,
                        found=sparse,
                    )
                if not extra[504]:
                    break
        if typeflag == ord("5"):
            name = name.rstrip("/")
        if typeflag in _NO_DATA:
            size = 0  # as tar itself: links, devices and directories carry no data
        padded = (size + _BLOCK - 1) // _BLOCK * _BLOCK
        member = TarMember(name, typeflag, _number(header[100:108]), size, linkname)
        section = Section(stream, size, short=_truncated)
        yield member, _opener(section, spool_limit)
        skip = padded - section.read_so_far
        while skip > 0:
            chunk = read(min(skip, _CHUNK))
            if not chunk:
                raise TarError("unexpected end of data inside a file")
            skip -= len(chunk)


def _header_truncated(got: int, size: int) -> TarError:
    return TarError("unexpected end of data inside an extended header")
