"""Knowledge snapshots: the content-addressed store and diffing (the manifest model itself is
the shared contract in :mod:`bundles.snapshot`).

Layout under the mirror workspace::

    datasets/<hex>.jsonl             canonical dataset bytes; <hex> = SHA-256 of the file
    snapshots/<hex>/manifest.json    canonical manifest; <hex> = SHA-256 of the file
    snapshots/<hex>/provenance.json  volatile facts (fetch times, URLs, ETag, Last-Modified,
                                     error messages, build time); NOT part of the digest
    snapshots/log.jsonl              build log (digest + build time), for ``list`` and ``latest``

The manifest holds only facts about upstream content and its normalization: per source its
kind, status, normalizer version, the SHA-256 and size of the upstream bytes, and what was
skipped (unknowns, ignored members); per dataset its name, type, source, digest, record count,
byte size and upstream metadata (e.g. KEV catalog version, EPSS score date). Anything that
varies with the wall clock or the machine lives in ``provenance.json``, so the same upstream
bytes always give the same snapshot digest.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from bundles import canonical
from bundles.digest import Digest
from bundles.errors import CanonicalJSONError, DigestError
from bundles.files import atomic_write
from bundles.snapshot import (
    SCHEMA,
    DatasetEntry,
    Manifest,
    SnapshotFormatError,
    SourceEntry,
    SourceStatus,
)
from mirror.errors import SnapshotError

__all__ = [
    "SCHEMA",
    "DatasetChange",
    "DatasetDiff",
    "DatasetEntry",
    "Manifest",
    "SnapshotDiff",
    "SnapshotInfo",
    "SnapshotStore",
    "SourceEntry",
    "SourceStatus",
    "diff_datasets",
    "diff_snapshots",
]

_PREFIX = re.compile(r"(?:sha256:)?([0-9a-f]{4,64})")


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    digest: Digest
    built_at: str


def write_file(path: Path, data: bytes) -> None:
    """Write a workspace file atomically and durably, its directory made if need be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, data)


class SnapshotStore:
    """Content-addressed datasets and snapshots under one workspace directory.

    Readers (the bundle exporter) need only :meth:`resolve`, :meth:`manifest`,
    :meth:`manifest_bytes` and :meth:`dataset_bytes`/:meth:`dataset_path`; every read is
    checked against its digest.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.datasets_dir = root / "datasets"
        self.snapshots_dir = root / "snapshots"

    # -- datasets ------------------------------------------------------------------------------

    def dataset_path(self, digest: Digest) -> Path:
        return self.datasets_dir / f"{digest.hex}.jsonl"

    def put_dataset(self, data: bytes) -> Digest:
        digest = Digest.of_bytes(data)
        path = self.dataset_path(digest)
        if not path.exists():
            write_file(path, data)
        return digest

    def has_dataset(self, digest: Digest) -> bool:
        return self.dataset_path(digest).is_file()

    def dataset_bytes(self, digest: Digest) -> bytes:
        path = self.dataset_path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise SnapshotError(
                f"dataset {digest} is missing from {self.datasets_dir}",
                hint="run 'stella-mirror sync' again to re-create it",
            ) from None
        try:
            digest.verify(data)
        except DigestError as e:
            raise SnapshotError(f"{path}: {e.message}", hint="delete it and sync again") from e
        return data

    def records(self, digest: Digest) -> Iterator[dict[str, Any]]:
        """The dataset's records in id order."""
        for line in self.dataset_bytes(digest).splitlines():
            yield json.loads(line)

    # -- snapshots -----------------------------------------------------------------------------

    def manifest_path(self, digest: Digest) -> Path:
        return self.snapshots_dir / digest.hex / "manifest.json"

    def put(self, manifest: Manifest, provenance: Mapping[str, Any], built_at: str) -> Digest:
        """Store a snapshot (idempotent: an existing snapshot keeps its first provenance) and
        append it to the build log. Every dataset it names must already be stored."""
        for d in manifest.datasets:
            if not self.has_dataset(d.digest):
                raise SnapshotError(f"dataset {d.name} ({d.digest}) is not in the store")
        data = manifest.canonical()
        digest = Digest.of_bytes(data)
        path = self.manifest_path(digest)
        if not path.exists():
            write_file(path.with_name("provenance.json"), canonical.dumps(dict(provenance)))
            write_file(path, data)
        self.snapshots_dir.mkdir(parents=True, exist_ok=True)
        with open(self.snapshots_dir / "log.jsonl", "ab") as log:
            log.write(canonical.dumps({"digest": str(digest), "built_at": built_at}) + b"\n")
        return digest

    def manifest_bytes(self, digest: Digest) -> bytes:
        path = self.manifest_path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise SnapshotError(f"snapshot {digest} not found in {self.snapshots_dir}") from None
        try:
            digest.verify(data)
        except DigestError as e:
            raise SnapshotError(f"{path}: {e.message}", hint="the store is corrupt") from e
        return data

    def manifest(self, digest: Digest) -> Manifest:
        try:
            return Manifest.from_bytes(
                self.manifest_bytes(digest), source=str(self.manifest_path(digest))
            )
        except SnapshotFormatError as e:
            raise SnapshotError(e.message, hint=e.hint) from e

    def provenance(self, digest: Digest) -> dict[str, Any]:
        path = self.manifest_path(digest).with_name("provenance.json")
        try:
            doc = canonical.load_file(path)
        except CanonicalJSONError:
            return {}
        return doc if isinstance(doc, dict) else {}

    def list(self) -> list[SnapshotInfo]:
        """Snapshots in the order they were (last) built, oldest first."""
        log = self.snapshots_dir / "log.jsonl"
        latest: dict[str, str] = {}
        if log.is_file():
            for line in log.read_bytes().splitlines():
                try:
                    entry = json.loads(line)
                    latest.pop(entry["digest"], None)
                    latest[entry["digest"]] = entry["built_at"]
                except (ValueError, KeyError, TypeError):
                    continue  # a torn last line after a crash
        return [
            SnapshotInfo(Digest.parse(d), t)
            for d, t in latest.items()
            if self.manifest_path(Digest.parse(d)).is_file()
        ]

    def resolve(self, ref: str) -> Digest:
        """``latest``, ``latest~N`` (the N-th built before it), a full ``sha256:<hex>`` or a
        unique hex prefix (4+ characters)."""
        latest = re.fullmatch(r"latest(?:~(\d+))?", ref.strip())
        if latest:
            back = int(latest.group(1) or 0)
            snaps = self.list()
            if not snaps:
                raise SnapshotError(
                    "no snapshot has been built yet", hint="run 'stella-mirror snapshot build'"
                )
            if back >= len(snaps):
                raise SnapshotError(
                    f"{ref!r}: only {len(snaps)} snapshots have been built",
                    hint="see 'stella-mirror snapshot list'",
                )
            return snaps[-1 - back].digest
        m = _PREFIX.fullmatch(ref.strip().lower())
        if not m:
            raise SnapshotError(
                f"{ref!r} is not a snapshot reference",
                hint="use a digest, a unique hex prefix of at least 4 characters, 'latest' or "
                "'latest~N'",
            )
        prefix = m.group(1)
        found = (
            sorted(p.name for p in self.snapshots_dir.iterdir() if p.name.startswith(prefix))
            if self.snapshots_dir.is_dir()
            else []
        )
        found = [h for h in found if (self.snapshots_dir / h / "manifest.json").is_file()]
        if not found:
            raise SnapshotError(
                f"no snapshot matches {ref!r}", hint="see 'stella-mirror snapshot list'"
            )
        if len(found) > 1:
            raise SnapshotError(
                f"snapshot reference {ref!r} is ambiguous ({len(found)} snapshots match)",
                hint="give more hex characters",
            )
        return Digest(found[0])


# -- diff ------------------------------------------------------------------------------------


class DatasetChange(StrEnum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class DatasetDiff:
    """Record ids added, changed (same id, different bytes) and removed in one dataset."""

    name: str
    change: DatasetChange
    base: Digest | None
    target: Digest | None
    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "change": self.change.value,
            "base": str(self.base) if self.base else None,
            "target": str(self.target) if self.target else None,
            "added": list(self.added),
            "changed": list(self.changed),
            "removed": list(self.removed),
        }


@dataclass(frozen=True, slots=True)
class SnapshotDiff:
    base: Digest
    target: Digest
    datasets: tuple[DatasetDiff, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "base": str(self.base),
            "target": str(self.target),
            "datasets": [d.to_json() for d in self.datasets],
        }


def _lines_by_id(data: bytes) -> Iterator[tuple[str, bytes]]:
    for line in data.splitlines():
        yield json.loads(line)["id"], line


def diff_datasets(name: str, base: bytes | None, target: bytes | None) -> DatasetDiff:
    """Merge-join two canonical datasets (both sorted by id) into a :class:`DatasetDiff`."""
    b_digest = Digest.of_bytes(base) if base is not None else None
    t_digest = Digest.of_bytes(target) if target is not None else None
    old = dict(_lines_by_id(base)) if base is not None else {}
    new = dict(_lines_by_id(target)) if target is not None else {}
    added = tuple(sorted(k for k in new if k not in old))
    removed = tuple(sorted(k for k in old if k not in new))
    changed = tuple(sorted(k for k in new if k in old and old[k] != new[k]))
    if base is None:
        change = DatasetChange.ADDED
    elif target is None:
        change = DatasetChange.REMOVED
    else:
        change = DatasetChange.UNCHANGED if b_digest == t_digest else DatasetChange.CHANGED
    return DatasetDiff(name, change, b_digest, t_digest, added, changed, removed)


def diff_snapshots(store: SnapshotStore, base: Digest, target: Digest) -> SnapshotDiff:
    """What changed from ``base`` to ``target``, per dataset name. Datasets with equal digests
    are not read."""
    a, b = store.manifest(base), store.manifest(target)
    old = {d.name: d for d in a.datasets}
    new = {d.name: d for d in b.datasets}
    out = []
    for name in sorted(set(old) | set(new)):
        o, n = old.get(name), new.get(name)
        if o is not None and n is not None and o.digest == n.digest:
            out.append(DatasetDiff(name, DatasetChange.UNCHANGED, o.digest, n.digest))
            continue
        out.append(
            diff_datasets(
                name,
                store.dataset_bytes(o.digest) if o else None,
                store.dataset_bytes(n.digest) if n else None,
            )
        )
    return SnapshotDiff(base, target, tuple(out))
