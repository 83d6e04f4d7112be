"""A tile-backed, append-only log on disk (C2SP ``tlog-tiles`` layout under one directory).

::

    DIR/checkpoint                 the latest signed checkpoint (a C2SP signed note)
    DIR/tile/L/N[.p/W]             hash tiles
    DIR/tile/entries/N[.p/W]       entry bundles
    DIR/.lock                      serializes appends between processes

Crash safety: an append writes the entry bundles, then the hash tiles, each to a temporary
file that is flushed and renamed into place, syncs their directories, and only then writes
the new checkpoint the same way. The checkpoint is the commit: an append is acknowledged
once it is durable. A crash before it leaves tiles past the checkpoint; the next append (or
:meth:`TileLog.repair`) reads the entries that are durable past the checkpoint, recomputes
their hashes and signs a checkpoint that includes them. Nothing past the checkpoint is ever
dropped silently: a read-only open reports it as ``pending``.

Every open recomputes the root from the right-edge tiles and refuses a log whose tiles do not
match its checkpoint; :meth:`TileLog.verify` recomputes the whole tree from the entries.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from bundles.tlog import TlogError
from bundles.tlog.merkle import (
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    perfect_root,
    tree_root,
)
from bundles.tlog.note import Checkpoint, NoteError, NoteSigner, SignedCheckpoint, Verifier
from bundles.tlog.tiles import (
    HEIGHT,
    WIDTH,
    TileError,
    decode_bundle,
    decode_tile,
    encode_bundle,
    entries_path,
    tile_path,
)

CHECKPOINT: Final = "checkpoint"
TILE_BYTES: Final = WIDTH * 32
BUNDLE_LIMIT: Final = WIDTH * (2 + 0xFFFF)
CACHE_TILES: Final = 256


class LogStateError(TlogError):
    """The log on disk does not agree with its checkpoint."""


@dataclass(frozen=True, slots=True)
class Repair:
    """What opening found past the checkpoint: entries re-integrated (or pending)."""

    entries: int


def _read(path: Path, limit: int) -> bytes:
    with open(path, "rb") as fh:
        data = fh.read(limit + 1)
    if len(data) > limit:
        raise TileError(f"{path}: larger than {limit} bytes")
    return data


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: Path, data: bytes, *, sync_dir: bool = True) -> None:
    """Write ``data`` to a temporary file beside ``path``, flush it, rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_dir:
        _fsync_dir(path.parent)


def _sweep(directory: Path) -> None:
    """Remove the temporary files a writer killed mid-write left in ``directory`` (called
    under the append lock, so no live writer owns one)."""
    if not directory.is_dir():
        return
    for entry in os.scandir(directory):
        if entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file():
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


class TileLog:
    """One log directory. ``signer`` is needed to append; reading needs the log's verifier
    key only."""

    def __init__(self, root: Path, verifier: Verifier, signer: NoteSigner | None = None) -> None:
        if signer is not None and signer.verifier != verifier:
            raise TlogError(f"{root}: the signing key is not the log key {verifier.vkey()}")
        self.root = root
        self.verifier = verifier
        self.signer = signer
        self.size = 0
        self.head: SignedCheckpoint | None = None
        self.pending = 0  # durable entries past the checkpoint, not re-integrated
        self._edge: list[list[bytes]] = []  # per tile level: the hashes of its last tile
        self._entry_edge: list[bytes] = []
        self._cache: OrderedDict[tuple[int, int], list[bytes]] = OrderedDict()
        self._load()

    # ------------------------------------------------------------ state

    @property
    def origin(self) -> str:
        return self.verifier.name

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def checkpoint_text(self) -> str:
        if self.head is None:
            raise TlogError(f"{self.root}: the log has no checkpoint yet")
        return self.head.to_text()

    def _load(self) -> None:
        """Read the checkpoint and the right-edge tiles; check they agree."""
        path = self.root / CHECKPOINT
        self._cache.clear()
        if path.is_file():
            signed = SignedCheckpoint.parse(_read(path, 1 << 16), source=str(path))
            self.head = signed
            self.size = signed.verify(self.verifier, source=str(path)).size
        else:
            self.head, self.size = None, 0
        self._edge = []
        level = 0
        while self.size >> (HEIGHT * level):
            count = self.size >> (HEIGHT * level)
            width = count % WIDTH
            self._edge.append(self._read_tile(level, count // WIDTH, width) if width else [])
            level += 1
        width = self.size % WIDTH
        self._entry_edge = self._read_bundle(self.size // WIDTH, width) if width else []
        if self.head is not None and self._edge_root() != self.head.checkpoint.root:
            raise LogStateError(
                f"{self.root}: the right-edge tiles do not hash to the root of the checkpoint "
                f"of size {self.size}",
                hint="a tile was altered or lost; run 'stella log verify' to find it",
            )
        self.pending = len(self._entries_past_checkpoint())

    def _edge_root(self) -> bytes:
        return tree_root(self.size, self._node)

    def _read_tile(self, level: int, index: int, width: int) -> list[bytes]:
        key = (level, index)
        if width == WIDTH and key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        path = self.root / tile_path(level, index, width)
        full = self.root / tile_path(level, index)
        try:
            hashes = decode_tile(_read(path, TILE_BYTES), width, source=str(path))
        except FileNotFoundError as e:
            if width == WIDTH or not full.is_file():  # a partial tile may be read from the full
                raise LogStateError(
                    f"{path}: missing tile under the checkpoint of size {self.size}",
                    hint="restore the log directory from a backup",
                ) from e
            hashes = decode_tile(_read(full, TILE_BYTES), WIDTH, source=str(full))[:width]
        if width == WIDTH:
            self._cache[key] = hashes
            if len(self._cache) > CACHE_TILES:
                self._cache.popitem(last=False)
        return hashes

    def _read_bundle(self, index: int, width: int) -> list[bytes]:
        path = self.root / entries_path(index, width)
        full = self.root / entries_path(index)
        try:
            return decode_bundle(_read(path, BUNDLE_LIMIT), width, source=str(path))
        except FileNotFoundError as e:
            if width == WIDTH or not full.is_file():
                raise LogStateError(
                    f"{path}: missing entry bundle under the checkpoint of size {self.size}",
                    hint="restore the log directory from a backup",
                ) from e
            return decode_bundle(_read(full, BUNDLE_LIMIT), WIDTH, source=str(full))[:width]

    def _node(self, level: int, index: int) -> bytes:
        """The perfect subtree hash at ``level``, ``index``, from the tiles."""
        tile_level, rest = divmod(level, HEIGHT)
        first = index << rest
        tile, offset = divmod(first, WIDTH)
        full = (self.size >> (HEIGHT * tile_level)) // WIDTH
        if tile < full:
            hashes = self._read_tile(tile_level, tile, WIDTH)
        elif tile == full and tile_level < len(self._edge):
            hashes = self._edge[tile_level]
        else:
            raise LogStateError(f"node ({level}, {index}) is beyond the log of size {self.size}")
        part = hashes[offset : offset + (1 << rest)]
        if len(part) != 1 << rest:
            raise LogStateError(f"node ({level}, {index}) is beyond the log of size {self.size}")
        return perfect_root(part)

    def _entries_past_checkpoint(self) -> list[bytes]:
        """Durable entries written past the checkpoint by an append that did not finish."""
        found: list[bytes] = []
        index = self.size // WIDTH
        while True:
            full = self.root / entries_path(index)
            partials = self.root / entries_path(index, 1)
            if full.is_file():
                bundle = decode_bundle(_read(full, BUNDLE_LIMIT), WIDTH, source=str(full))
            elif partials.parent.is_dir():
                widths = [int(p.name) for p in partials.parent.iterdir() if p.name.isdigit()]
                if not widths:
                    break
                width = max(widths)
                path = self.root / entries_path(index, width)
                bundle = decode_bundle(_read(path, BUNDLE_LIMIT), width, source=str(path))
            else:
                break
            start = index * WIDTH
            known = self._entry_edge if index == self.size // WIDTH else []
            if bundle[: len(known)] != known[: len(bundle)]:
                raise LogStateError(
                    f"{self.root / entries_path(index)}: an entry bundle past the checkpoint "
                    "disagrees with the entries under it",
                    hint="the log directory was altered; keep it as evidence and restore a backup",
                )
            found.extend(bundle[max(self.size - start, 0) :])
            if len(bundle) < WIDTH:
                break
            index += 1
        return found

    # ------------------------------------------------------------ append

    def repair(self, *, now: datetime | None = None) -> Repair:
        """Re-integrate durable entries past the checkpoint (a crash before it was written)."""
        with self._locked():
            self._load()
            pending = self._entries_past_checkpoint()
            if pending:
                self._append_locked(pending, now)
            return Repair(len(pending))

    def append(
        self, entries: Sequence[bytes], *, now: datetime | None = None
    ) -> tuple[int, Repair]:
        """Append ``entries``; return the index of the first one (and any repair made first).
        Returns once the entries, their tiles and the new checkpoint are durable. The
        checkpoint carries the log's signed timestamp: ``now`` (the wall clock by default)."""
        if self.signer is None:
            raise TlogError(f"{self.root}: opened without the log key, cannot append")
        with self._locked():
            self._load()
            pending = self._entries_past_checkpoint()
            first = self.size + len(pending)
            self._append_locked([*pending, *entries], now)
            return first, Repair(len(pending))

    def _append_locked(self, entries: Sequence[bytes], now: datetime | None) -> None:
        assert self.signer is not None
        writes: dict[str, bytes] = {}
        completed: list[str] = []
        bundle_changed = False
        size = self.size
        for data in entries:
            bundle_index = size // WIDTH
            self._entry_edge.append(data)
            bundle_changed = True
            if len(self._entry_edge) == WIDTH:
                writes[entries_path(bundle_index)] = encode_bundle(self._entry_edge)
                completed.append(entries_path(bundle_index, 1))
                self._entry_edge, bundle_changed = [], False
            self._push(0, size, leaf_hash(data), writes, completed)
            size += 1
        if bundle_changed:
            path = entries_path(size // WIDTH, len(self._entry_edge))
            writes[path] = encode_bundle(self._entry_edge)
        for level, hashes in enumerate(self._edge):
            count = size >> (HEIGHT * level)
            if hashes and count != self.size >> (HEIGHT * level):
                writes[tile_path(level, count // WIDTH, len(hashes))] = b"".join(hashes)
        # Entry bundles first, then hash tiles, then the checkpoint (the commit).
        order = sorted(writes, key=lambda p: (not p.startswith("tile/entries/"), p))
        dirs: set[Path] = set()  # every directory a file was renamed into or made in
        for path in order:
            target = self.root / path
            missing = target.parent
            while not missing.is_dir():
                dirs.add(missing.parent)
                missing = missing.parent
            if target.parent not in dirs:
                _sweep(target.parent)
            write_durably(target, writes[path], sync_dir=False)
            dirs.add(target.parent)
        for d in sorted(dirs, key=lambda p: len(p.parts), reverse=True):
            _fsync_dir(d)
        self.size = size
        self._cache.clear()
        stamp = int((now or datetime.now(UTC)).timestamp())  # whole seconds, rounded down
        signed = SignedCheckpoint.sign(
            Checkpoint(self.origin, size, self._edge_root()), self.signer, timestamp=stamp
        )
        _sweep(self.root)
        write_durably(self.root / CHECKPOINT, signed.to_text().encode())
        self.head = signed
        self.pending = 0
        for path in completed:  # partial tiles of a tile now full are no longer needed
            with contextlib.suppress(OSError):
                shutil.rmtree((self.root / path).parent)

    def _push(
        self, level: int, position: int, h: bytes, writes: dict[str, bytes], completed: list[str]
    ) -> None:
        """Add node ``h`` (the ``position``-th leaf's ancestor at tile level ``level``)."""
        while len(self._edge) <= level:
            self._edge.append([])
        hashes = self._edge[level]
        hashes.append(h)
        if len(hashes) == WIDTH:
            index = (position >> (HEIGHT * level)) // WIDTH
            writes[tile_path(level, index)] = b"".join(hashes)
            completed.append(tile_path(level, index, 1))
            self._edge[level] = []
            self._push(level + 1, position, perfect_root(hashes), writes, completed)

    # ------------------------------------------------------------ reading and proving

    def entry(self, index: int) -> bytes:
        if not 0 <= index < self.size:
            raise TlogError(f"entry {index} is outside the log of size {self.size}")
        bundle, offset = divmod(index, WIDTH)
        if bundle == self.size // WIDTH:
            return self._entry_edge[offset]
        return self._read_bundle(bundle, WIDTH)[offset]

    def root_at(self, size: int) -> bytes:
        if not 0 <= size <= self.size:
            raise TlogError(f"size {size} is outside the log of size {self.size}")
        return tree_root(size, self._node)

    def prove_inclusion(self, index: int, size: int | None = None) -> list[bytes]:
        return inclusion_proof(index, self.size if size is None else size, self._node)

    def prove_consistency(self, old: int, new: int | None = None) -> list[bytes]:
        new = self.size if new is None else new
        if new > self.size:
            raise TlogError(f"size {new} is beyond the log of size {self.size}")
        return consistency_proof(old, new, self._node)

    def find(self, data: bytes) -> int | None:
        """The index of the first entry equal to ``data`` (a scan of the entry bundles)."""
        for index in range(self.size):
            if self.entry(index) == data:
                return index
        return None

    def verify(self) -> Checkpoint:
        """Recompute the whole tree from the entry bundles; compare every stored tile and the
        checkpoint's root. Raises on the first disagreement, naming the file."""
        if self.head is None:
            return Checkpoint(self.origin, 0, tree_root(0, self._node))
        level_hashes: list[bytes] = []
        for index in range((self.size + WIDTH - 1) // WIDTH):
            width = min(WIDTH, self.size - index * WIDTH)
            level_hashes.extend(leaf_hash(e) for e in self._read_bundle(index, width))
        level = 0
        while level_hashes:
            for index in range((len(level_hashes) + WIDTH - 1) // WIDTH):
                expected = level_hashes[index * WIDTH : (index + 1) * WIDTH]
                path = self.root / tile_path(level, index, len(expected))
                try:
                    stored = decode_tile(_read(path, TILE_BYTES), len(expected), source=str(path))
                except FileNotFoundError as e:
                    raise LogStateError(f"{path}: missing tile") from e
                for n, (a, b) in enumerate(zip(stored, expected, strict=True)):
                    if a != b:
                        raise LogStateError(
                            f"{path}: hash {n} does not match what the entries below it hash "
                            "to: the tile was altered",
                            hint="keep the log directory as evidence; restore it from a backup",
                        )
            full = len(level_hashes) // WIDTH
            level_hashes = [
                perfect_root(level_hashes[i * WIDTH : (i + 1) * WIDTH]) for i in range(full)
            ]
            level += 1
        self._cache.clear()
        root = tree_root(self.size, self._node)
        if root != self.head.checkpoint.root:
            raise LogStateError(f"{self.root}: the tiles do not hash to the checkpoint's root")
        return self.head.checkpoint


def open_log(root: Path, verifier: Verifier, signer: NoteSigner | None = None) -> TileLog:
    try:
        return TileLog(root, verifier, signer)
    except NoteError as e:
        raise LogStateError(e.message, hint=e.hint or "restore the checkpoint from a backup") from e
