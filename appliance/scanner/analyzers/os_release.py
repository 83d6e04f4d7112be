"""The distribution, from ``os-release`` (freedesktop.org): ``etc/os-release`` wins over
``usr/lib/os-release`` as the specification says."""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from typing import ClassVar, Final

from appliance.scanner.analyzers.interface import Analyzer, AnalyzerInput, AnalyzerKind, ParseError
from appliance.scanner.model import AnalysisResult, OSInfo
from bundles import limits
from bundles.limits import Unit

PATHS: Final = ("etc/os-release", "usr/lib/os-release")
_LIMIT: Final = 64 << 10


def parse_os_release(data: bytes) -> OSInfo:
    """Parse ``KEY=value`` lines with shell quoting; ``ID`` is required."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ParseError(f"os-release is not UTF-8 text: {e}") from e
    fields: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.isidentifier():
            raise ParseError(f"os-release line {number} is not KEY=value: {raw!r}")
        try:
            words = shlex.split(value, posix=True)
        except ValueError as e:
            raise ParseError(f"os-release line {number} has bad quoting: {raw!r} ({e})") from e
        fields[key] = " ".join(words)
    os_id = fields.get("ID", "").strip().lower()
    if not os_id:
        raise ParseError("os-release has no ID field", hint="the distribution cannot be named")
    return OSInfo(
        id=os_id,
        version_id=fields.get("VERSION_ID") or None,
        version_codename=fields.get("VERSION_CODENAME") or None,
        pretty_name=fields.get("PRETTY_NAME") or None,
        name=fields.get("NAME") or None,
        id_like=tuple(fields.get("ID_LIKE", "").split()),
    )


class OSReleaseAnalyzer(Analyzer):
    name: ClassVar[str] = "os-release"
    version: ClassVar[int] = 1
    kind: ClassVar[AnalyzerKind] = AnalyzerKind.OS
    size_cap = limits.cap("scan.os_release_bytes", _LIMIT, Unit.BYTES, "an os-release file")

    databases = PATHS

    def required(self, path: str, mode: int) -> bool:
        return path in PATHS

    def analyze(self, inp: AnalyzerInput) -> AnalysisResult:
        return AnalysisResult(os=parse_os_release(inp.read(self.size_cap)))

    def merge(self, partials: Mapping[str, AnalysisResult]) -> AnalysisResult:
        ordered = [partials[p] for p in PATHS if p in partials]
        ordered += [partials[p] for p in sorted(partials) if p not in PATHS]
        return AnalysisResult.combine(ordered).sorted()
