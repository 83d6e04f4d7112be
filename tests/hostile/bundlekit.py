"""Hostile bundles made in code: tar headers written byte by byte (so they can lie), members
streamed from generators (so a 1 GiB line costs no memory here), statements signed with a key
the test home trusts."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import zstandard

from bundles.archive import MemberSpec
from bundles.bundle import (
    DATASET_PREFIX,
    MANIFEST_MEMBER,
    STATEMENT_MEMBER,
    BundleKind,
    BundlePredicate,
    make_statement,
    sign_statement,
)
from bundles.digest import Digest
from bundles.keys import PrivateKey
from bundles.snapshot import (
    DatasetEntry,
    DatasetType,
    Manifest,
    SourceEntry,
    SourceKind,
    SourceStatus,
)
from bundles.snapshot import build_dataset as _build_dataset
from bundles.trust import TrustRoot

BLOCK = 512
CHANNEL = "default"

Chunks = Callable[[], Iterable[bytes]]


def octal(size: int, width: int = 12) -> bytes:
    """An octal size field: NUL-terminated when it fits, all digits up to 8**12, else the GNU
    base-256 form (as tar writers do)."""
    if size < 8 ** (width - 1):
        return f"{size:0{width - 1}o}\0".encode()
    if size < 8**width:
        return f"{size:0{width}o}".encode()
    return base256(size, width)


def base256(size: int, width: int = 12) -> bytes:
    """GNU base-256: the high bit set, two's complement for a negative number."""
    value = size if size >= 0 else (1 << (8 * width)) + size
    raw = bytearray(value.to_bytes(width, "big"))
    raw[0] |= 0x80
    return bytes(raw)


def header(
    name: bytes | str,
    size: int = 0,
    *,
    typeflag: bytes = b"0",
    size_field: bytes | None = None,
    linkname: bytes = b"",
) -> bytes:
    """One ustar header block, its checksum right, its size field whatever the case wants."""
    raw = name.encode() if isinstance(name, str) else name
    h = bytearray(BLOCK)
    h[0 : len(raw[:100])] = raw[:100]
    h[100:108] = b"0000644\0"
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = size_field if size_field is not None else octal(size)
    h[136:148] = b"00000000000\0"
    h[156:157] = typeflag
    h[157 : 157 + len(linkname)] = linkname
    h[257:263] = b"ustar\0"
    h[263:265] = b"00"
    h[148:156] = b" " * 8
    h[148:156] = f"{sum(h):06o}\0 ".encode()
    assert len(h) == BLOCK, "a header field overflowed"
    return bytes(h)


def pax(records: dict[str, str]) -> bytes:
    out = b""
    for key, value in records.items():
        body = f" {key}={value}\n".encode()
        length = len(body) + 1
        while len(str(length)) + len(body) != length:
            length += 1
        out += str(length).encode() + body
    return out


def padding(size: int) -> bytes:
    return b"\0" * (-size % BLOCK)


@dataclass
class Entry:
    """One tar entry: a header (as written) and its data (declared ``size`` bytes, streamed)."""

    name: bytes | str
    data: bytes | Chunks = b""
    typeflag: bytes = b"0"
    size: int | None = None  # the size written in the header (default: the data's)
    size_field: bytes | None = None
    linkname: bytes = b""
    before: list[bytes] = field(default_factory=list)  # raw blocks before the header

    def chunks(self) -> Iterable[bytes]:
        return [self.data] if isinstance(self.data, bytes) else self.data()

    def blocks(self) -> Iterator[bytes]:
        yield from self.before
        declared = self.size
        if declared is None:
            declared = sum(len(c) for c in self.chunks())
        yield header(
            self.name,
            declared,
            typeflag=self.typeflag,
            size_field=self.size_field,
            linkname=self.linkname,
        )
        written = 0
        for chunk in self.chunks():
            written += len(chunk)
            yield chunk
        yield padding(written)


def ext(
    kind: bytes, data: bytes, *, size: int | None = None, size_field: bytes | None = None
) -> bytes:
    """An extended header (``x``, ``g``, ``L``, ``K``) with its data and padding."""
    head = header(
        b"././@PaxHeader" if kind in b"xg" else b"././@LongLink",
        len(data) if size is None else size,
        typeflag=kind,
        size_field=size_field,
    )
    return head + data + padding(len(data))


def tar_stream(entries: Iterable[Entry], *, end: bool = True) -> Iterator[bytes]:
    for entry in entries:
        yield from entry.blocks()
    if end:
        yield b"\0" * (BLOCK * 2)


def write_zst(path: Path, chunks: Iterable[bytes], *, level: int = 1) -> Path:
    with open(path, "wb") as out:
        writer = zstandard.ZstdCompressor(level=level).stream_writer(out, closefd=False)
        for chunk in chunks:
            writer.write(chunk)
        writer.flush(zstandard.FLUSH_FRAME)
    return path


def spec_of(name: str, chunks: Iterable[bytes]) -> MemberSpec:
    h = hashlib.sha256()
    size = 0
    for chunk in chunks:
        h.update(chunk)
        size += len(chunk)
    return MemberSpec(name, Digest(h.hexdigest()), size)


def repeat(piece: bytes, total: int, *, then: bytes = b"") -> Chunks:
    """``total`` bytes of ``piece`` repeated, then ``then``: streamed in 1 MiB chunks."""

    def gen() -> Iterator[bytes]:
        block = piece * ((1 << 20) // len(piece))
        left = total
        while left > 0:
            chunk = block[: min(left, len(block))]
            left -= len(chunk)
            yield chunk
        if then:
            yield then

    return gen


@dataclass
class Kit:
    """The signer a test home trusts, and the makers of its bundles."""

    root: Path
    signer: PrivateKey
    trust_root: Path
    now: datetime

    @classmethod
    def create(cls, root: Path) -> Kit:
        now = datetime.now(UTC).replace(microsecond=0)
        signer = PrivateKey.generate()
        trust = TrustRoot.create(
            [PrivateKey.generate()], [signer.public_key], now=now - timedelta(hours=1)
        )
        path = root / "trust-root.json"
        trust.save(path)
        return cls(root, signer, path, now)

    def predicate(self, sequence: int, snapshot: Digest | None, **extra: Any) -> BundlePredicate:
        return BundlePredicate(
            kind=BundleKind.FULL,
            sequence=sequence,
            created=self.now - timedelta(minutes=5),
            expires=self.now + timedelta(days=30),
            channel=CHANNEL,
            snapshot=snapshot,
            extra=extra,
        )

    def statement(
        self, specs: Iterable[MemberSpec], *, sequence: int = 2, snapshot: Digest | None = None
    ) -> bytes:
        return sign_statement(
            make_statement(self.predicate(sequence, snapshot), specs), self.signer
        )

    def knowledge(
        self, lines: bytes | Chunks, *, records: int | None = None
    ) -> tuple[list[Entry], Digest]:
        """A one-dataset snapshot: ``knowledge.json`` and the dataset member (its bytes as
        given, which may be anything the manifest then declares)."""
        chunks = (lambda: [lines]) if isinstance(lines, bytes) else lines
        spec = spec_of("x", chunks())
        if records is None:
            records = lines.count(b"\n") if isinstance(lines, bytes) else 1
        entry = DatasetEntry("kev", DatasetType.KEV, "kev", spec.digest, records, spec.size)
        manifest = Manifest((SourceEntry("kev", SourceKind.KEV, SourceStatus.OK, 1),), (entry,))
        raw = manifest.canonical()
        member = Entry(
            DATASET_PREFIX + spec.digest.hex + ".jsonl",
            lines if isinstance(lines, bytes) else chunks,
            size=spec.size,
        )
        return [Entry(MANIFEST_MEMBER, raw), member], manifest.digest

    def bundle(
        self,
        path: Path,
        members: list[Entry],
        *,
        sequence: int = 2,
        snapshot: Digest | None = None,
        signed: list[MemberSpec] | None = None,
        statement: Entry | None = None,
        before: Sequence[Entry] = (),
        end: bool = True,
        tail: bytes = b"",
    ) -> Path:
        """A zstd tar: ``before`` entries, the signed statement (over ``signed``, default every
        member as written), then ``members``."""
        if signed is None:
            signed = [spec_of(str(m.name), m.chunks()) for m in members if isinstance(m.name, str)]
        envelope = self.statement(signed, sequence=sequence, snapshot=snapshot)
        first = statement or Entry(STATEMENT_MEMBER, envelope)

        def chunks() -> Iterator[bytes]:
            yield from tar_stream([*before, first, *members], end=end)
            if tail:
                yield tail

        return write_zst(path, chunks())

    def good(self, path: Path, *, sequence: int = 2) -> Path:
        members, snapshot = self.knowledge(good_dataset())
        return self.bundle(path, members, sequence=sequence, snapshot=snapshot)


def good_dataset() -> bytes:
    _, data = _build_dataset(
        "kev",
        DatasetType.KEV,
        [
            {"id": "CVE-2024-0001", "vendorProject": "x"},
            {"id": "CVE-2024-0002", "vendorProject": "y"},
        ],
    )
    return data


def copy_home(template: Path, to: Path) -> Path:
    shutil.copytree(template, to, symlinks=True)
    return to
