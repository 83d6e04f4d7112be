"""The knowledge snapshot manifest: the contract between the mirror that builds a snapshot and
the appliance that imports it (shared/DESIGN.md §4).

A snapshot is a set of datasets. A dataset is canonical JSON lines: one record per line, each
line RFC 8785 canonical JSON, sorted by the record's ``id``; its digest is the SHA-256 of those
bytes. The manifest lists every source (kind, status, normalizer version, the digest of the
upstream bytes, what was skipped and why) and every dataset (name, type, source, digest,
counts, upstream metadata such as the KEV catalog version). The snapshot digest is the SHA-256
of the canonical manifest. Nothing in the manifest depends on the wall clock or the machine,
so the same upstream bytes always give the same snapshot digest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from bundles import canonical
from bundles.digest import Digest
from bundles.errors import CanonicalJSONError, DigestError, StellaError

SCHEMA: Final = "https://stella-ops.org/schemas/knowledge-snapshot/v1"


class SnapshotFormatError(StellaError):
    """A snapshot manifest or dataset is malformed."""


class SourceKind(StrEnum):
    """The feed formats the mirror understands (shared/DESIGN.md §3)."""

    OSV = "osv"
    DEBIAN_TRACKER = "debian-tracker"
    ALPINE_SECDB = "alpine-secdb"
    KEV = "kev"
    EPSS = "epss"
    OPENVEX = "openvex"
    POLICY = "policy"
    RUBYSEC = "rubysec"
    NPM_LEGACY = "npm-legacy"
    # distribution feeds (issue 17)
    REDHAT_CSAF = "redhat-csaf"
    ROCKY_OSV = "rocky-osv"
    ALMA_OSV = "alma-osv"
    UBUNTU_OSV = "ubuntu-osv"
    WOLFI_SECDB = "wolfi-secdb"
    CHAINGUARD_SECDB = "chainguard-secdb"
    # severity feeds (issue 17)
    GHSA = "ghsa"
    CVE = "cve"
    # vulnerable modules and functions of advisories, curated (issue 25)
    REACHABILITY_CURATED = "reachability-curated"


class DatasetType(StrEnum):
    """What the records of a dataset are; consumers pick their reader by it."""

    OSV = "osv"  # OSV-schema advisories (native or OSV-shaped distro/legacy records)
    KEV = "kev"  # CISA KEV entries keyed by CVE
    EPSS = "epss"  # EPSS scores keyed by CVE (decimal strings as published)
    OPENVEX = "openvex"  # OpenVEX documents keyed by @id
    POLICY = "policy"  # Rego policy bundle files keyed by path
    CVE = "cve"  # CVSS ratings of a CVE by who gave them (CNA, ADP, NVD), keyed by CVE
    # vulnerable modules and functions of advisories, curated, keyed by advisory id
    REACHABILITY = "reachability"


class SourceStatus(StrEnum):
    """``ok``: refreshed by the last sync; ``stale``: the last sync failed, the last good data
    is used; ``failed``: never synced successfully, the source contributes no dataset."""

    OK = "ok"
    STALE = "stale"
    FAILED = "failed"


class FailureKind(StrEnum):
    """Why a source could not be refreshed; stable words recorded in the snapshot manifest."""

    HTTP_STATUS = "http-status"
    CONNECTION = "connection"
    TRUNCATED = "truncated"
    CHECKSUM = "checksum-mismatch"
    SIZE_LIMIT = "size-limit"
    MISSING = "missing"
    PARSE = "parse"
    NEVER_SYNCED = "never-synced"


@dataclass(frozen=True, slots=True, order=True)
class Unknown:
    """A record (or line, or member) that was skipped, and why."""

    item: str
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"item": self.item, "reason": self.reason}


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise TypeError(f"field {key!r} must be a string")
    return value


def _int(data: Mapping[str, Any], key: str) -> int:
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"field {key!r} must be an integer")
    return value


@dataclass(frozen=True, slots=True)
class DatasetEntry:
    name: str
    type: DatasetType
    source: str
    digest: Digest
    records: int
    size: int
    meta: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.value,
            "source": self.source,
            "digest": str(self.digest),
            "records": self.records,
            "size": self.size,
            "meta": dict(sorted(self.meta.items())),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> DatasetEntry:
        return cls(
            name=_str(data, "name"),
            type=DatasetType(_str(data, "type")),
            source=_str(data, "source"),
            digest=Digest.parse(_str(data, "digest")),
            records=_int(data, "records"),
            size=_int(data, "size"),
            meta={str(k): str(v) for k, v in dict(data.get("meta", {})).items()},
        )


@dataclass(frozen=True, slots=True)
class SourceEntry:
    name: str
    kind: SourceKind
    status: SourceStatus
    normalizer: int
    upstream: Digest | None = None
    upstream_size: int | None = None
    failure: FailureKind | None = None
    duplicates: int = 0
    unknowns: tuple[Unknown, ...] = ()
    ignored: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "kind": self.kind.value,
            "status": self.status.value,
            "normalizer": self.normalizer,
            "duplicates": self.duplicates,
            "unknowns": [u.to_json() for u in self.unknowns],
            "ignored": list(self.ignored),
        }
        if self.upstream is not None:
            out["upstream"] = {"sha256": str(self.upstream), "size": self.upstream_size}
        if self.failure is not None:
            out["failure"] = self.failure.value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> SourceEntry:
        up = data.get("upstream")
        return cls(
            name=_str(data, "name"),
            kind=SourceKind(_str(data, "kind")),
            status=SourceStatus(_str(data, "status")),
            normalizer=_int(data, "normalizer"),
            upstream=Digest.parse(up["sha256"]) if isinstance(up, dict) else None,
            upstream_size=int(up["size"]) if isinstance(up, dict) else None,
            failure=FailureKind(data["failure"]) if "failure" in data else None,
            duplicates=_int(data, "duplicates"),
            unknowns=tuple(Unknown(u["item"], u["reason"]) for u in data.get("unknowns", [])),
            ignored=tuple(str(i) for i in data.get("ignored", [])),
        )


@dataclass(frozen=True, slots=True)
class Manifest:
    """What a snapshot is: its sources and datasets, both sorted by name."""

    sources: tuple[SourceEntry, ...]
    datasets: tuple[DatasetEntry, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", tuple(sorted(self.sources, key=lambda s: s.name)))
        object.__setattr__(self, "datasets", tuple(sorted(self.datasets, key=lambda d: d.name)))
        names = [d.name for d in self.datasets]
        if len(set(names)) != len(names):
            raise SnapshotFormatError("snapshot manifest names a dataset twice")

    def to_json(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "sources": [s.to_json() for s in self.sources],
            "datasets": [d.to_json() for d in self.datasets],
        }

    def canonical(self) -> bytes:
        return canonical.dumps(self.to_json())

    @property
    def digest(self) -> Digest:
        return Digest.of_bytes(self.canonical())

    def dataset(self, name: str) -> DatasetEntry:
        for d in self.datasets:
            if d.name == name:
                return d
        raise SnapshotFormatError(f"snapshot has no dataset {name!r}")

    @property
    def unknowns(self) -> int:
        return sum(len(s.unknowns) for s in self.sources)

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str = "manifest") -> Manifest:
        """Parse a manifest; it must be in canonical form, so its digest is unambiguous."""
        try:
            doc = canonical.loads(data, source=source)
        except CanonicalJSONError as e:
            raise SnapshotFormatError(e.message) from e
        if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
            raise SnapshotFormatError(f"{source}: not a knowledge snapshot manifest ({SCHEMA})")
        try:
            manifest = cls(
                sources=tuple(SourceEntry.from_json(s) for s in doc["sources"]),
                datasets=tuple(DatasetEntry.from_json(d) for d in doc["datasets"]),
            )
        except (KeyError, TypeError, ValueError, DigestError) as e:
            raise SnapshotFormatError(f"{source}: malformed manifest: {e}") from e
        if manifest.canonical() != data:
            raise SnapshotFormatError(
                f"{source}: manifest is not in canonical form or has unknown fields",
                hint="a manifest must be exactly the canonical JSON its digest was taken over",
            )
        return manifest


def record_id(line: bytes, *, source: str = "dataset") -> str:
    """The ``id`` of one canonical dataset line."""
    try:
        doc = canonical.loads(line, source=source)
    except CanonicalJSONError as e:
        raise SnapshotFormatError(e.message) from e
    rid = doc.get("id") if isinstance(doc, dict) else None
    if not isinstance(rid, str) or not rid:
        raise SnapshotFormatError(f"{source}: a dataset line has no string id")
    return rid


def build_dataset(
    name: str,
    dtype: DatasetType,
    records: Iterable[Mapping[str, Any]],
    *,
    source: str | None = None,
) -> tuple[DatasetEntry, bytes]:
    """A dataset's canonical bytes (one canonical line per record, sorted by id) and its
    manifest entry. Ids must be unique."""
    by_id: dict[str, Mapping[str, Any]] = {}
    for record in records:
        rid = str(record["id"])
        if rid in by_id:
            raise SnapshotFormatError(f"dataset {name}: record id {rid!r} appears twice")
        by_id[rid] = record
    data = canonical.dumps_lines(by_id[k] for k in sorted(by_id))
    entry = DatasetEntry(name, dtype, source or name, Digest.of_bytes(data), len(by_id), len(data))
    return entry, data
