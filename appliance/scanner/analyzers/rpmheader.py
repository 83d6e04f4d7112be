"""The rpm header format, as rpm stores one per installed package in its database.

A header is ``il`` (index entry count) and ``dl`` (data length), both big-endian 32-bit, then
``il`` 16-byte entries (tag, type, offset, count) and ``dl`` bytes of data the entries point
into. In a ``.rpm`` file the same structure follows an 8-byte magic, which is skipped here.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from appliance.scanner.analyzers.interface import ParseError

HEADER_MAGIC: Final = b"\x8e\xad\xe8\x01\x00\x00\x00\x00"
_MAX_ENTRIES: Final = 0xFFFF  # rpm's own limits (lib/header.c hdrchkTags/hdrchkData)
_MAX_DATA: Final = 256 << 20


class Tag(enum.IntEnum):
    NAME = 1000
    VERSION = 1001
    RELEASE = 1002
    EPOCH = 1003
    SUMMARY = 1004
    VENDOR = 1011
    LICENSE = 1014
    ARCH = 1022
    OLDFILENAMES = 1027
    SOURCERPM = 1044
    PROVIDENAME = 1047
    REQUIRENAME = 1049
    DIRINDEXES = 1116
    BASENAMES = 1117
    DIRNAMES = 1118
    MODULARITYLABEL = 5096


class EntryType(enum.IntEnum):
    NULL = 0
    CHAR = 1
    INT8 = 2
    INT16 = 3
    INT32 = 4
    INT64 = 5
    STRING = 6
    BIN = 7
    STRING_ARRAY = 8
    I18NSTRING = 9


Value = str | tuple[str, ...] | tuple[int, ...] | bytes


@dataclass(frozen=True, slots=True)
class Header:
    """The decoded entries of one header, by tag number (first occurrence wins)."""

    entries: Mapping[int, Value]

    def string(self, tag: Tag) -> str | None:
        value = self.entries.get(tag)
        if isinstance(value, str):
            return value
        if isinstance(value, tuple) and value and isinstance(value[0], str):
            return value[0]  # I18NSTRING: first locale
        return None

    def strings(self, tag: Tag) -> tuple[str, ...]:
        value = self.entries.get(tag)
        if isinstance(value, str):
            return (value,)
        if isinstance(value, tuple) and all(isinstance(v, str) for v in value):
            return tuple(str(v) for v in value)
        return ()

    def ints(self, tag: Tag) -> tuple[int, ...]:
        value = self.entries.get(tag)
        if isinstance(value, tuple) and all(isinstance(v, int) for v in value):
            return tuple(int(v) for v in value)
        return ()

    def files(self) -> tuple[str, ...]:
        """Installed paths, root-relative: BASENAMES under DIRNAMES[DIRINDEXES], or the old
        OLDFILENAMES list."""
        basenames, dirnames = self.strings(Tag.BASENAMES), self.strings(Tag.DIRNAMES)
        indexes = self.ints(Tag.DIRINDEXES)
        if basenames:
            if len(indexes) != len(basenames) or any(i >= len(dirnames) for i in indexes):
                raise ParseError(
                    f"header file list is inconsistent: {len(basenames)} basenames, "
                    f"{len(indexes)} dir indexes, {len(dirnames)} dirnames"
                )
            pairs = zip(indexes, basenames, strict=True)
            return tuple((dirnames[i] + base).lstrip("/") for i, base in pairs)
        return tuple(p.lstrip("/") for p in self.strings(Tag.OLDFILENAMES))


def _cstring(data: bytes, start: int, what: str) -> tuple[str, int]:
    end = data.find(b"\0", start)
    if end < 0:
        raise ParseError(f"{what}: string at data offset {start} is not NUL-terminated")
    raw = data[start:end]
    try:
        return raw.decode("utf-8"), end + 1
    except UnicodeDecodeError:
        return raw.decode("latin-1"), end + 1


_INT_FORMATS: Final = {
    EntryType.CHAR: ("B", 1),
    EntryType.INT8: ("B", 1),
    EntryType.INT16: ("H", 2),
    EntryType.INT32: ("I", 4),
    EntryType.INT64: ("Q", 8),
}


def _value(store: bytes, tag: int, kind: int, offset: int, count: int) -> Value | None:
    what = f"tag {tag}"
    if kind == EntryType.STRING:
        return _cstring(store, offset, what)[0]
    if kind in (EntryType.STRING_ARRAY, EntryType.I18NSTRING):
        items = []
        position = offset
        for _ in range(count):
            item, position = _cstring(store, position, what)
            items.append(item)
        return tuple(items)
    if kind == EntryType.BIN:
        if offset + count > len(store):
            raise ParseError(f"{what}: {count} bytes at offset {offset} run past the data")
        return store[offset : offset + count]
    if kind in _INT_FORMATS:
        code, width = _INT_FORMATS[EntryType(kind)]
        if offset + width * count > len(store):
            raise ParseError(f"{what}: {count} integers at offset {offset} run past the data")
        return struct.unpack_from(f">{count}{code}", store, offset)
    if kind == EntryType.NULL:
        return None
    raise ParseError(f"{what}: unknown entry type {kind}")


def parse_header(blob: bytes) -> Header:
    """Decode a header blob; every inconsistency raises :class:`ParseError`."""
    if blob.startswith(HEADER_MAGIC):
        blob = blob[len(HEADER_MAGIC) :]
    if len(blob) < 8:
        raise ParseError(f"rpm header is {len(blob)} bytes, shorter than its 8-byte preamble")
    il, dl = struct.unpack_from(">II", blob, 0)
    if not 0 < il <= _MAX_ENTRIES or dl > _MAX_DATA:
        raise ParseError(f"rpm header claims {il} entries and {dl} data bytes; out of range")
    store_start = 8 + 16 * il
    if store_start + dl > len(blob):
        raise ParseError(
            f"rpm header needs {store_start + dl} bytes for {il} entries and {dl} data bytes "
            f"but has {len(blob)}"
        )
    store = blob[store_start : store_start + dl]
    entries: dict[int, Value] = {}
    wanted = {int(t) for t in Tag}
    for index in range(il):
        tag, kind, offset, count = struct.unpack_from(">IIII", blob, 8 + 16 * index)
        if tag not in wanted or tag in entries:
            continue
        if offset >= dl or count > dl:
            raise ParseError(f"tag {tag}: offset {offset}/count {count} outside {dl} data bytes")
        value = _value(store, tag, kind, offset, count)
        if value is not None:
            entries[tag] = value
    return Header(entries)
