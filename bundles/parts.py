"""Split bundles: parts sized for removable media, each verifiable on its own.

``NAME.stella.tar.zst`` split in N parts gives ``NAME.stella.tar.zst.part-001-of-00N`` … and
``NAME.stella.tar.zst.parts.json``. Every part file is::

    b"STELLA-PART/1\\n"
    8-byte big-endian length L, then L bytes: the signed parts manifest (DSSE envelope)
    the part's chunk of the bundle

The parts manifest is an in-toto statement (predicate type :data:`PARTS_PREDICATE_TYPE`)
whose subjects are every chunk (``part-001`` …) and the whole bundle, by SHA-256, with their
sizes in the predicate. It is signed by the bundle key, so one part on one DVD can be checked
against the trust root alone: signature, then the chunk's digest. Parts reassemble in any
order (a chunk is known by its digest, not by its file name); a missing part is named by its
number, a corrupt one by its file. The reassembled stream is checked chunk by chunk as it is
read, so importing parts is as single-pass as importing the bundle.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

from bundles import dsse, limits
from bundles.bounded import Section, printable
from bundles.bundle import BundleRefusedError
from bundles.digest import CHUNK, Digest, Hasher
from bundles.errors import BundleError, SignatureError
from bundles.intoto import PAYLOAD_TYPE, Statement, Subject
from bundles.limits import Unit
from bundles.signer import Signer
from bundles.trust import TrustRoot

PARTS_PREDICATE_TYPE: Final = "https://stella-ops.org/attestations/bundle-parts/v1"
MAGIC: Final = b"STELLA-PART/1\n"
PARTS_MANIFEST: Final = limits.cap(
    "bundle.parts_manifest_bytes",
    4 << 20,
    Unit.BYTES,
    "the signed parts manifest at the head of each part",
)
_PART_NAME = re.compile(r"part-(\d{3,})-of-(\d{3,})$")
_SIZE = re.compile(r"(\d+)([KMGT]?)(i?B?)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class PartError(BundleError):
    """A part file is malformed, corrupt, missing, or from another bundle."""


class PartsIncompleteError(PartError):
    """Some parts of a split bundle are not there (yet): nothing is wrong with the others,
    so an inbox waits for the rest instead of refusing the set."""


def parse_size(text: str) -> int:
    """``4480M`` (MiB), ``700M``, ``25G``, ``1048576``: binary units, as media are sized."""
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise PartError(f"size {text!r} is not a size", hint="write e.g. 4480M, 700M or 25G")
    size = int(m.group(1)) * _UNITS[m.group(2).upper()]
    if size < 64 << 10:
        raise PartError(f"part size {text!r} is below the 64K minimum")
    return size


def part_name(bundle_name: str, index: int, count: int) -> str:
    width = max(3, len(str(count)))
    return f"{bundle_name}.part-{index:0{width}d}-of-{count:0{width}d}"


@dataclass(frozen=True, slots=True)
class PartSpec:
    index: int  # 1-based
    digest: Digest
    size: int


@dataclass(frozen=True, slots=True)
class PartsManifest:
    bundle_name: str
    channel: str
    bundle_digest: Digest
    bundle_size: int
    parts: tuple[PartSpec, ...]
    envelope: bytes
    keyids: tuple[str, ...] = ()
    trust_roots: tuple[Any, ...] = ()

    @property
    def count(self) -> int:
        return len(self.parts)

    def by_digest(self) -> dict[Digest, PartSpec]:
        return {p.digest: p for p in self.parts}


def _statement(
    bundle_name: str,
    channel: str,
    digest: Digest,
    size: int,
    parts: Sequence[PartSpec],
    trust_roots: Sequence[Any],
) -> Statement:
    subjects = [Subject.of(bundle_name, digest)] + [
        Subject.of(f"part-{p.index:03d}", p.digest) for p in parts
    ]
    predicate: dict[str, Any] = {
        "bundle": bundle_name,
        "channel": channel,
        "size": size,
        "parts": [{"index": p.index, "size": p.size} for p in parts],
    }
    if trust_roots:
        predicate["trustRoots"] = list(trust_roots)
    return Statement(tuple(subjects), PARTS_PREDICATE_TYPE, predicate)


def _parse(envelope_bytes: bytes, keyids: tuple[str, ...], source: str) -> PartsManifest:
    envelope = dsse.Envelope.from_json(envelope_bytes, source=source)
    statement = Statement.from_bytes(envelope.payload, source=source)
    if statement.predicate_type != PARTS_PREDICATE_TYPE:
        raise PartError(f"{source}: not a parts manifest ({statement.predicate_type})")
    pred = statement.predicate
    try:
        name = str(pred["bundle"])
        channel = str(pred["channel"])
        size = int(pred["size"])
        sizes = {int(p["index"]): int(p["size"]) for p in pred["parts"]}
    except (KeyError, TypeError, ValueError) as e:
        raise PartError(f"{source}: malformed parts manifest: {e}") from e
    digests = {s.name: s.sha256 for s in statement.subjects}
    if name not in digests:
        raise PartError(f"{source}: the bundle {name!r} is not a subject of the parts manifest")
    parts = []
    for index in range(1, len(sizes) + 1):
        key = f"part-{index:03d}"
        if index not in sizes or key not in digests:
            raise PartError(f"{source}: parts manifest lacks part {index}")
        parts.append(PartSpec(index, digests[key], sizes[index]))
    if sum(p.size for p in parts) != size:
        raise PartError(f"{source}: part sizes do not add up to the bundle size {size}")
    roots = pred.get("trustRoots", [])
    if not isinstance(roots, list):
        raise PartError(f"{source}: predicate.trustRoots must be an array")
    return PartsManifest(
        name, channel, digests[name], size, tuple(parts), envelope_bytes, keyids, tuple(roots)
    )


def verify_manifest(envelope_bytes: bytes, trust: TrustRoot, *, source: str) -> PartsManifest:
    """Verify a parts manifest's signature against the trust root's bundle keys."""
    envelope = dsse.Envelope.from_json(envelope_bytes, source=source)
    try:
        verified = dsse.verify(
            envelope,
            trust.bundle_keys.values(),
            threshold=trust.bundle_threshold,
            payload_type=PAYLOAD_TYPE,
        )
    except SignatureError as e:
        raise BundleRefusedError(f"{source}: parts manifest: {e.message}") from e
    return _parse(envelope_bytes, verified.keyids, source)


def peek_manifest(envelope_bytes: bytes, *, source: str) -> PartsManifest:
    """Parse without verifying: only to choose a trust root. Never decide on it."""
    return _parse(envelope_bytes, (), source)


def split_bundle(
    bundle: Path,
    part_size: int,
    key: Signer,
    channel: str,
    trust_roots: Sequence[Any] = (),
) -> tuple[list[Path], Path]:
    """Split ``bundle`` into parts beside it, write the parts manifest, remove the bundle."""
    digest, size = Digest.of_file(bundle)
    count = max(1, -(-size // part_size))
    specs: list[PartSpec] = []
    with open(bundle, "rb") as fh:
        for index in range(1, count + 1):
            chunk_hasher = Hasher()
            remaining = min(part_size, size - (index - 1) * part_size)
            while remaining:
                data = fh.read(min(CHUNK, remaining))
                chunk_hasher.update(data)
                remaining -= len(data)
            specs.append(PartSpec(index, chunk_hasher.digest(), chunk_hasher.size))
    statement = _statement(bundle.name, channel, digest, size, specs, trust_roots)
    envelope = dsse.sign(statement.to_bytes(), PAYLOAD_TYPE, key).to_json()
    header = MAGIC + len(envelope).to_bytes(8, "big") + envelope
    paths = []
    with open(bundle, "rb") as fh:
        for spec in specs:
            path = bundle.with_name(part_name(bundle.name, spec.index, count))
            tmp = path.with_name(f".{path.name}.tmp")
            with open(tmp, "wb") as out:
                out.write(header)
                remaining = spec.size
                while remaining:
                    data = fh.read(min(CHUNK, remaining))
                    out.write(data)
                    remaining -= len(data)
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(path)
            paths.append(path)
    manifest_path = bundle.with_name(bundle.name + ".parts.json")
    manifest_path.write_bytes(envelope)
    bundle.unlink()
    return paths, manifest_path


def read_header(fh: BinaryIO, source: str) -> bytes:
    """Read a part file's header; the file is left at the start of the chunk."""
    magic = fh.read(len(MAGIC))
    if magic != MAGIC:
        raise PartError(f"{source}: not a Stella Ops bundle part (bad magic)")
    raw = fh.read(8)
    if len(raw) != 8:
        raise PartError(f"{source}: truncated part header")
    length = int.from_bytes(raw, "big")
    limits.check(PARTS_MANIFEST, length, f"{source}: part header")  # before reading it
    envelope = fh.read(length)
    if len(envelope) != length:
        raise PartError(f"{source}: truncated part header")
    return envelope


def is_part(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


@dataclass(frozen=True, slots=True)
class PartCheck:
    path: Path
    index: int
    count: int
    manifest: PartsManifest


def verify_part(path: Path, trust: TrustRoot) -> PartCheck:
    """One part, on its own: the manifest's signature, then the chunk's digest and size."""
    with open(path, "rb") as fh:
        manifest = verify_manifest(
            read_header(fh, printable(path.name)), trust, source=printable(path.name)
        )
        hasher = Hasher()
        while data := fh.read(CHUNK):
            hasher.update(data)
    spec = manifest.by_digest().get(hasher.digest())
    if spec is None or spec.size != hasher.size:
        raise PartError(
            f"{printable(path.name)}: content matches no part of the signed manifest of "
            f"{manifest.bundle_name}",
            hint="this part is corrupt; copy it again from the connected side",
        )
    return PartCheck(path, spec.index, manifest.count, manifest)


def first_header(paths: Sequence[Path]) -> tuple[bytes, str]:
    with open(paths[0], "rb") as fh:
        return read_header(fh, printable(paths[0].name)), printable(paths[0].name)


def assemble(paths: Iterable[Path], trust: TrustRoot) -> tuple[PartsManifest, io.RawIOBase]:
    """Verify a set of parts belongs together and is complete; return the manifest and a
    stream of the reassembled bundle that checks each chunk's digest as it is read."""
    files = list(paths)
    if not files:
        raise PartError("no part files given")
    envelope, source = first_header(files)
    manifest = verify_manifest(envelope, trust, source=source)
    index_of: dict[int, Path] = {}
    for path in files:
        with open(path, "rb") as fh:
            if read_header(fh, printable(path.name)) != envelope:
                raise PartError(
                    f"{printable(path.name)}: belongs to another bundle than {source}",
                    hint="import the parts of one bundle together",
                )
        m = _PART_NAME.search(path.name)
        if m is None or int(m.group(2)) != manifest.count:
            raise PartError(
                f"{printable(path.name)}: name does not say which of the {manifest.count} "
                "parts it is",
                hint="keep the part-NNN-of-MMM names the export wrote",
            )
        index = int(m.group(1))
        if index in index_of:
            raise PartError(f"{printable(path.name)}: part {index} given twice")
        index_of[index] = path
    missing = [i for i in range(1, manifest.count + 1) if i not in index_of]
    if missing:
        names = ", ".join(part_name(manifest.bundle_name, i, manifest.count) for i in missing)
        raise PartsIncompleteError(
            f"{manifest.bundle_name}: {len(missing)} of {manifest.count} parts missing: {names}",
            hint="bring every part; the others are kept until the set is complete",
        )
    ordered = [(spec, index_of[spec.index]) for spec in manifest.parts]
    return manifest, _ChunkedStream(ordered, manifest)


class _ChunkedStream(io.RawIOBase):
    """The bundle's bytes, read part after part, each chunk's size and digest checked at its
    end (a :class:`~bundles.bounded.Section` of its part file, never read past its size)."""

    def __init__(self, ordered: list[tuple[PartSpec, Path]], manifest: PartsManifest) -> None:
        self._queue = list(ordered)
        self._manifest = manifest
        self._part: Section | None = None
        self._whole = Hasher()

    def readable(self) -> bool:
        return True

    def _open_next(self) -> bool:
        if not self._queue:
            return False
        spec, path = self._queue.pop(0)
        name = printable(path.name)

        def corrupt(*_: object) -> PartError:
            return PartError(
                f"{name}: part {spec.index} is corrupt (its content does not match the signed "
                "parts manifest)",
                hint="copy that part again from the connected side",
            )

        fh = open(path, "rb")  # noqa: SIM115 - closed with its section
        try:
            read_header(fh, name)
        except BaseException:
            fh.close()
            raise
        self._part = Section(
            fh,
            spec.size,
            expected=spec.digest,
            short=corrupt,
            long=corrupt,
            mismatch=corrupt,
            to_eof=True,
            close_source=True,
        )
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        while True:
            if self._part is None and not self._open_next():
                if self._whole.digest() != self._manifest.bundle_digest:
                    raise PartError(
                        f"{self._manifest.bundle_name}: reassembled bundle digest differs"
                    )
                return 0
            assert self._part is not None
            count = self._part.readinto(buffer)
            if count:
                self._whole.update(memoryview(buffer)[:count])  # type: ignore[arg-type]
                return count
            self._part.close()
            self._part = None

    def close(self) -> None:
        if self._part is not None:
            self._part.close()
            self._part = None
        super().close()
