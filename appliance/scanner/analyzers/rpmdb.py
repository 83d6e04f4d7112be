"""The containers rpm keeps its header blobs in. Each reader turns database bytes into the
header blobs in package-number order plus the reasons any single entry was skipped; a file
that cannot be read at all raises :class:`ParseError`."""

from __future__ import annotations

import sqlite3
import struct
import zlib
from typing import Final

from appliance.scanner.analyzers.interface import ParseError

_SQLITE_MAGIC: Final = b"SQLite format 3\0"


def sqlite_blobs(data: bytes) -> tuple[list[bytes], list[str]]:
    """Header blobs of an ``rpmdb.sqlite``, read from bytes without touching the disk.

    rpm leaves its database in WAL mode, which an in-memory copy cannot open; the two
    file-format bytes that announce WAL are set back to the rollback-journal value in the
    copy (the WAL file itself is not part of an image once rpm has checkpointed).
    """
    if not data.startswith(_SQLITE_MAGIC) or len(data) < 100:
        raise ParseError("rpmdb.sqlite does not start with the SQLite header")
    image = bytearray(data)
    image[18:20] = b"\x01\x01"
    connection = sqlite3.connect(":memory:")
    try:
        connection.deserialize(bytes(image))
        rows = connection.execute("SELECT hnum, blob FROM Packages ORDER BY hnum").fetchall()
    except sqlite3.Error as e:
        raise ParseError(f"rpmdb.sqlite cannot be read as the rpm database: {e}") from e
    finally:
        connection.close()
    blobs, problems = [], []
    for hnum, blob in rows:
        if isinstance(blob, bytes):
            blobs.append(blob)
        else:
            problems.append(f"rpmdb.sqlite row hnum={hnum} holds no blob")
    return blobs, problems


_HASH_MAGIC: Final = 0x061561
_P_HASH_UNSORTED, _P_OVERFLOW, _P_HASHMETA, _P_HASH = 2, 7, 8, 13
_H_KEYDATA, _H_OFFPAGE = 1, 3
_PAGE_HEADER: Final = 26
_JOIN_KEY: Final = b"\0\0\0\0"  # rpm's record 0 holds a counter, not a header


def bdb_blobs(data: bytes) -> tuple[list[bytes], list[str]]:
    """Header blobs of a Berkeley DB hash ``Packages`` file.

    Read from the on-disk page format (Berkeley DB's ``db_page.h``): a hash metadata page, then
    hash pages whose index alternates key and data items; a header larger than fits on a page
    is an off-page item pointing at a chain of overflow pages. Either byte order is accepted,
    as the file is written in the byte order of the machine that wrote it.
    """
    if len(data) < 512:
        raise ParseError(f"Berkeley DB file is {len(data)} bytes, too short for a metadata page")
    if struct.unpack_from("<I", data, 12)[0] == _HASH_MAGIC:
        order = "<"
    elif struct.unpack_from(">I", data, 12)[0] == _HASH_MAGIC:
        order = ">"
    else:
        raise ParseError("not a Berkeley DB hash database (magic number missing)")
    (page_size,) = struct.unpack_from(order + "I", data, 20)
    (last_page,) = struct.unpack_from(order + "I", data, 32)
    if data[25] != _P_HASHMETA or data[24] != 0:
        raise ParseError("Berkeley DB hash metadata page is of the wrong type or encrypted")
    if (
        not 512 <= page_size <= 65536
        or page_size & (page_size - 1)
        or (last_page + 1) * page_size > len(data)
    ):
        raise ParseError(
            f"Berkeley DB page size {page_size} / last page {last_page} do not fit "
            f"a {len(data)}-byte file"
        )
    blobs: list[tuple[bytes, bytes]] = []
    problems: list[str] = []
    for number in range(1, last_page + 1):
        page = data[number * page_size : (number + 1) * page_size]
        if page[25] not in (_P_HASH, _P_HASH_UNSORTED):
            continue
        (entries,) = struct.unpack_from(order + "H", page, 20)
        if entries % 2 or _PAGE_HEADER + 2 * entries > page_size:
            problems.append(f"Berkeley DB page {number} has a malformed index ({entries} items)")
            continue
        offsets = struct.unpack_from(f"{order}{entries}H", page, _PAGE_HEADER)
        for pair in range(0, entries, 2):
            try:
                item = _bdb_pair(data, order, page_size, page, offsets, pair, number)
            except ParseError as e:
                problems.append(e.message)
                continue
            if item is not None:
                blobs.append(item)
    # hash order is arbitrary; the package number (the key) gives rpm's own order
    blobs.sort(key=lambda item: int.from_bytes(item[0], "little" if order == "<" else "big"))
    return [blob for _, blob in blobs], problems


def _bdb_pair(
    data: bytes,
    order: str,
    page_size: int,
    page: bytes,
    offsets: tuple[int, ...],
    pair: int,
    number: int,
) -> tuple[bytes, bytes] | None:
    """(key, header blob) of one index pair; None for rpm's counter record."""
    key = _inline_item(page, offsets, pair, number)
    if key == _JOIN_KEY:
        return None
    at = offsets[pair + 1]
    kind = page[at] if at < page_size else -1
    if kind == _H_KEYDATA:
        return key, _inline_item(page, offsets, pair + 1, number)
    if kind != _H_OFFPAGE or at + 12 > page_size:
        raise ParseError(f"Berkeley DB page {number}: unsupported item type {kind} at {at}")
    first, length = struct.unpack_from(order + "II", page, at + 4)
    return key, _overflow(data, order, page_size, first, length)


def _inline_item(page: bytes, offsets: tuple[int, ...], index: int, number: int) -> bytes:
    """An on-page item's bytes: from after its type byte to where the next item above it starts."""
    start = offsets[index]
    above = [o for o in offsets if o > start]
    end = min(above) if above else len(page)
    if start >= len(page) or page[start] != _H_KEYDATA:
        raise ParseError(f"Berkeley DB page {number}: item {index} is not stored on the page")
    return page[start + 1 : end]


def _overflow(data: bytes, order: str, page_size: int, first: int, length: int) -> bytes:
    """Concatenate an overflow chain; each page says how many of its bytes are used."""
    chunks: list[bytes] = []
    seen: set[int] = set()
    number = first
    while number:
        if number in seen or (number + 1) * page_size > len(data):
            raise ParseError(f"Berkeley DB overflow chain from page {first} is broken at {number}")
        seen.add(number)
        page = data[number * page_size : (number + 1) * page_size]
        if page[25] != _P_OVERFLOW:
            raise ParseError(f"Berkeley DB page {number} should be an overflow page")
        (following,) = struct.unpack_from(order + "I", page, 16)
        (used,) = struct.unpack_from(order + "H", page, 22)
        chunks.append(page[_PAGE_HEADER : _PAGE_HEADER + used])
        number = following
    value = b"".join(chunks)
    if len(value) != length:
        raise ParseError(
            f"Berkeley DB overflow item from page {first} has {len(value)} bytes, expected {length}"
        )
    return value


_NDB_MAGIC: Final = int.from_bytes(b"RpmP", "little")
_NDB_SLOT_MAGIC: Final = int.from_bytes(b"Slot", "little")
_NDB_BLOB_HEAD: Final = int.from_bytes(b"BlbS", "little")
_NDB_BLOB_TAIL: Final = int.from_bytes(b"BlbE", "little")
_NDB_PAGE, _NDB_BLOCK, _NDB_SLOT = 4096, 16, 16
_NDB_HEADER, _NDB_BLOB_HEAD_SIZE, _NDB_BLOB_TAIL_SIZE = 32, 16, 12
_NDB_MAX_SLOT_PAGES: Final = 2048  # 500k packages; more is a corrupt file, not a system


def ndb_blobs(data: bytes) -> tuple[list[bytes], list[str]]:
    """Header blobs of rpm's own "ndb" ``Packages.db`` (rpm's ``lib/backend/ndb/rpmpkg.c``).

    All integers are little-endian. A 32-byte header (``RpmP``, version 0, generation, slot
    page count) is followed by 4 KiB slot pages of 16-byte slots (``Slot``, package index,
    block offset, block count; 16-byte blocks). Each used slot points at a blob: a 16-byte
    head (``BlbS``, package index, generation, length), the header bytes, zero padding and a
    12-byte tail (Adler-32 of everything before it, length, ``BlbE``). Every blob is checked
    against its slot and its checksum before it is believed.
    """
    if len(data) < _NDB_HEADER or len(data) % _NDB_BLOCK:
        raise ParseError(f"ndb file is {len(data)} bytes, not a whole number of 16-byte blocks")
    magic, version, _generation, slot_pages = struct.unpack_from("<4I", data, 0)
    if magic != _NDB_MAGIC or version != 0:
        raise ParseError(f"not an rpm ndb database (magic {magic:#x}, version {version})")
    if not 0 < slot_pages <= _NDB_MAX_SLOT_PAGES or slot_pages * _NDB_PAGE > len(data):
        raise ParseError(f"ndb header claims {slot_pages} slot pages in a {len(data)}-byte file")
    file_blocks = len(data) // _NDB_BLOCK
    first_blob_block = slot_pages * _NDB_PAGE // _NDB_BLOCK
    found: list[tuple[int, bytes]] = []
    problems: list[str] = []
    for at in range(_NDB_HEADER, slot_pages * _NDB_PAGE, _NDB_SLOT):
        slot_magic, index, block, count = struct.unpack_from("<4I", data, at)
        if slot_magic != _NDB_SLOT_MAGIC:
            raise ParseError(f"ndb slot at byte {at} has a bad magic number {slot_magic:#x}")
        if not block:
            continue  # a free slot
        if not index or not count or block < first_blob_block or block + count > file_blocks:
            problems.append(f"ndb slot at byte {at} (package {index}) points outside the blobs")
            continue
        try:
            found.append((index, _ndb_blob(data, index, block, count)))
        except ParseError as e:
            problems.append(e.message)
    found.sort()
    return [blob for _, blob in found], problems


def _ndb_blob(data: bytes, index: int, block: int, count: int) -> bytes:
    start = block * _NDB_BLOCK
    magic, blob_index, _generation, length = struct.unpack_from("<4I", data, start)
    where = f"ndb blob of package {index} at block {block}"
    if magic != _NDB_BLOB_HEAD or blob_index != index:
        raise ParseError(f"{where}: head magic {magic:#x} / package {blob_index} do not match")
    needed = -(-(_NDB_BLOB_HEAD_SIZE + length + _NDB_BLOB_TAIL_SIZE) // _NDB_BLOCK)
    if needed != count:
        raise ParseError(f"{where}: {length} bytes do not fill the slot's {count} blocks")
    end = start + count * _NDB_BLOCK
    checksum, tail_length, tail_magic = struct.unpack_from("<3I", data, end - _NDB_BLOB_TAIL_SIZE)
    if tail_magic != _NDB_BLOB_TAIL or tail_length != length:
        raise ParseError(f"{where}: the tail does not match the head")
    if zlib.adler32(data[start : end - _NDB_BLOB_TAIL_SIZE]) != checksum:
        raise ParseError(f"{where}: Adler-32 checksum mismatch (the blob is damaged)")
    body = start + _NDB_BLOB_HEAD_SIZE
    return data[body : body + length]
