"""The bundle archive: a deterministic tar stream, zstd-compressed, read in one verified pass.

Writing (connected side): the signed statement is the FIRST member; the statement's
transparency proof (``statement.tlog.json``, bundles.tlog.carried), when the mirror logs its
bundles, is the second; every other member follows in name order. Member headers are fixed
(mtime 0, uid/gid 0, no owner names, mode 0644, PAX format), and compression always runs
zstd's worker mode, whose output does not depend on the number of threads, so the same members
give the same bytes on any machine.

Reading (appliance): :class:`ArchiveReader` hands out the first member's bytes under a small
size limit so the caller can verify its signature before anything else is read; then
:meth:`ArchiveReader.members` yields each remaining member as a :class:`MemberStream` that
hashes while the caller copies it, refusing path traversal, absolute paths, links, devices,
duplicates, unlisted members (the one exception: :meth:`ArchiveReader.read_second` hands
out the transparency proof, capped, for the caller to verify against the statement), members
over their declared size (decompression bombs), and digest mismatches. Nothing here writes to
disk: the caller decides where bytes go and commits them only after the member verified.

Integrity rests on the signed statement: every member's size and SHA-256 is declared there and
checked as it streams, and members declared but absent are named. zstd's decoder stops quietly
at a truncated frame, so the only bytes a truncation could drop unnoticed are the tar padding
after the last member, which carries nothing.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO, Final

import zstandard

from bundles import limits
from bundles.digest import CHUNK, Digest, Hasher
from bundles.errors import BundleError, DigestError, SizeLimitError, StellaError
from bundles.limits import Unit
from bundles.tarstream import TarError, TarMember, read_tar

ZSTD_WINDOW_LOG: Final = 27  # 128 MiB long-distance window, as `zstd --long=27`
DEFAULT_LEVEL: Final = 3
STATEMENT: Final = limits.cap(
    "bundle.statement_bytes",
    16 << 20,
    Unit.BYTES,
    "the signed statement (the first member of a bundle)",
)
ZSTD_WINDOW: Final = limits.cap(
    "bundle.zstd_window_bytes",
    1 << ZSTD_WINDOW_LOG,
    Unit.BYTES,
    "the zstd window a bundle's frames ask the decoder to hold",
)
TRAILING: Final = limits.cap(
    "bundle.trailing_bytes",
    1 << 20,
    Unit.BYTES,
    "the zero padding after a bundle's end-of-archive marker",
)


STREAM_SPOOL: Final = 64 << 10  # members above this stream in chunks, whatever their size
_STREAM_ERRORS: Final = (TarError, zstandard.ZstdError, EOFError, OSError)
_DEVICES: Final = frozenset(b"346")  # character and block devices, fifos


class ArchiveError(BundleError):
    """The archive stream is malformed, truncated, or contains a refused member."""


class MemberRefusedError(ArchiveError):
    """A member is not acceptable (unsafe name, link, device, unlisted, duplicate)."""


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """What the signed statement declares about one member."""

    name: str
    digest: Digest
    size: int


@dataclass(frozen=True, slots=True)
class MemberSource:
    """A member to write: its declared spec and where its bytes come from."""

    spec: MemberSpec
    path: Path | None = None
    data: bytes | None = None

    def open(self) -> BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        if self.path is None:
            raise ArchiveError(f"member {self.spec.name}: no source bytes")
        return open(self.path, "rb")

    @classmethod
    def from_bytes(cls, name: str, data: bytes) -> MemberSource:
        return cls(MemberSpec(name, Digest.of_bytes(data), len(data)), data=data)

    @classmethod
    def from_file(cls, name: str, path: Path) -> MemberSource:
        digest, size = Digest.of_file(path)
        return cls(MemberSpec(name, digest, size), path=path)


def check_member_name(name: str) -> str:
    """Refuse names that could escape a staging directory or mean two things."""
    if not name or "\\" in name or "\x00" in name:
        raise MemberRefusedError(f"member name {name!r} is not a plain relative path")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise MemberRefusedError(f"member name {name!r} is not UTF-8") from None
    path = PurePosixPath(name)
    if path.is_absolute():
        raise MemberRefusedError(f"member {name!r} has an absolute path")
    if any(part in ("..", ".", "") for part in name.split("/")):
        raise MemberRefusedError(f"member {name!r} has a '..', '.' or empty path component")
    return name


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = 0
    info.mode = 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.type = tarfile.REGTYPE
    return info


def compressor(level: int = DEFAULT_LEVEL, threads: int | None = None) -> zstandard.ZstdCompressor:
    """zstd in worker mode with long-distance matching; output is independent of ``threads``."""
    workers = max(1, threads if threads is not None else (os.cpu_count() or 1))
    params = zstandard.ZstdCompressionParameters.from_level(
        level, window_log=ZSTD_WINDOW_LOG, enable_ldm=True, threads=workers, write_checksum=True
    )
    return zstandard.ZstdCompressor(compression_params=params)


def write_archive(
    out: BinaryIO,
    first: MemberSource,
    members: Iterable[MemberSource],
    *,
    level: int = DEFAULT_LEVEL,
    threads: int | None = None,
    second: MemberSource | None = None,
) -> None:
    """Write ``first``, then ``second`` (the statement's transparency proof, unlisted in it),
    then ``members`` (sorted by name) as a zstd-compressed tar stream.

    Every member's bytes are re-hashed while written; a source that changed since its spec
    was computed aborts the export.
    """
    ordered = sorted(members, key=lambda m: m.spec.name)
    leading = [first] if second is None else [first, second]
    names = [m.spec.name for m in (*leading, *ordered)]
    if len(set(names)) != len(names):
        raise ArchiveError("duplicate member names in bundle export")
    writer = compressor(level, threads).stream_writer(out, closefd=False)
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for member in (*leading, *ordered):
            check_member_name(member.spec.name)
            with member.open() as src:
                reader = _VerifyingReader(src, member.spec)
                tar.addfile(_tarinfo(member.spec.name, member.spec.size), reader)
                reader.check()
    writer.flush(zstandard.FLUSH_FRAME)
    writer.close()  # type: ignore[no-untyped-call]


class _VerifyingReader(io.RawIOBase):
    """Feeds tarfile while hashing; raises if the source does not match its spec."""

    def __init__(self, src: BinaryIO, spec: MemberSpec) -> None:
        self._src = src
        self._spec = spec
        self._hasher = Hasher(limit=spec.size)

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        chunk = self._src.read(n)
        if chunk:
            self._hasher.update(chunk)
        return chunk

    def check(self) -> None:
        if self._hasher.size != self._spec.size or self._hasher.digest() != self._spec.digest:
            raise ArchiveError(
                f"member {self._spec.name} changed while it was being exported",
                hint="export again from a quiescent workspace",
            )


class MemberStream:
    """One member's bytes, hashed as they are read; :meth:`chunks` ends by verifying them."""

    def __init__(self, spec: MemberSpec, raw: IO[bytes]) -> None:
        self.spec = spec
        self._raw = raw
        self._hasher = Hasher(limit=spec.size)
        self.verified = False

    @property
    def name(self) -> str:
        return self.spec.name

    def chunks(self, size: int = CHUNK) -> Iterator[bytes]:
        """Yield the member's bytes; raise before the last yield returns if they are wrong."""
        while True:
            try:
                chunk = self._raw.read(size)
            except _STREAM_ERRORS as e:
                raise ArchiveError(
                    f"member {self.name}: stream is truncated or corrupt: {e}"
                ) from e
            if not chunk:
                break
            try:
                self._hasher.update(chunk)
            except SizeLimitError as e:
                raise ArchiveError(
                    f"member {self.name} is larger than its declared {self.spec.size} bytes"
                ) from e
            yield chunk
        self.verify()

    def read_all(self, limit: int | None = None) -> bytes:
        if limit is not None and self.spec.size > limit:
            raise ArchiveError(f"member {self.name}: {self.spec.size} bytes exceeds {limit}")
        return b"".join(self.chunks())

    def verify(self) -> None:
        if self._hasher.size != self.spec.size:
            raise ArchiveError(
                f"member {self.name} is {self._hasher.size} bytes, "
                f"the statement declares {self.spec.size}",
                hint="the bundle is truncated or was modified",
            )
        actual = self._hasher.digest()
        if actual != self.spec.digest:
            raise DigestError(
                f"member {self.name}: digest {actual} does not match the signed {self.spec.digest}",
                hint="the bundle was modified after it was signed; do not use it",
            )
        self.verified = True


class ArchiveReader:
    """Single-pass reader over a bundle stream (see the module docstring)."""

    def __init__(
        self,
        stream: BinaryIO,
        *,
        source: str = "bundle",
    ) -> None:
        self.source = source
        dctx = zstandard.ZstdDecompressor(max_window_size=ZSTD_WINDOW.value())
        self._zstream = dctx.stream_reader(stream, read_across_frames=True)
        self._entries = read_tar(self._zstream, spool_limit=STREAM_SPOOL)
        self._first_read = False
        self._second_read = False
        self._peeked: tuple[TarMember, Callable[[], BinaryIO]] | None = None

    def _next(self) -> tuple[TarMember, Callable[[], BinaryIO]] | None:
        if self._peeked is not None:
            entry, self._peeked = self._peeked, None
            return entry
        try:
            return next(self._entries, None)
        except TarError as e:
            if e.cap is not None:
                raise limits.exceeded(e.cap, f"{self.source}: a tar header", found=e.found) from e
            raise ArchiveError(f"{self.source}: not a well-formed tar stream: {e}") from e
        except _STREAM_ERRORS as e:
            raise self._stream_error(e) from e

    def _stream_error(self, e: Exception) -> StellaError:
        if isinstance(e, zstandard.ZstdError) and "too much memory" in str(e):
            return limits.exceeded(ZSTD_WINDOW, f"{self.source}: a zstd frame")
        return ArchiveError(
            f"{self.source}: not a zstd-compressed tar stream, or truncated or corrupt: {e}"
        )

    def _refuse_special(self, member: TarMember) -> None:
        if member.issym() or member.islnk():
            raise MemberRefusedError(f"{self.source}: member {member.name!r} is a link")
        if member.type in _DEVICES:
            raise MemberRefusedError(f"{self.source}: member {member.name!r} is a device or fifo")
        if not member.isreg():
            raise MemberRefusedError(f"{self.source}: member {member.name!r} is not a regular file")

    def read_first(self, expected_name: str, *, limit: int | None = None) -> bytes:
        """Return the first member's bytes; it must be named ``expected_name`` and be within
        the ``bundle.statement_bytes`` cap (checked on its header, before a byte is read):
        nothing before it is read but at most one member's capped extended headers."""
        if self._first_read:
            raise ArchiveError("the first member was already read")
        self._first_read = True
        entry = self._next()
        if entry is None:
            raise ArchiveError(
                f"{self.source}: the archive is empty, or truncated before its first member",
                hint="copy the bundle again",
            )
        member, opener = entry
        self._refuse_special(member)
        if member.name != expected_name:
            raise ArchiveError(
                f"{self.source}: first member is {member.name!r}, expected {expected_name!r}",
                hint="this is not a Stella Ops bundle, or it was repacked",
            )
        bound = STATEMENT.value() if limit is None else limit
        if member.size > bound:
            raise limits.LimitError(
                f"{self.source}: {expected_name} is {member.size:,} bytes, over the "
                f"{STATEMENT.name} cap of {STATEMENT.describe(bound)}",
                cap=STATEMENT,
                hint=f"a bundle statement is far smaller; if this bundle is trusted, raise the "
                f"cap with {STATEMENT.env}=N (docs/limits.md)",
            )
        try:
            data = opener().read()
        except TarError as e:
            raise ArchiveError(f"{self.source}: {expected_name} is truncated: {e}") from e
        except _STREAM_ERRORS as e:
            raise self._stream_error(e) from e
        if len(data) != member.size:
            raise ArchiveError(f"{self.source}: {expected_name} is truncated")
        return data

    def read_second(self, name: str, *, limit: int) -> bytes | None:
        """The second member's bytes if it is named ``name`` (the statement's transparency
        proof, which the statement cannot list), at most ``limit`` bytes; ``None`` when the
        bundle has none. Call it after :meth:`read_first` and before :meth:`members`; the
        caller verifies the bytes against the statement and uses them for nothing else."""
        if not self._first_read or self._second_read:
            raise ArchiveError("read the second member right after the first")
        self._second_read = True
        entry = self._next()
        if entry is None:
            return None
        member, opener = entry
        if member.name != name:
            self._peeked = entry  # an ordinary member: members() takes it
            return None
        self._refuse_special(member)
        if member.size > limit:
            raise MemberRefusedError(
                f"{self.source}: {name} is {member.size:,} bytes, over the {limit:,} a "
                "transparency proof may have"
            )
        try:
            data = opener().read()
        except TarError as e:
            raise ArchiveError(f"{self.source}: {name} is truncated: {e}") from e
        except _STREAM_ERRORS as e:
            raise self._stream_error(e) from e
        if len(data) != member.size:
            raise ArchiveError(f"{self.source}: {name} is truncated")
        return data

    def members(self, expected: Mapping[str, MemberSpec]) -> Iterator[MemberStream]:
        """Yield every remaining member, checked against ``expected``.

        The caller must consume each :class:`MemberStream` fully (``chunks()``) before asking
        for the next one. After the last member, members declared but absent are refused.
        """
        if not self._first_read:
            raise ArchiveError("read and verify the first member before the others")
        seen: set[str] = set()
        while (entry := self._next()) is not None:
            member, opener = entry
            check_member_name(member.name)
            self._refuse_special(member)
            if member.name in seen:
                raise MemberRefusedError(f"{self.source}: member {member.name!r} appears twice")
            seen.add(member.name)
            spec = expected.get(member.name)
            if spec is None:
                raise MemberRefusedError(
                    f"{self.source}: member {member.name!r} is not listed in the signed statement"
                )
            if member.size != spec.size:
                raise ArchiveError(
                    f"{self.source}: member {member.name!r} header says {member.size} bytes, "
                    f"the statement declares {spec.size}"
                )
            try:
                raw = opener()
            except _STREAM_ERRORS as e:
                raise ArchiveError(
                    f"{self.source}: member {member.name!r}: stream is truncated or corrupt: {e}"
                ) from e
            stream = MemberStream(spec, raw)
            yield stream
            if not stream.verified:
                raise ArchiveError(f"member {member.name} was not read to its end")
        missing = sorted(set(expected) - seen)
        if missing:
            shown = ", ".join(missing[:5]) + (
                f" and {len(missing) - 5} more" if len(missing) > 5 else ""
            )
            raise ArchiveError(
                f"{self.source}: bundle ends before {len(missing)} declared member(s): {shown}",
                hint="the bundle is truncated; copy it again",
            )
        self._drain()

    def _drain(self) -> None:
        """After the tar end marker, refuse anything but padding (data smuggled after the end),
        and more padding than a tar writer leaves (a small frame that expands to zeros)."""
        bound = TRAILING.value()
        seen = 0
        try:
            while chunk := self._zstream.read(CHUNK):
                if chunk.strip(b"\x00"):
                    raise ArchiveError(f"{self.source}: data after the end of the archive")
                seen += len(chunk)
                if seen > bound:
                    raise limits.exceeded(TRAILING, self.source, found=seen)
        except zstandard.ZstdError as e:
            raise self._stream_error(e) from e
