"""What one layer yields: its entries (:class:`Entry`) and the analyzers' findings
(:class:`LayerRecord`), and the caps on a layer's size.

A record depends on the layer's bytes and the analyzers' versions only, never on the image it
came from, so it is cached by layer digest (:mod:`appliance.scanner.cache`) and reused by every
image that shares the layer. It is made by the walk (:mod:`appliance.scanner.walk`); the
records of an image's layers are squashed into one file system by
:mod:`appliance.scanner.squash`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from appliance.scanner.model import AnalysisResult, Unknown
from bundles import limits
from bundles.errors import StellaError
from bundles.limits import Unit

LAYER_BYTES: Final = limits.cap(
    "scan.layer_bytes", 16 << 30, Unit.BYTES, "the uncompressed tar of one image layer"
)
LAYER_RATIO: Final = limits.cap(
    "scan.layer_ratio",
    200,
    Unit.RATIO,
    "the expansion of a compressed layer (uncompressed bytes per compressed byte)",
)
IMAGE_BYTES: Final = limits.cap(
    "scan.image_bytes", 64 << 30, Unit.BYTES, "the uncompressed layers of one image together"
)

WALK_VERSION: Final = 3
"""Bumped whenever what a walk records changes; part of every layer-cache key."""


class LayerError(StellaError):
    """A layer cannot be read as a tar stream (damaged, truncated, unknown compression)."""


class EntryKind(enum.StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    OTHER = "other"  # devices, fifos


_KINDS: Final = {kind.value: kind for kind in EntryKind}


@dataclass(frozen=True, slots=True)
class Entry:
    """One file-system entry a layer adds or changes. ``link`` is a symlink's target as
    written, or a hard link's target path (root-relative)."""

    path: str
    kind: EntryKind
    mode: int
    size: int = 0
    link: str = ""

    def to_list(self) -> list[Any]:
        return [self.path, self.kind.value, self.mode, self.size, self.link]

    @classmethod
    def from_list(cls, item: list[Any]) -> Entry:
        return cls(item[0], _KINDS[item[1]], item[2], item[3], item[4])


@dataclass(frozen=True, slots=True)
class LayerRecord:
    """Everything a scan needs from one layer, without reading it again.

    ``results``: path -> analyzer name -> that analyzer's partial result for the file.
    ``scripts``: executable files starting with ``#!`` (small ones), for the entry trace.
    ``imports``: Python source files outside the standard library -> the modules they import.
    ``pysource``: the same files' text (None: over ``scan.python_facts_bytes``), which the
    function-level trace parses for the files the entrypoint reaches.
    """

    entries: tuple[Entry, ...] = ()
    whiteouts: tuple[str, ...] = ()
    opaque: tuple[str, ...] = ()
    results: Mapping[str, Mapping[str, AnalysisResult]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    scripts: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    imports: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    pysource: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))
    unknowns: tuple[Unknown, ...] = ()
    size: int = 0  # uncompressed bytes of the layer's tar

    def to_dict(self) -> dict[str, Any]:
        return {
            "entries": [e.to_list() for e in self.entries],
            "whiteouts": list(self.whiteouts),
            "opaque": list(self.opaque),
            "results": {
                path: {name: r.to_dict() for name, r in sorted(by.items())}
                for path, by in sorted(self.results.items())
            },
            "scripts": dict(sorted(self.scripts.items())),
            "imports": {p: list(v) for p, v in sorted(self.imports.items())},
            "pysource": dict(sorted(self.pysource.items())),
            "unknowns": [u.to_dict() for u in self.unknowns],
            "size": self.size,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerRecord:
        return cls(
            entries=tuple(Entry.from_list(e) for e in data["entries"]),
            whiteouts=tuple(data["whiteouts"]),
            opaque=tuple(data["opaque"]),
            results={
                path: {name: AnalysisResult.from_dict(r) for name, r in by.items()}
                for path, by in data["results"].items()
            },
            scripts=dict(data["scripts"]),
            imports={p: tuple(v) for p, v in data["imports"].items()},
            pysource=dict(data.get("pysource", {})),
            unknowns=tuple(Unknown.from_dict(u) for u in data["unknowns"]),
            size=int(data.get("size", 0)),
        )
