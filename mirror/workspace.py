"""The mirror workspace (``<home>/mirror``): per-source state, kept upstream bytes and the
snapshot store.

``feeds/<source>/state.json`` records the last good result of a source (upstream digest and
validators, its dataset and unknowns) and the last attempt (time, status, error). A failed
attempt never touches the last good result. ``feeds/sources.json`` is the list of sources the
last sync was configured with; a snapshot covers exactly those.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bundles import canonical
from bundles.digest import Digest
from bundles.errors import CanonicalJSONError
from mirror.config import SourceConfig, SourceKind
from mirror.errors import FailureKind, SnapshotError
from mirror.fetch import Validators
from mirror.snapshot import SnapshotStore, write_file
from mirror.sources.interface import DatasetType, Unknown


@dataclass(frozen=True, slots=True)
class GoodResult:
    """The last successful fetch + parse of one source."""

    upstream: Digest
    upstream_size: int
    validators: Validators
    fetched_at: str
    normalizer: int
    dataset_type: DatasetType
    dataset: Digest
    records: int
    size: int
    duplicates: int
    meta: dict[str, str] = field(default_factory=dict)
    unknowns: tuple[Unknown, ...] = ()
    ignored: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "upstream": str(self.upstream),
            "upstream_size": self.upstream_size,
            "validators": self.validators.to_json(),
            "fetched_at": self.fetched_at,
            "normalizer": self.normalizer,
            "dataset_type": self.dataset_type.value,
            "dataset": str(self.dataset),
            "records": self.records,
            "size": self.size,
            "duplicates": self.duplicates,
            "meta": self.meta,
            "unknowns": [u.to_json() for u in self.unknowns],
            "ignored": list(self.ignored),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> GoodResult:
        return cls(
            upstream=Digest.parse(d["upstream"]),
            upstream_size=int(d["upstream_size"]),
            validators=Validators.from_json(d.get("validators")),
            fetched_at=str(d["fetched_at"]),
            normalizer=int(d["normalizer"]),
            dataset_type=DatasetType(d["dataset_type"]),
            dataset=Digest.parse(d["dataset"]),
            records=int(d["records"]),
            size=int(d["size"]),
            duplicates=int(d["duplicates"]),
            meta={str(k): str(v) for k, v in d.get("meta", {}).items()},
            unknowns=tuple(Unknown(u["item"], u["reason"]) for u in d.get("unknowns", [])),
            ignored=tuple(d.get("ignored", [])),
        )


@dataclass(frozen=True, slots=True)
class Attempt:
    at: str
    ok: bool
    failure: FailureKind | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "ok": self.ok,
            "failure": self.failure.value if self.failure else None,
            "error": self.error,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Attempt:
        return cls(
            at=str(d["at"]),
            ok=bool(d["ok"]),
            failure=FailureKind(d["failure"]) if d.get("failure") else None,
            error=d.get("error"),
        )


@dataclass(frozen=True, slots=True)
class SourceState:
    name: str
    kind: SourceKind
    location: str
    good: GoodResult | None
    last: Attempt | None

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind.value,
            "location": self.location,
            "good": self.good.to_json() if self.good else None,
            "last": self.last.to_json() if self.last else None,
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SourceState:
        return cls(
            name=str(d["name"]),
            kind=SourceKind(d["kind"]),
            location=str(d["location"]),
            good=GoodResult.from_json(d["good"]) if d.get("good") else None,
            last=Attempt.from_json(d["last"]) if d.get("last") else None,
        )


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.feeds = root / "feeds"
        self.store = SnapshotStore(root)

    def source_dir(self, name: str) -> Path:
        return self.feeds / name

    def upstream_path(self, name: str) -> Path:
        """Where the last good upstream bytes of a URL source are kept."""
        return self.source_dir(name) / "upstream"

    def state(self, name: str) -> SourceState | None:
        path = self.source_dir(name) / "state.json"
        if not path.is_file():
            return None
        try:
            return SourceState.from_json(canonical.load_file(path))
        except (CanonicalJSONError, KeyError, TypeError, ValueError) as e:
            raise SnapshotError(
                f"{path}: unreadable source state: {e}",
                hint="delete the file and sync the source again",
            ) from e

    def save_state(self, state: SourceState) -> None:
        write_file(self.source_dir(state.name) / "state.json", canonical.dumps(state.to_json()))

    def configured(self) -> list[tuple[str, SourceKind]]:
        path = self.feeds / "sources.json"
        if not path.is_file():
            return []
        doc = json.loads(path.read_text())
        return [(str(s["name"]), SourceKind(s["kind"])) for s in doc]

    def save_configured(self, sources: tuple[SourceConfig, ...]) -> None:
        listing = sorted(({"name": s.name, "kind": s.kind.value} for s in sources), key=str)
        write_file(self.feeds / "sources.json", canonical.dumps(listing))
