"""Upstream content as a sorted sequence of named members, whatever container it came in.

A feed arrives as one file (JSON, JSON lines, CSV, YAML, gzipped or not), an archive (zip, tar,
tar.gz, tar.zst as Red Hat publishes its CSAF archives) or a local directory. Parsers only ever
see :class:`Member` values (name + bytes) in name order, so the same upstream content gives the
same parse regardless of how it was packed or in which order the file system lists it. Every
decompression is size-limited.
"""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile
import zlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Final, Protocol

import zstandard

from bundles import canonical, limits
from bundles.digest import CHUNK, Digest
from bundles.errors import SizeLimitError
from bundles.limits import Unit
from mirror.errors import FailureKind, FeedError

UNPACKED: Final = limits.cap(
    "feed.unpacked_bytes",
    384 << 20,
    Unit.BYTES,
    "the unpacked members of one feed file (gzip, zstd, zip or tar), held in memory to parse",
)
_GZIP = b"\x1f\x8b"
_ZSTD = b"\x28\xb5\x2f\xfd"
_ZIP = b"PK\x03\x04"
_EMPTY_ZIP = b"PK\x05\x06"


@dataclass(frozen=True, slots=True)
class Member:
    """One file of an upstream feed: a relative POSIX name and its (decompressed) bytes."""

    name: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where upstream bytes are on disk, with the name they were published under."""

    path: Path
    name: str

    def identity(self) -> tuple[Digest, int]:
        """SHA-256 and size of the upstream bytes; for a directory, of its canonical listing
        (every file's name, size and digest), so identical trees have identical identities."""
        if self.path.is_dir():
            listing = []
            total = 0
            for rel, file in _walk(self.path):
                digest, size = Digest.of_file(file)
                listing.append({"name": rel, "sha256": digest.hex, "size": size})
                total += size
            return canonical.digest(listing), total
        return Digest.of_file(self.path)

    def members(self, *, limit: int) -> list[Member]:
        """All members, sorted by name; archives and gzip are opened, hidden files skipped."""
        try:
            if self.path.is_dir():
                out = [Member(rel, _read(file, limit)) for rel, file in _walk(self.path)]
                return _budget(out, limit)
            data = _read(self.path, limit)
            return _budget(unpack(self.name, data, limit=limit), limit)
        except OSError as e:
            raise FeedError(
                f"{self.path}: cannot read: {e.strerror}", kind=FailureKind.MISSING
            ) from e


def _budget(members: list[Member], limit: int) -> list[Member]:
    total = sum(len(m.data) for m in members)
    if total > limit:
        raise FeedError(
            f"unpacked feed is {total} bytes, over the limit of {limit}",
            kind=FailureKind.SIZE_LIMIT,
            hint="raise max_size for this source if the feed really is that large",
        )
    return sorted(members, key=lambda m: m.name)


def _walk(root: Path) -> list[tuple[str, Path]]:
    found = []
    for file in root.rglob("*"):
        rel = file.relative_to(root).as_posix()
        if file.is_file() and not any(part.startswith(".") for part in rel.split("/")):
            found.append((rel, file))
    return sorted(found)


def _read(path: Path, limit: int) -> bytes:
    """A feed file read whole (it is parsed in memory): refused by its size on disk first."""
    size = path.stat().st_size
    if size > limit:
        raise FeedError(
            f"{path}: {size} bytes, over the limit of {limit}", kind=FailureKind.SIZE_LIMIT
        )
    if size > UNPACKED.value():
        raise _over(path.name, "file", UNPACKED.value(), limit)
    with open(path, "rb") as fh:
        return fh.read(size + 1)


def _strip_top(members: list[Member]) -> list[Member]:
    """Drop one directory level shared by every member (``tar czf x.tgz dir`` packs ``dir/``),
    so an archive and the directory it was made from give the same member names."""
    tops = {PurePosixPath(m.name).parts[0] for m in members}
    if len(tops) == 1 and all(len(PurePosixPath(m.name).parts) > 1 for m in members):
        return [
            Member(str(PurePosixPath(*PurePosixPath(m.name).parts[1:])), m.data) for m in members
        ]
    return members


class _Reader(Protocol):
    def read(self, size: int, /) -> bytes: ...


def _gunzip(data: bytes, limit: int, name: str) -> bytes:
    return _inflate(
        lambda: gzip.GzipFile(fileobj=io.BytesIO(data)),
        (OSError, EOFError, zlib.error),
        limit,
        name,
        what="gunzipped",
        corrupt="gzip",
    )


def _unzstd(data: bytes, limit: int, name: str) -> bytes:
    return _inflate(
        lambda: zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)),
        (zstandard.ZstdError, OSError, EOFError),
        limit,
        name,
        what="decompressed",
        corrupt="zstd",
    )


def _inflate(
    open_reader: Callable[[], AbstractContextManager[_Reader]],
    damaged: tuple[type[Exception], ...],
    limit: int,
    name: str,
    *,
    what: str,
    corrupt: str,
) -> bytes:
    """Decompress in chunks up to the bound: asking the decoder for the whole limit in one
    read allocates it (a MemoryError under an address-space cap), and a small bomb is refused
    once its output passes the bound, not after it has expanded."""
    bound = min(limit, UNPACKED.value())
    out = io.BytesIO()  # getvalue() hands over its buffer: the output is never held twice
    size = 0
    try:
        with open_reader() as reader:
            while chunk := reader.read(min(CHUNK, bound + 1 - size)):
                size += out.write(chunk)
                if size > bound:
                    raise _over(name, what, bound, limit)
    except MemoryError:
        raise _over(name, what, size, limit, memory=True) from None
    except damaged as e:
        raise FeedError(f"{name}: corrupt {corrupt} data: {e}") from e
    return out.getvalue()


def _over(name: str, what: str, bound: int, limit: int, *, memory: bool = False) -> FeedError:
    """The refusal of an unpacked feed over its bound: the source's own limit, or the
    ``feed.unpacked_bytes`` cap (named, with the variable that raises it)."""
    if memory:
        return FeedError(
            f"{name}: memory ran out after {bound:,} {what} bytes, below the "
            f"{UNPACKED.name} cap of {UNPACKED.describe(UNPACKED.value())}",
            kind=FailureKind.SIZE_LIMIT,
            hint=f"lower {UNPACKED.env} to what this machine can hold (docs/limits.md)",
        )
    if bound < limit:
        return FeedError(
            f"{name}: {what} size is over the {UNPACKED.name} cap of {UNPACKED.describe(bound)}",
            kind=FailureKind.SIZE_LIMIT,
            hint=f"if this feed is trusted and that large, raise the cap with {UNPACKED.env}=N "
            "(docs/limits.md)",
        )
    return FeedError(
        f"{name}: {what} size over the limit of {limit} bytes",
        kind=FailureKind.SIZE_LIMIT,
        hint="raise max_size for this source if the feed really is that large",
    )


def unpack(name: str, data: bytes, *, limit: int) -> list[Member]:
    """Open ``data`` by its content (magic bytes), not its name: zip, tar (optionally gzipped or
    zstd-compressed), a gzipped or zstd-compressed single file, or a plain file."""
    try:
        if data.startswith(_ZSTD):  # a .tar.zst is opened as the tar it holds
            return unpack(name.removesuffix(".zst"), _unzstd(data, limit, name), limit=limit)
        if data.startswith((_ZIP, _EMPTY_ZIP)):
            return _strip_top(_unzip(data, limit, name))
        if data.startswith(_GZIP):
            inner = _gunzip(data, limit, name)
            if _is_tar(inner):
                return _strip_top(_untar(inner, limit, name))
            base = name[:-3] if name.endswith(".gz") else name
            return [Member(base, inner)]
        if _is_tar(data):
            return _strip_top(_untar(data, limit, name))
    except SizeLimitError as e:
        raise FeedError(f"{name}: {e.message}", kind=FailureKind.SIZE_LIMIT) from e
    return [Member(name, data)]


def _is_tar(data: bytes) -> bool:
    return len(data) > 262 and data[257:262] == b"ustar"


def _unzip(data: bytes, limit: int, name: str) -> list[Member]:
    out = []
    total = 0
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            for info in zf.infolist():
                if info.is_dir() or info.filename.rsplit("/", 1)[-1].startswith("."):
                    continue
                total += info.file_size
                if total > min(limit, UNPACKED.value()):
                    raise _over(name, "unzipped", min(limit, UNPACKED.value()), limit)
                out.append(Member(info.filename, zf.read(info)))
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise FeedError(f"{name}: corrupt zip archive: {e}") from e
    return out


def _untar(data: bytes, limit: int, name: str) -> list[Member]:
    out = []
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tf:
            for info in tf:
                if not info.isfile():
                    continue
                base = info.name.rsplit("/", 1)[-1]
                if base.startswith("."):
                    continue
                total += info.size
                if total > min(limit, UNPACKED.value()):
                    raise _over(name, "untarred", min(limit, UNPACKED.value()), limit)
                fh = tf.extractfile(info)
                if fh is None:
                    continue
                out.append(Member(info.name.removeprefix("./"), fh.read()))
    except tarfile.TarError as e:
        raise FeedError(f"{name}: corrupt tar archive: {e}") from e
    return out
