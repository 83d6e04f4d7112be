"""What one image scan found: the packages with their purls and evidence, the entry trace and
the unknowns, and the CycloneDX SBOM made of them.

These are values: the scanner (:mod:`appliance.scanner.service`) builds them, the SBOM renderer
(:mod:`appliance.scanner.cyclonedx`) and the reports read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from appliance.scanner.entrytrace import EntryTrace
from appliance.scanner.image import Layer
from appliance.scanner.model import AnalysisResult, Package, Unknown
from bundles.digest import Digest


@dataclass(frozen=True, slots=True)
class Evidence:
    """Where a package was found: the file, and the layer that introduced it."""

    path: str
    layer_index: int | None
    layer_digest: Digest | None
    diff_id: Digest | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "layer": self.layer_index,
            "layerDigest": str(self.layer_digest) if self.layer_digest else None,
            "diffID": str(self.diff_id) if self.diff_id else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Evidence:
        digest, diff_id = data["layerDigest"], data["diffID"]
        return cls(
            path=data["path"],
            layer_index=data["layer"],
            layer_digest=Digest.parse(digest) if digest else None,
            diff_id=Digest.parse(diff_id) if diff_id else None,
        )


@dataclass(frozen=True, slots=True)
class FoundPackage:
    """A package of the image with its purl and evidence."""

    package: Package
    purl: str
    evidence: tuple[Evidence, ...]

    def to_dict(self) -> dict[str, Any]:
        package = self.package.to_dict()
        package.pop("symbols", None)  # a digest set for matching, not for reading
        package.pop("calls", None)  # the call tree, read by matching only
        return {"purl": self.purl, **package, "evidence": [e.to_dict() for e in self.evidence]}


@dataclass(frozen=True, slots=True)
class ScanResult:
    """Everything one scan found. ``image`` describes the input; ``analysis`` is the merged
    analyzer output; ``packages`` pairs each of its packages with purl and evidence."""

    ref: str
    name: str
    tag: str | None
    manifest_digest: Digest | None
    index_digest: Digest | None
    config_digest: Digest | None
    config: dict[str, Any]
    platform: str | None
    platforms: tuple[str, ...]
    layers: tuple[Layer, ...]
    analysis: AnalysisResult
    packages: tuple[FoundPackage, ...]
    entry_trace: EntryTrace
    unknowns: tuple[Unknown, ...]
    analyzers: dict[str, int]
    cached_layers: tuple[Digest, ...] = ()
    sbom: bytes = field(default=b"", compare=False, repr=False)
    """The CycloneDX 1.6 SBOM of this result, canonical JSON, filled in by the scanner once the
    result is whole (:func:`appliance.scanner.service.build_result`)."""

    def sbom_bytes(self) -> bytes:
        """The CycloneDX 1.6 SBOM: the same image gives the same bytes."""
        return self.sbom

    def sbom_digest(self) -> Digest:
        return Digest.of_bytes(self.sbom_bytes())

    def inventory(self) -> dict[str, Any]:
        """The ``--format json`` document: image, packages with evidence, unknowns, trace."""
        return {
            "image": self.image_dict(),
            "os": self.analysis.os.to_dict() if self.analysis.os else None,
            "packages": [p.to_dict() for p in self.packages],
            "unknowns": [u.to_dict() for u in self.unknowns],
            "entryTrace": self.entry_trace.to_dict(),
            "analyzers": dict(sorted(self.analyzers.items())),
            "sbomDigest": str(self.sbom_digest()),
        }

    def image_dict(self) -> dict[str, Any]:
        return {
            "ref": self.ref,
            "name": self.name,
            "tag": self.tag,
            "digest": str(self.manifest_digest) if self.manifest_digest else None,
            "index": str(self.index_digest) if self.index_digest else None,
            "config": str(self.config_digest) if self.config_digest else None,
            "platform": self.platform,
            "otherPlatforms": [p for p in self.platforms if p != self.platform],
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def summary(self) -> dict[str, Any]:
        """The ``--json`` object of ``stella scan``: digests and counts."""
        counts: dict[str, int] = {}
        for found in self.packages:
            counts[found.package.type.value] = counts.get(found.package.type.value, 0) + 1
        return {
            "image": self.image_dict(),
            "os": self.analysis.os.distro if self.analysis.os else None,
            "packages": len(self.packages),
            "byType": dict(sorted(counts.items())),
            "unknowns": len(self.unknowns),
            "reachable": len(self.entry_trace.reachable),
            "sbomDigest": str(self.sbom_digest()),
            "cachedLayers": len(self.cached_layers),
        }
