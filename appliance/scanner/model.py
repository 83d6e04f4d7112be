"""What the scanner finds: packages, the operating system, and what it could not read.

These values are produced per file by the analyzers, cached per layer, merged per image and
written into SBOMs, so they are frozen, ordered deterministically and round-trip through plain
JSON-able dicts (:meth:`AnalysisResult.to_dict` / :meth:`AnalysisResult.from_dict`) without loss.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any


class PackageType(enum.StrEnum):
    """The ecosystem a package belongs to; also its purl type."""

    DEB = "deb"
    APK = "apk"
    RPM = "rpm"
    PYPI = "pypi"
    NPM = "npm"
    GOLANG = "golang"
    MAVEN = "maven"
    GEM = "gem"
    COMPOSER = "composer"
    NUGET = "nuget"


@dataclass(frozen=True, slots=True)
class Package:
    """One installed package or library.

    ``name`` is the ecosystem's own full name: ``@scope/name`` for npm, ``group:artifact`` for
    Maven, ``vendor/project`` for Composer, the module path for Go. ``version`` never carries
    the epoch (deb, rpm) nor the rpm release; :attr:`full_version` rebuilds the string the
    ecosystem compares. ``source_version`` is the source package's version as its ecosystem
    writes it (deb: ``[epoch:]upstream[-revision]``; rpm: ``version-release``).
    ``locations`` are the image-root-relative paths the package was read from;
    ``installed_files`` the paths it owns, when the database says so. ``symbols`` is the
    compact set of functions the file at ``locations`` links from this package (Go binaries,
    :mod:`appliance.scanner.analyzers.gosymbols`); empty when it was not read. ``calls`` is
    that file's call tree for these functions (:mod:`appliance.scanner.analyzers.gocalls`):
    which are reached from ``main`` and how, or why the call graph was not read.
    """

    type: PackageType
    name: str
    version: str
    epoch: int | None = None
    release: str | None = None
    arch: str | None = None
    source_name: str | None = None
    source_version: str | None = None
    licenses: tuple[str, ...] = ()
    qualifiers: tuple[tuple[str, str], ...] = ()
    locations: tuple[str, ...] = ()
    installed_files: tuple[str, ...] = ()
    dependencies: tuple[str, ...] = ()
    symbols: str = ""
    calls: str = ""

    @property
    def full_version(self) -> str:
        """The version string the ecosystem's version scheme compares."""
        text = self.version
        if self.type is PackageType.RPM and self.release:
            text = f"{text}-{self.release}"
        if self.epoch and self.type in (PackageType.DEB, PackageType.RPM, PackageType.APK):
            text = f"{self.epoch}:{text}"
        return text

    def sort_key(self) -> tuple[str, str, str, str, str, _Tie]:
        """A total order (``epoch`` may be None, so dataclass ordering would not do): the
        packages' ``repr`` decides last, made only for packages that tie on the rest."""
        return (
            self.type.value,
            self.name,
            self.full_version,
            self.arch or "",
            "\0".join(self.locations),
            _Tie(self),
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type.value,
            "name": self.name,
            "version": self.version,
            "epoch": self.epoch,
            "release": self.release,
            "arch": self.arch,
            "source_name": self.source_name,
            "source_version": self.source_version,
            "licenses": list(self.licenses),
            "qualifiers": [list(q) for q in self.qualifiers],
            "locations": list(self.locations),
            "installed_files": list(self.installed_files),
            "dependencies": list(self.dependencies),
        }
        if self.symbols:
            out["symbols"] = self.symbols
        if self.calls:
            out["calls"] = self.calls
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Package:
        return cls(
            type=PackageType(data["type"]),
            name=data["name"],
            version=data["version"],
            epoch=data.get("epoch"),
            release=data.get("release"),
            arch=data.get("arch"),
            source_name=data.get("source_name"),
            source_version=data.get("source_version"),
            licenses=tuple(data.get("licenses", ())),
            qualifiers=tuple((k, v) for k, v in data.get("qualifiers", ())),
            locations=tuple(data.get("locations", ())),
            installed_files=tuple(data.get("installed_files", ())),
            dependencies=tuple(data.get("dependencies", ())),
            symbols=data.get("symbols", ""),
            calls=data.get("calls", ""),
        )


@dataclass(frozen=True, slots=True)
class OSInfo:
    """The distribution, from os-release. ``id`` is os-release's ``ID`` (``debian``,
    ``alpine``, ``rhel``...)."""

    id: str
    version_id: str | None = None
    version_codename: str | None = None
    pretty_name: str | None = None
    name: str | None = None
    id_like: tuple[str, ...] = ()

    @property
    def distro(self) -> str:
        """The purl ``distro`` qualifier value, e.g. ``debian-12``."""
        return f"{self.id}-{self.version_id}" if self.version_id else self.id

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "version_id": self.version_id,
            "version_codename": self.version_codename,
            "pretty_name": self.pretty_name,
            "name": self.name,
            "id_like": list(self.id_like),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OSInfo:
        return cls(
            id=data["id"],
            version_id=data.get("version_id"),
            version_codename=data.get("version_codename"),
            pretty_name=data.get("pretty_name"),
            name=data.get("name"),
            id_like=tuple(data.get("id_like", ())),
        )


@dataclass(frozen=True, slots=True, order=True)
class Unknown:
    """A file that was meant to be read but could not be, and why. Never dropped."""

    path: str
    reason: str
    analyzer: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "reason": self.reason, "analyzer": self.analyzer}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Unknown:
        return cls(path=data["path"], reason=data["reason"], analyzer=data.get("analyzer", ""))


@dataclass(frozen=True, slots=True, order=True)
class FileOwnership:
    """A partial result: the files a package owns, read from a file other than the one that
    names the package (dpkg ``info/*.list``, Python ``RECORD``). ``owner`` is a key only the
    producing analyzer interprets in its merge step."""

    owner: str
    files: tuple[str, ...]
    location: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"owner": self.owner, "files": list(self.files), "location": self.location}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileOwnership:
        return cls(
            owner=data["owner"], files=tuple(data["files"]), location=data.get("location", "")
        )


@dataclass(frozen=True, slots=True)
class AnalysisResult:
    """What one analyzer found in one file, or, after merging, in a whole image."""

    packages: tuple[Package, ...] = ()
    os: OSInfo | None = None
    unknowns: tuple[Unknown, ...] = ()
    ownership: tuple[FileOwnership, ...] = ()

    def is_empty(self) -> bool:
        return not (self.packages or self.os or self.unknowns or self.ownership)

    def sorted(self) -> AnalysisResult:
        """The same result in a canonical order, so equal findings give equal bytes."""
        return replace(
            self,
            packages=tuple(sorted(set(self.packages), key=Package.sort_key)),
            unknowns=tuple(sorted(set(self.unknowns))),
            ownership=tuple(sorted(set(self.ownership))),
        )

    @staticmethod
    def combine(results: Iterable[AnalysisResult]) -> AnalysisResult:
        """Concatenate results; the first OS found wins (callers pass them in priority order)."""
        packages: list[Package] = []
        unknowns: list[Unknown] = []
        ownership: list[FileOwnership] = []
        os_info: OSInfo | None = None
        for result in results:
            packages.extend(result.packages)
            unknowns.extend(result.unknowns)
            ownership.extend(result.ownership)
            if os_info is None:
                os_info = result.os
        return AnalysisResult(tuple(packages), os_info, tuple(unknowns), tuple(ownership))

    def to_dict(self) -> dict[str, Any]:
        return {
            "packages": [p.to_dict() for p in self.packages],
            "os": self.os.to_dict() if self.os else None,
            "unknowns": [u.to_dict() for u in self.unknowns],
            "ownership": [o.to_dict() for o in self.ownership],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnalysisResult:
        return cls(
            packages=tuple(Package.from_dict(p) for p in data.get("packages", ())),
            os=OSInfo.from_dict(data["os"]) if data.get("os") else None,
            unknowns=tuple(Unknown.from_dict(u) for u in data.get("unknowns", ())),
            ownership=tuple(FileOwnership.from_dict(o) for o in data.get("ownership", ())),
        )


class _Tie:
    """The last part of :meth:`Package.sort_key`: the package's ``repr``, compared as a
    string, and made only when the parts before it tie (which they seldom do)."""

    __slots__ = ("_package", "_text")

    def __init__(self, package: Package) -> None:
        self._package = package
        self._text: str | None = None

    def text(self) -> str:
        if self._text is None:
            self._text = repr(self._package)
        return self._text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Tie) and self.text() == other.text()

    def __lt__(self, other: _Tie) -> bool:
        return self.text() < other.text()

    def __hash__(self) -> int:
        return hash(self.text())
