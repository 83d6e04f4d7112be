"""PHP packages installed by Composer, from ``vendor/composer/installed.json`` (Composer 1: a
list of packages; Composer 2: ``{"packages": [...], "dev-package-names": [...]}``). Packages
Composer lists as dev-only are left out, as ``--no-dev`` installs leave them out."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, ClassVar, Final

from appliance.scanner.analyzers.interface import Analyzer, AnalyzerInput, AnalyzerKind, ParseError
from appliance.scanner.model import AnalysisResult, Package, PackageType, Unknown
from bundles import limits
from bundles.limits import Unit

INSTALLED: Final = "vendor/composer/installed.json"


def _package(entry: Mapping[str, Any]) -> Package:
    name, version = entry.get("name"), entry.get("version")
    if not isinstance(name, str) or not name or not isinstance(version, str) or not version:
        raise ParseError(f"installed.json entry lacks name or version: name={name!r}")
    licenses = entry.get("license") or ()
    if isinstance(licenses, str):
        licenses = (licenses,)
    requires = entry.get("require") or {}
    return Package(
        type=PackageType.COMPOSER,
        name=name,
        version=version,
        licenses=tuple(str(x) for x in licenses),
        dependencies=tuple(sorted(k for k in requires if "/" in k)),  # not php / ext-*
    )


def parse_installed_json(data: bytes) -> tuple[list[Package], list[str]]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ParseError(f"installed.json is not valid JSON: {e}") from e
    dev: set[str] = set()
    if isinstance(doc, dict):
        dev = set(doc.get("dev-package-names") or ())
        doc = doc.get("packages")
    if not isinstance(doc, list):
        raise ParseError("installed.json holds neither a package list nor a 'packages' list")
    packages, problems = [], []
    for index, entry in enumerate(doc):
        if not isinstance(entry, dict):
            problems.append(f"installed.json entry #{index} is not an object")
            continue
        try:
            package = _package(entry)
        except ParseError as e:
            problems.append(f"entry #{index}: {e.message}")
            continue
        if package.name not in dev:
            packages.append(package)
    return packages, problems


class ComposerAnalyzer(Analyzer):
    name: ClassVar[str] = "composer"
    version: ClassVar[int] = 1
    kind: ClassVar[AnalyzerKind] = AnalyzerKind.LANGUAGE_PACKAGES
    size_cap = limits.cap(
        "scan.composer_bytes", 16 << 20, Unit.BYTES, "a PHP composer installed.json"
    )

    def required(self, path: str, mode: int) -> bool:
        return path == INSTALLED or path.endswith("/" + INSTALLED)

    def analyze(self, inp: AnalyzerInput) -> AnalysisResult:
        packages, problems = parse_installed_json(inp.read(self.size_cap))
        return AnalysisResult(
            packages=tuple(replace(p, locations=(inp.path,)) for p in packages),
            unknowns=tuple(Unknown(inp.path, reason, self.name) for reason in problems),
        )
