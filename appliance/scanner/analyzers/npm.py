"""Node.js packages: what ``node_modules`` holds (each package's ``package.json``) and what a
``package-lock.json`` (lockfile versions 1, 2 and 3) pins.

Lockfile entries marked ``dev`` are left out, as a production install leaves them out; linked
workspace entries are the project's own sources, not dependencies.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar, Final

from appliance.scanner.analyzers.interface import Analyzer, AnalyzerInput, AnalyzerKind, ParseError
from appliance.scanner.model import AnalysisResult, Package, PackageType, Unknown
from bundles import limits
from bundles.limits import Unit

_NODE_MODULES: Final = "node_modules/"
_LOCKFILE: Final = "package-lock.json"


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ParseError(f"{what} is not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise ParseError(f"{what} is a JSON {type(value).__name__}, expected an object")
    return value


def _licenses(doc: Mapping[str, Any]) -> tuple[str, ...]:
    value = doc.get("license")
    if isinstance(value, str) and value:
        return (value,)
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        return (value["type"],)
    found = []
    for item in doc.get("licenses") or ():
        if isinstance(item, dict) and isinstance(item.get("type"), str):
            found.append(item["type"])
        elif isinstance(item, str):
            found.append(item)
    return tuple(found)


def _dependency_names(doc: Mapping[str, Any], *fields: str) -> tuple[str, ...]:
    names: set[str] = set()
    for name in fields:
        value = doc.get(name)
        if isinstance(value, dict):
            names.update(str(k) for k in value)
    return tuple(sorted(names))


def parse_package_json(data: bytes) -> Package:
    doc = _json_object(data, "package.json")
    name, version = doc.get("name"), doc.get("version")
    if not isinstance(name, str) or not name or not isinstance(version, str) or not version:
        raise ParseError(
            f"package.json lacks a name or version (name={name!r}, version={version!r})"
        )
    return Package(
        type=PackageType.NPM,
        name=name,
        version=version,
        licenses=_licenses(doc),
        dependencies=_dependency_names(doc, "dependencies", "optionalDependencies"),
    )


def _lock_package(name: str, entry: Mapping[str, Any], deps: tuple[str, ...]) -> Package | None:
    version = entry.get("version")
    if entry.get("dev") is True or entry.get("link") is True:
        return None
    if not isinstance(version, str) or not version:
        raise ParseError(f"lockfile entry {name!r} has no version")
    return Package(
        type=PackageType.NPM,
        name=name,
        version=version,
        licenses=_licenses(entry),
        dependencies=deps,
    )


def _walk_v1(deps: Mapping[str, Any], out: list[Package], problems: list[str]) -> None:
    for name, entry in sorted(deps.items()):
        if not isinstance(entry, dict):
            problems.append(f"lockfile dependency {name!r} is not an object")
            continue
        try:
            package = _lock_package(name, entry, _dependency_names(entry, "requires"))
        except ParseError as e:
            problems.append(e.message)
            continue
        if package is not None:
            out.append(package)
        nested = entry.get("dependencies")
        if isinstance(nested, dict):
            _walk_v1(nested, out, problems)


def parse_package_lock(data: bytes) -> tuple[list[Package], list[str]]:
    """Packages pinned by a package-lock.json, and what could not be read."""
    doc = _json_object(data, _LOCKFILE)
    version = doc.get("lockfileVersion")
    packages: list[Package] = []
    problems: list[str] = []
    if version == 1:
        _walk_v1(doc.get("dependencies") or {}, packages, problems)
        return packages, problems
    if version not in (2, 3) or not isinstance(doc.get("packages"), dict):
        raise ParseError(f"unsupported lockfileVersion {version!r}", hint="versions 1-3 are read")
    for key, entry in sorted(doc["packages"].items()):
        if _NODE_MODULES not in key:
            continue  # the root project ("") and workspace sources
        if not isinstance(entry, dict):
            problems.append(f"lockfile package {key!r} is not an object")
            continue
        name = entry.get("name") or key.rpartition(_NODE_MODULES)[2]
        deps = _dependency_names(entry, "dependencies", "optionalDependencies")
        try:
            package = _lock_package(str(name), entry, deps)
        except ParseError as e:
            problems.append(e.message)
            continue
        if package is not None:
            packages.append(package)
    return packages, problems


def _is_installed_manifest(path: str) -> bool:
    """``…/node_modules/<name>/package.json`` or ``…/node_modules/@scope/<name>/package.json``."""
    parts = path.split("/")
    if len(parts) < 3 or parts[-1] != "package.json":
        return False
    if parts[-3] == "node_modules":
        return not parts[-2].startswith("@")
    return len(parts) >= 4 and parts[-4] == "node_modules" and parts[-3].startswith("@")


class NpmAnalyzer(Analyzer):
    """Installed packages, from ``node_modules``."""

    name: ClassVar[str] = "node-packages"
    version: ClassVar[int] = 1
    kind: ClassVar[AnalyzerKind] = AnalyzerKind.LANGUAGE_PACKAGES
    size_cap = limits.cap("scan.package_json_bytes", 4 << 20, Unit.BYTES, "an npm package.json")

    def required(self, path: str, mode: int) -> bool:
        return _is_installed_manifest(path)

    def analyze(self, inp: AnalyzerInput) -> AnalysisResult:
        package = parse_package_json(inp.read(self.size_cap))
        return AnalysisResult(packages=(replace(package, locations=(inp.path,)),))


class NpmLockAnalyzer(Analyzer):
    """Pinned packages, from ``package-lock.json`` outside ``node_modules``."""

    name: ClassVar[str] = "npm-lockfile"
    version: ClassVar[int] = 1
    kind: ClassVar[AnalyzerKind] = AnalyzerKind.LOCKFILE
    size_cap = limits.cap(
        "scan.lockfile_bytes", 64 << 20, Unit.BYTES, "a lock file (package-lock.json)"
    )

    def required(self, path: str, mode: int) -> bool:
        return path.rpartition("/")[2] == _LOCKFILE and "node_modules/" not in path

    def analyze(self, inp: AnalyzerInput) -> AnalysisResult:
        packages, problems = parse_package_lock(inp.read(self.size_cap))
        return AnalysisResult(
            packages=tuple(replace(p, locations=(inp.path,)) for p in packages),
            unknowns=tuple(Unknown(inp.path, reason, self.name) for reason in problems),
        )
