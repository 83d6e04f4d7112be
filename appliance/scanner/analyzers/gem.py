"""Installed Ruby gems, from the ``specifications/*.gemspec`` stubs RubyGems writes on install.

Those files are Ruby, generated from a fixed template, so the fields are read from the
template's assignments (``s.name = "rake".freeze``) without running Ruby.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import ClassVar, Final

from appliance.scanner.analyzers.interface import Analyzer, AnalyzerInput, AnalyzerKind, ParseError
from appliance.scanner.model import AnalysisResult, Package, PackageType
from bundles import limits
from bundles.limits import Unit

_STRING: Final = r"""(?:"([^"]*)"|'([^']*)'|%q<([^>]*)>|%q\{([^}]*)\})"""
_NAME = re.compile(r"^\s*\w+\.name\s*=\s*" + _STRING, re.MULTILINE)
_VERSION = re.compile(r"^\s*\w+\.version\s*=\s*(?:Gem::Version\.new\(\s*)?" + _STRING, re.MULTILINE)
_LICENSES = re.compile(r"^\s*\w+\.licenses?\s*=\s*\[?([^\n\]]*)\]?", re.MULTILINE)
_RUNTIME_DEP = re.compile(r"^\s*\w+\.add_(?:runtime_)?dependency\s*\(?\s*" + _STRING, re.MULTILINE)
_ANY_STRING = re.compile(_STRING)


def _first(match: re.Match[str]) -> str:
    return next(g for g in match.groups() if g is not None)


def parse_gemspec(data: bytes) -> Package:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(f"gemspec is not UTF-8: {e}") from e
    name, version = _NAME.search(text), _VERSION.search(text)
    if not name or not version:
        raise ParseError("gemspec has no s.name or s.version assignment with a literal string")
    licenses: list[str] = []
    for match in _LICENSES.finditer(text):
        licenses.extend(_first(m) for m in _ANY_STRING.finditer(match.group(1)))
    dependencies = sorted({_first(m) for m in _RUNTIME_DEP.finditer(text)})
    return Package(
        type=PackageType.GEM,
        name=_first(name),
        version=_first(version),
        licenses=tuple(dict.fromkeys(licenses)),
        dependencies=tuple(dependencies),
    )


class GemAnalyzer(Analyzer):
    name: ClassVar[str] = "gem"
    version: ClassVar[int] = 1
    kind: ClassVar[AnalyzerKind] = AnalyzerKind.LANGUAGE_PACKAGES
    size_cap = limits.cap("scan.gemspec_bytes", 1 << 20, Unit.BYTES, "a Ruby gemspec")

    def required(self, path: str, mode: int) -> bool:
        parts = path.split("/")
        if not parts[-1].endswith(".gemspec"):
            return False
        if len(parts) >= 2 and parts[-2] == "specifications":
            return True
        return len(parts) >= 3 and parts[-3:-1] == ["specifications", "default"]

    def analyze(self, inp: AnalyzerInput) -> AnalysisResult:
        package = parse_gemspec(inp.read(self.size_cap))
        return AnalysisResult(packages=(replace(package, locations=(inp.path,)),))
