"""C2SP ``tlog-tiles`` paths and encodings.

Hash tiles hold 256 hashes of one level of tiles: tile ``L/N`` holds the hashes of the tree's
nodes at level ``8·L`` numbered ``256·N`` to ``256·N + 255`` (level 0: the leaf hashes). A
tile that is not full yet is written at ``L/N.p/W`` with its ``W`` hashes. ``N`` is written in
groups of three digits, every group but the last prefixed by ``x``: 1234067 is
``x001/x234/067``. Entry bundles ``tile/entries/N[.p/W]`` hold the entries of the leaves the
level-0 tile ``N`` hashes, each as a big-endian 16-bit length and the bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from bundles.tlog import TlogError
from bundles.tlog.merkle import HASH_SIZE

HEIGHT: Final = 8
WIDTH: Final = 1 << HEIGHT
MAX_ENTRY: Final = 0xFFFF


class TileError(TlogError):
    """A tile or an entry bundle is malformed or disagrees with the log."""


def index_path(n: int) -> str:
    if n < 0:
        raise TileError(f"tile index {n} is negative")
    digits = str(n)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    return "/".join([*(f"x{g}" for g in groups[:-1]), groups[-1]])


def _suffix(width: int) -> str:
    if not 0 < width <= WIDTH:
        raise TileError(f"tile width {width} is outside 1..{WIDTH}")
    return "" if width == WIDTH else f".p/{width}"


def tile_path(level: int, index: int, width: int = WIDTH) -> str:
    return f"tile/{level}/{index_path(index)}{_suffix(width)}"


def entries_path(index: int, width: int = WIDTH) -> str:
    return f"tile/entries/{index_path(index)}{_suffix(width)}"


def decode_tile(data: bytes, width: int, *, source: str) -> list[bytes]:
    if len(data) != width * HASH_SIZE:
        raise TileError(
            f"{source}: {len(data)} bytes, a tile of width {width} has {width * HASH_SIZE}",
            hint="the tile was truncated or altered; run 'stella log verify'",
        )
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def encode_bundle(entries: Sequence[bytes]) -> bytes:
    out = bytearray()
    for entry in entries:
        if len(entry) > MAX_ENTRY:
            raise TileError(f"a log entry of {len(entry)} bytes is over {MAX_ENTRY}")
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def decode_bundle(data: bytes, width: int, *, source: str) -> list[bytes]:
    entries: list[bytes] = []
    at = 0
    while at < len(data):
        if at + 2 > len(data):
            raise TileError(f"{source}: entry {len(entries)} is cut short")
        size = int.from_bytes(data[at : at + 2], "big")
        if at + 2 + size > len(data):
            raise TileError(f"{source}: entry {len(entries)} is cut short")
        entries.append(data[at + 2 : at + 2 + size])
        at += 2 + size
    if len(entries) != width:
        raise TileError(
            f"{source}: holds {len(entries)} entries, its name says {width}",
            hint="the entry bundle was truncated or altered; run 'stella log verify'",
        )
    return entries
