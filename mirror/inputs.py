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
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import zstandard

from bundles import canonical
from bundles.digest import Digest
from bundles.errors import SizeLimitError
from mirror.errors import FailureKind, FeedError

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
    size = path.stat().st_size
    if size > limit:
        raise FeedError(
            f"{path}: {size} bytes, over the limit of {limit}", kind=FailureKind.SIZE_LIMIT
        )
    return path.read_bytes()


def _strip_top(members: list[Member]) -> list[Member]:
    """Drop one directory level shared by every member (``tar czf x.tgz dir`` packs ``dir/``),
    so an archive and the directory it was made from give the same member names."""
    tops = {PurePosixPath(m.name).parts[0] for m in members}
    if len(tops) == 1 and all(len(PurePosixPath(m.name).parts) > 1 for m in members):
        return [
            Member(str(PurePosixPath(*PurePosixPath(m.name).parts[1:])), m.data) for m in members
        ]
    return members


def _gunzip(data: bytes, limit: int, name: str) -> bytes:
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
            out = gz.read(limit + 1)
    except (OSError, EOFError) as e:
        raise FeedError(f"{name}: corrupt gzip data: {e}") from e
    if len(out) > limit:
        raise FeedError(
            f"{name}: gunzipped size over the limit of {limit} bytes", kind=FailureKind.SIZE_LIMIT
        )
    return out


def _unzstd(data: bytes, limit: int, name: str) -> bytes:
    """Decompress in 1 MiB reads, refusing the output as soon as it passes ``limit`` (one read
    of the whole limit would allocate it)."""
    out = io.BytesIO()
    size = 0
    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
            while chunk := reader.read(min(1 << 20, limit + 1 - size)):
                size += out.write(chunk)
                if size > limit:
                    raise FeedError(
                        f"{name}: decompressed size over the limit of {limit} bytes",
                        kind=FailureKind.SIZE_LIMIT,
                        hint="raise max_size for this source if the feed really is that large",
                    )
    except (zstandard.ZstdError, OSError, EOFError) as e:
        raise FeedError(f"{name}: corrupt zstd data: {e}") from e
    return out.getvalue()


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
                return _strip_top(_untar(inner, limit))
            base = name[:-3] if name.endswith(".gz") else name
            return [Member(base, inner)]
        if _is_tar(data):
            return _strip_top(_untar(data, limit))
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
                if total > limit:
                    raise FeedError(
                        f"{name}: unzipped size over the limit of {limit} bytes",
                        kind=FailureKind.SIZE_LIMIT,
                    )
                out.append(Member(info.filename, zf.read(info)))
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise FeedError(f"{name}: corrupt zip archive: {e}") from e
    return out


def _untar(data: bytes, limit: int) -> list[Member]:
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
                if total > limit:
                    raise FeedError(
                        f"tar archive over the limit of {limit} bytes", kind=FailureKind.SIZE_LIMIT
                    )
                fh = tf.extractfile(info)
                if fh is None:
                    continue
                out.append(Member(info.name.removeprefix("./"), fh.read()))
    except tarfile.TarError as e:
        raise FeedError(f"corrupt tar archive: {e}") from e
    return out
