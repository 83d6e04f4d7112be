"""Installed Python distributions: ``*.dist-info/METADATA`` (with ``RECORD`` for the files
each owns) and setuptools' ``*.egg-info/PKG-INFO`` (or a single ``*.egg-info`` file).

The core-metadata headers are read with packaging's lenient email parser, which keeps what
it cannot interpret aside instead of failing; only a missing Name or Version is fatal.
"""

from __future__ import annotations

import csv
import io
import posixpath
import stat
from collections.abc import Mapping
from dataclasses import replace
from typing import ClassVar

from packaging.metadata import parse_email
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from appliance.scanner.analyzers.interface import Analyzer, AnalyzerInput, AnalyzerKind, ParseError
from appliance.scanner.model import AnalysisResult, FileOwnership, Package, PackageType, Unknown
from bundles import limits
from bundles.limits import Unit

_LICENSE_CLASSIFIER = "License :: "


def _licenses(raw: Mapping[str, object]) -> tuple[str, ...]:
    expression = raw.get("license_expression")
    if isinstance(expression, str) and expression.strip():
        return (expression.strip(),)
    text = raw.get("license")
    if isinstance(text, str) and text.strip() and "\n" not in text.strip() and len(text) < 100:
        return (text.strip(),)  # a long License field is the license text, not its name
    classifiers = raw.get("classifiers")
    found = []
    if isinstance(classifiers, list):
        for classifier in classifiers:
            if classifier.startswith(_LICENSE_CLASSIFIER):
                leaf = classifier.rsplit(" :: ", 1)[-1].strip()
                if leaf and leaf != "OSI Approved":
                    found.append(leaf)
    return tuple(found)


def _requirements(raw: Mapping[str, object]) -> tuple[tuple[str, ...], list[str]]:
    names: set[str] = set()
    problems: list[str] = []
    requires = raw.get("requires_dist")
    for text in requires if isinstance(requires, list) else []:
        try:
            requirement = Requirement(text)
        except InvalidRequirement as e:
            problems.append(f"Requires-Dist {text!r} is not a valid requirement: {e}")
            continue
        if requirement.marker is not None and "extra" in str(requirement.marker):
            continue  # optional: only installed when an extra is asked for
        names.add(canonicalize_name(requirement.name))
    return tuple(sorted(names)), problems


def parse_metadata(data: bytes) -> tuple[Package, list[str]]:
    """A distribution from core-metadata bytes (METADATA / PKG-INFO)."""
    raw, _unparsed = parse_email(data)
    name, version = raw.get("name"), raw.get("version")
    if not name or not version:
        raise ParseError(
            f"core metadata lacks Name or Version (Name={name!r}, Version={version!r})"
        )
    dependencies, problems = _requirements(raw)
    package = Package(
        type=PackageType.PYPI,
        name=name,
        version=version,
        licenses=_licenses(raw),
        dependencies=dependencies,
    )
    return package, problems


def parse_record(data: bytes, site: str) -> tuple[str, ...]:
    """Paths listed in a wheel ``RECORD`` (CSV: path, hash, size), made image-root-relative
    against ``site``, the directory holding the ``.dist-info``."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(f"RECORD is not UTF-8: {e}") from e
    files = []
    try:
        for number, row in enumerate(csv.reader(io.StringIO(text), strict=True), 1):
            if not row:
                continue
            if len(row) != 3:
                raise ParseError(f"RECORD line {number} has {len(row)} fields, expected 3")
            files.append(posixpath.normpath(posixpath.join(site, row[0])).lstrip("/"))
    except csv.Error as e:
        raise ParseError(f"RECORD is not valid CSV: {e}") from e
    return tuple(files)


class PythonAnalyzer(Analyzer):
    name: ClassVar[str] = "python-packages"
    version: ClassVar[int] = 1
    kind: ClassVar[AnalyzerKind] = AnalyzerKind.LANGUAGE_PACKAGES
    size_cap = limits.cap(
        "scan.python_metadata_bytes",
        8 << 20,
        Unit.BYTES,
        "a Python METADATA, PKG-INFO or RECORD file",
    )

    def required(self, path: str, mode: int) -> bool:
        directory, _, base = path.rpartition("/")
        parent = directory.rpartition("/")[2]
        if base in ("METADATA", "RECORD"):
            return parent.endswith(".dist-info")
        if base == "PKG-INFO":
            return parent.endswith(".egg-info") or parent == "EGG-INFO"
        return base.endswith(".egg-info") and stat.S_ISREG(mode)  # distutils: a single file

    def analyze(self, inp: AnalyzerInput) -> AnalysisResult:
        data = inp.read(self.size_cap)
        directory, _, base = inp.path.rpartition("/")
        if base == "RECORD":
            files = parse_record(data, directory.rpartition("/")[0])
            return AnalysisResult(ownership=(FileOwnership(directory, files, inp.path),))
        package, problems = parse_metadata(data)
        return AnalysisResult(
            packages=(replace(package, locations=(inp.path,)),),
            unknowns=tuple(Unknown(inp.path, reason, self.name) for reason in problems),
        )

    def merge(self, partials: Mapping[str, AnalysisResult]) -> AnalysisResult:
        combined = AnalysisResult.combine(partials[p] for p in sorted(partials))
        by_owner = {o.owner: o.files for o in combined.ownership}
        packages = []
        for package in combined.packages:
            owner = posixpath.dirname(package.locations[0]) if package.locations else ""
            if owner in by_owner:
                package = replace(package, installed_files=by_owner[owner])
            packages.append(package)
        return AnalysisResult(tuple(packages), None, combined.unknowns, ()).sorted()
