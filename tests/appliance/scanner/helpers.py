"""Shared by the scanner tests: where the fixture root file systems live, and short ways to
run one analyzer on bytes the way the collector does."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from appliance.scanner.analyzers.interface import REGULAR_FILE_MODE, Analyzer, AnalyzerInput
from appliance.scanner.collect import run_analyzer
from appliance.scanner.model import AnalysisResult, Package

DATA = Path(__file__).resolve().parents[2] / "data" / "scanner"


def fixture_bytes(case: str, path: str) -> bytes:
    return (DATA / case / path).read_bytes()


def run(
    analyzer: Analyzer, path: str, data: bytes, mode: int = REGULAR_FILE_MODE
) -> AnalysisResult:
    """Analyze one file as the collector would (errors become unknowns)."""
    assert analyzer.required(path, mode), f"{analyzer.name} should want {path}"
    return run_analyzer(analyzer, AnalyzerInput.from_bytes(path, data, mode))


def merged(analyzer: Analyzer, files: Mapping[str, bytes]) -> AnalysisResult:
    """Analyze several files and merge them, as one squashed image."""
    return analyzer.merge({path: run(analyzer, path, data) for path, data in files.items()})


def by_name(result: AnalysisResult) -> dict[str, Package]:
    packages = {p.name: p for p in result.packages}
    assert len(packages) == len(result.packages), "package names are not unique here"
    return packages
