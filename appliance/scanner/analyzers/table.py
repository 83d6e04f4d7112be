"""The one table of analyzers, in the order they run and report.

Explicit on purpose: an air-gapped appliance must not pick up code because something
happened to be installed, and a scan's output must not depend on discovery order. The
table refuses two analyzers with the same name, since results are cached under the name.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Final

from appliance.scanner.analyzers.apk import ApkAnalyzer
from appliance.scanner.analyzers.composer import ComposerAnalyzer
from appliance.scanner.analyzers.dotnet import DotnetDepsAnalyzer
from appliance.scanner.analyzers.dpkg import DpkgAnalyzer
from appliance.scanner.analyzers.gem import GemAnalyzer
from appliance.scanner.analyzers.gobinary import GoBinaryAnalyzer
from appliance.scanner.analyzers.interface import Analyzer, AnalyzerKind, AnalyzerTableError
from appliance.scanner.analyzers.java import JavaAnalyzer
from appliance.scanner.analyzers.npm import NpmAnalyzer, NpmLockAnalyzer
from appliance.scanner.analyzers.os_release import OSReleaseAnalyzer
from appliance.scanner.analyzers.python import PythonAnalyzer
from appliance.scanner.analyzers.rpm import RpmAnalyzer


class AnalyzerTable:
    """An ordered, name-unique set of analyzers."""

    __slots__ = ("_analyzers", "_by_name")

    def __init__(self, analyzers: Iterable[Analyzer]) -> None:
        self._analyzers: tuple[Analyzer, ...] = tuple(analyzers)
        self._by_name: dict[str, Analyzer] = {}
        for analyzer in self._analyzers:
            if analyzer.name in self._by_name:
                raise AnalyzerTableError(
                    f"analyzer name {analyzer.name!r} is registered twice "
                    f"({type(self._by_name[analyzer.name]).__name__} and "
                    f"{type(analyzer).__name__})",
                    hint="give each analyzer its own name; cached results are keyed by it",
                )
            self._by_name[analyzer.name] = analyzer

    def __iter__(self) -> Iterator[Analyzer]:
        return iter(self._analyzers)

    def __len__(self) -> int:
        return len(self._analyzers)

    def names(self) -> tuple[str, ...]:
        return tuple(a.name for a in self._analyzers)

    def get(self, name: str) -> Analyzer:
        try:
            return self._by_name[name]
        except KeyError:
            raise AnalyzerTableError(
                f"no analyzer named {name!r}", hint=f"known: {', '.join(self.names())}"
            ) from None

    def versions(self) -> dict[str, int]:
        """Name -> version, the part of a layer cache key that analyzers contribute."""
        return {a.name: a.version for a in self._analyzers}

    def select(self, kinds: Iterable[AnalyzerKind]) -> AnalyzerTable:
        """The analyzers of the given kinds, in table order."""
        wanted = frozenset(kinds)
        return AnalyzerTable(a for a in self._analyzers if a.kind in wanted)

    def without(self, names: Sequence[str]) -> AnalyzerTable:
        for name in names:
            self.get(name)
        return AnalyzerTable(a for a in self._analyzers if a.name not in names)

    def required(self, path: str, mode: int) -> tuple[Analyzer, ...]:
        """The analyzers that want this file (no I/O)."""
        return tuple(a for a in self._analyzers if a.required(path, mode))


DEFAULT: Final = AnalyzerTable(
    (
        OSReleaseAnalyzer(),
        DpkgAnalyzer(),
        ApkAnalyzer(),
        RpmAnalyzer(),
        PythonAnalyzer(),
        NpmAnalyzer(),
        NpmLockAnalyzer(),
        JavaAnalyzer(),
        GemAnalyzer(),
        ComposerAnalyzer(),
        DotnetDepsAnalyzer(),
        GoBinaryAnalyzer(),
    )
)

IMAGE_KINDS: Final = frozenset(
    {
        AnalyzerKind.OS,
        AnalyzerKind.OS_PACKAGES,
        AnalyzerKind.LANGUAGE_PACKAGES,
        AnalyzerKind.BINARY,
    }
)
"""What an image scan runs by default: installed software, not lockfiles (a lockfile in an
image describes a build, and its packages usually also sit in ``node_modules``)."""
