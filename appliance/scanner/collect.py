"""Runs analyzers over files and merges their results, whatever the files come from.

A layer walker calls :func:`analyze_file` for each file of a layer (and may cache the result
per layer under the analyzers' names and versions), then replays the layers bottom-up into a
:class:`Collector`: :meth:`Collector.set` for a file present in a layer (an upper layer's file
replaces a lower one's at the same path), :meth:`Collector.remove` for a whiteout.
:meth:`Collector.finish` merges per analyzer.

Nothing here lets one bad file stop a scan: any error while reading becomes an
:class:`Unknown` naming the path and the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from appliance.scanner.analyzers.interface import (
    Analyzer,
    AnalyzerError,
    AnalyzerInput,
    check_size,
)
from appliance.scanner.analyzers.table import DEFAULT, AnalyzerTable
from appliance.scanner.exhaustion import exhausted
from appliance.scanner.model import AnalysisResult, Unknown

IMAGE: Final = ""  # the Unknown path for failures that belong to no single file


def run_analyzer(analyzer: Analyzer, inp: AnalyzerInput) -> AnalysisResult:
    """One analyzer on one file, refused unread when it is over the analyzer's ``size_cap``;
    a failure is returned as an unknown, never raised."""
    try:
        check_size(inp, analyzer.size_cap)
        return analyzer.analyze(inp)
    except AnalyzerError as e:
        reason = e.diagnostics()
        prefix = f"{inp.path}: "
        reason = reason[len(prefix) :] if reason.startswith(prefix) else reason
    except Exception as e:  # a parser bug must not end the scan; it is reported instead
        if exhausted(e):
            raise  # the process passed a bound: the scan stops (not this file's fault)
        if isinstance(e, OSError):
            reason = f"cannot read the file: {e.strerror or e}"
        else:
            reason = f"analyzer failed unexpectedly: {type(e).__name__}: {e}"
    return AnalysisResult(unknowns=(Unknown(inp.path, reason, analyzer.name),))


def analyze_file(
    inp: AnalyzerInput, registry: AnalyzerTable = DEFAULT
) -> dict[str, AnalysisResult]:
    """Every analyzer that wants this file, by name -> its result (empty results dropped)."""
    results = {}
    for analyzer in registry.required(inp.path, inp.mode):
        result = run_analyzer(analyzer, inp)
        if not result.is_empty():
            results[analyzer.name] = result
    return results


class Collector:
    """The per-path, per-analyzer results of one squashed file system."""

    __slots__ = ("_by_path", "registry")

    def __init__(self, registry: AnalyzerTable = DEFAULT) -> None:
        self.registry = registry
        self._by_path: dict[str, dict[str, AnalysisResult]] = {}

    def add(self, inp: AnalyzerInput) -> None:
        """Analyze a file and record it at its path."""
        self.set(inp.path, analyze_file(inp, self.registry))

    def set(self, path: str, results: Mapping[str, AnalysisResult]) -> None:
        """Record a file's (possibly cached) results, replacing whatever was at ``path``."""
        if results:
            self._by_path[path] = dict(results)
        else:
            self._by_path.pop(path, None)

    def remove(self, path: str) -> None:
        """A whiteout: forget ``path`` and everything below it."""
        below = path.rstrip("/") + "/"
        for known in [p for p in self._by_path if p == path or p.startswith(below)]:
            del self._by_path[known]

    def finish(self) -> AnalysisResult:
        """Merge each analyzer's surviving partials, in registry order."""
        merged = []
        for analyzer in self.registry:
            partials = {
                path: results[analyzer.name]
                for path, results in self._by_path.items()
                if analyzer.name in results
            }
            if not partials:
                continue
            try:
                merged.append(analyzer.merge(partials))
            except Exception as e:  # reported, like any other failure to read
                if exhausted(e):
                    raise
                reason = f"merging results failed: {type(e).__name__}: {e}"
                unknowns = tuple(u for r in partials.values() for u in r.unknowns)
                merged.append(
                    AnalysisResult(unknowns=(*unknowns, Unknown(IMAGE, reason, analyzer.name)))
                )
        return AnalysisResult.combine(merged).sorted()
