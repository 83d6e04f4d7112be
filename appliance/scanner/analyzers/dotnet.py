"""NuGet packages a .NET application was published with, from its ``*.deps.json``: the
``libraries`` of type ``package`` (projects are the application itself), with their
dependencies taken from the runtime target."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import ClassVar

from appliance.scanner.analyzers.interface import Analyzer, AnalyzerInput, AnalyzerKind, ParseError
from appliance.scanner.model import AnalysisResult, Package, PackageType, Unknown
from bundles import limits
from bundles.limits import Unit


def parse_deps_json(data: bytes) -> tuple[list[Package], list[str]]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ParseError(f"deps.json is not valid JSON: {e}") from e
    if not isinstance(doc, dict) or not isinstance(doc.get("libraries"), dict):
        raise ParseError("deps.json has no 'libraries' object")
    target_name = (doc.get("runtimeTarget") or {}).get("name")
    target = (doc.get("targets") or {}).get(target_name) or {}
    packages, problems = [], []
    for key, library in sorted(doc["libraries"].items()):
        name, sep, version = key.partition("/")
        if not sep or not name or not version or not isinstance(library, dict):
            problems.append(f"deps.json library {key!r} is not 'Name/Version' with an object")
            continue
        if library.get("type") != "package":
            continue
        deps = (target.get(key) or {}).get("dependencies") or {}
        packages.append(
            Package(
                type=PackageType.NUGET,
                name=name,
                version=version,
                dependencies=tuple(sorted(deps)) if isinstance(deps, dict) else (),
            )
        )
    return packages, problems


class DotnetDepsAnalyzer(Analyzer):
    name: ClassVar[str] = "dotnet-deps"
    version: ClassVar[int] = 1
    kind: ClassVar[AnalyzerKind] = AnalyzerKind.LANGUAGE_PACKAGES
    size_cap = limits.cap("scan.dotnet_deps_bytes", 16 << 20, Unit.BYTES, "a .NET deps.json")

    def required(self, path: str, mode: int) -> bool:
        return path.endswith(".deps.json")

    def analyze(self, inp: AnalyzerInput) -> AnalysisResult:
        packages, problems = parse_deps_json(inp.read(self.size_cap))
        return AnalysisResult(
            packages=tuple(replace(p, locations=(inp.path,)) for p in packages),
            unknowns=tuple(Unknown(inp.path, reason, self.name) for reason in problems),
        )
