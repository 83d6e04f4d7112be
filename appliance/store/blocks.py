"""Record blocks: the compact layout of ``knowledge.db`` for table datasets (EPSS).

An EPSS dataset is a third of a million one-line records, and nearly all of them change
from one daily file to the next; storing each as its own row (a body row, a membership
row) makes them 90% of the rows an import inserts while record-level deduplication saves
next to nothing. A block holds up to :data:`BLOCK_RECORDS` consecutive lines of one dataset,
zstd-compressed, with their ids beside them: an import inserts a few hundred rows instead
of seven hundred thousand, the dataset's exact bytes are still its blocks' lines in order,
and one record is found by its id with one indexed read and one small decompression.

Blocks are content-addressed (the first 64 bits of the SHA-256 of their uncompressed lines,
like records), so a block that did not change between two datasets is stored once.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

import orjson
import zstandard

from appliance.store.db import StoreError

BLOCK_RECORDS: Final = 512
LEVEL: Final = 3
_ID_SEPARATOR: Final = b"\n"  # ids never hold a newline: they come from JSON strings on one line
_MAX_BLOCK: Final = 64 << 20  # a decompressed block larger than this is damage, not data


class BlockError(StoreError):
    """A stored block does not decode to what its row says (the database is damaged)."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint or DAMAGED_HINT)


DAMAGED_HINT: Final = (
    "knowledge.db is damaged: restore the appliance home from a backup and import the bundles "
    "made since (docs/runbooks.md, backup and restore)"
)


@dataclass(frozen=True, slots=True)
class Block:
    """One block ready to store: its key, first id, ids and compressed lines."""

    key: int
    first_id: str
    ids: bytes  # the records' ids, newline-separated, in order
    body: bytes  # zstd frame of the records' lines, each ending in a newline


def _key(raw: bytes) -> int:
    return int.from_bytes(hashlib.sha256(raw).digest()[:8], "big", signed=True)


def pack(lines: Iterable[tuple[str, bytes]], *, size: int = BLOCK_RECORDS) -> Iterator[Block]:
    """Blocks of ``size`` consecutive ``(id, line)`` pairs (lines without their newline)."""

    def runs() -> Iterator[tuple[list[str], list[bytes]]]:
        ids: list[str] = []
        body: list[bytes] = []
        for rid, line in lines:
            ids.append(rid)
            body.append(line)
            if len(ids) >= size:
                yield ids, body
                ids, body = [], []
        if ids:
            yield ids, body

    return pack_runs(runs(), size=size)


def pack_runs(
    runs: Iterable[tuple[Sequence[str], Sequence[bytes]]], *, size: int = BLOCK_RECORDS
) -> Iterator[Block]:
    """The blocks :func:`pack` makes of the same lines, from runs of ``(ids, lines)`` of any
    length: a loader that parses a chunk of lines at a time builds blocks without touching
    each line again in Python."""
    compressor = zstandard.ZstdCompressor(level=LEVEL)
    ids: list[str] = []
    body: list[bytes] = []
    for run_ids, run_lines in runs:
        ids.extend(run_ids)
        body.extend(run_lines)
        start = 0
        while len(ids) - start >= size:
            yield _block(ids[start : start + size], body[start : start + size], compressor)
            start += size
        del ids[:start], body[:start]
    if ids:
        yield _block(ids, body, compressor)


def _block(ids: list[str], lines: list[bytes], compressor: zstandard.ZstdCompressor) -> Block:
    raw = b"\n".join(lines) + b"\n"
    return Block(
        key=_key(raw),
        first_id=ids[0],
        ids=_ID_SEPARATOR.decode().join(ids).encode(),
        body=compressor.compress(raw),
    )


def _decompress(body: bytes, *, where: str) -> bytes:
    try:
        raw = zstandard.ZstdDecompressor().decompress(body, max_output_size=_MAX_BLOCK)
    except zstandard.ZstdError as e:
        raise BlockError(f"{where}: block does not decompress: {e}") from e
    if not raw.endswith(b"\n"):
        raise BlockError(f"{where}: block does not end with a newline")
    return raw


def _lines(raw: bytes) -> list[bytes]:
    return raw[:-1].split(b"\n")


def unpack(body: bytes, *, where: str) -> list[bytes]:
    """A block's lines (without their newlines)."""
    return _lines(_decompress(body, where=where))


def find_many(
    ids: bytes, body: bytes, record_ids: Sequence[str], *, where: str
) -> dict[str, bytes]:
    """The lines of those of ``record_ids`` the block holds (decompressed once).

    A lookup touches a few lines of a block, so each is found by searching the text for its
    ``"id":`` member (canonical JSON escapes every quote inside a string, so the pattern can
    only be a member) instead of splitting all the lines. When the search finds nothing, or
    finds the member of a nested object, the block's ids decide, the long way. Lines are
    in id order: when ids are asked in increasing order, each search starts after the line
    found before it."""
    raw = _decompress(body, where=where)
    found: dict[str, bytes] = {}
    names: list[str] | None = None
    lines: list[bytes] | None = None
    previous = ""
    after = 0  # where the line of ``previous`` ends
    for rid in record_ids:
        pos = raw.find(b'"id":' + orjson.dumps(rid), after if rid > previous else 0)
        if pos >= 0:
            end = raw.find(b"\n", pos)
            line = raw[raw.rfind(b"\n", 0, pos) + 1 : end]
            # every stored line has a top-level "id" member: when it has only one, that is it
            if line.count(b'"id":') == 1 or _id_of(line) == rid:
                found[rid] = line
                previous, after = rid, end
                continue
        if names is None:
            names = ids.decode().split("\n")
        at = bisect.bisect_left(names, rid)
        if at == len(names) or names[at] != rid:
            continue
        if lines is None:
            lines = _lines(raw)
            if len(lines) != len(names):
                raise BlockError(f"{where}: {len(lines)} lines for {len(names)} ids")
        found[rid] = lines[at]
    return found


def _id_of(line: bytes) -> object:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    return doc.get("id") if isinstance(doc, dict) else None
