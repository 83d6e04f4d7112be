from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import ClassVar, NoReturn

import pytest

from appliance.scanner.analyzers.dpkg import DpkgAnalyzer
from appliance.scanner.analyzers.interface import (
    Analyzer,
    AnalyzerInput,
    AnalyzerKind,
    InputTooLargeError,
)
from appliance.scanner.analyzers.os_release import OSReleaseAnalyzer
from appliance.scanner.analyzers.table import AnalyzerTable
from appliance.scanner.collect import Collector, analyze_file, run_analyzer
from appliance.scanner.model import AnalysisResult, Unknown

STATUS = "var/lib/dpkg/status"


def status(*names: str) -> bytes:
    return b"\n".join(
        f"Package: {n}\nStatus: install ok installed\nVersion: 1.0\n".encode() for n in names
    )


class Exploding(Analyzer):
    """A fake analyzer with a bug, to prove the scan survives one."""

    name: ClassVar[str] = "exploding"
    version: ClassVar[int] = 1
    kind: ClassVar[AnalyzerKind] = AnalyzerKind.OS_PACKAGES

    def required(self, path: str, mode: int) -> bool:
        return path == STATUS

    def analyze(self, inp: AnalyzerInput) -> AnalysisResult:
        raise ZeroDivisionError("division by zero")


class BadMerge(Exploding):
    name: ClassVar[str] = "bad-merge"

    def analyze(self, inp: AnalyzerInput) -> AnalysisResult:
        return AnalysisResult(unknowns=(Unknown(inp.path, "partial", self.name),))

    def merge(self, partials: object) -> AnalysisResult:
        raise KeyError("boom")


def test_upper_layer_replaces_and_whiteout_removes() -> None:
    collector = Collector(AnalyzerTable([OSReleaseAnalyzer(), DpkgAnalyzer()]))
    collector.add(AnalyzerInput.from_bytes(STATUS, status("base", "old")))
    collector.add(AnalyzerInput.from_bytes("var/lib/dpkg/info/old.list", b"/usr/bin/old\n"))
    collector.add(AnalyzerInput.from_bytes("etc/os-release", b"ID=debian\nVERSION_ID=12\n"))
    collector.add(AnalyzerInput.from_bytes(STATUS, status("base", "new")))  # layer 2
    collector.remove("var/lib/dpkg/info")  # opaque/whiteout of the whole directory
    result = collector.finish()
    assert [p.name for p in result.packages] == ["base", "new"]
    assert all(p.installed_files == () for p in result.packages)
    assert result.os is not None
    assert result.os.distro == "debian-12"


def test_cached_results_are_replayed_with_set() -> None:
    cached = analyze_file(AnalyzerInput.from_bytes(STATUS, status("app")))
    assert list(cached) == ["dpkg"]
    collector = Collector()
    collector.set(
        STATUS, {name: AnalysisResult.from_dict(r.to_dict()) for name, r in cached.items()}
    )
    assert [p.name for p in collector.finish().packages] == ["app"]
    collector.set(STATUS, {})  # replaced by a file no analyzer reads
    assert collector.finish().is_empty()


def test_a_crashing_analyzer_is_an_unknown_and_the_rest_goes_on() -> None:
    collector = Collector(AnalyzerTable([Exploding(), DpkgAnalyzer(), BadMerge()]))
    collector.add(AnalyzerInput.from_bytes(STATUS, status("app")))
    result = collector.finish()
    assert [p.name for p in result.packages] == ["app"]
    assert sorted((u.analyzer, u.path, u.reason) for u in result.unknowns) == [
        ("bad-merge", "", "merging results failed: KeyError: 'boom'"),
        ("bad-merge", STATUS, "partial"),
        ("exploding", STATUS, "analyzer failed unexpectedly: ZeroDivisionError: division by zero"),
    ]


def test_read_errors_and_size_limits_are_unknowns() -> None:
    def unreadable() -> NoReturn:
        raise PermissionError(13, "Permission denied")

    inp = AnalyzerInput(STATUS, 0o100644, 10, unreadable)
    result = run_analyzer(DpkgAnalyzer(), inp)
    assert result.unknowns == (Unknown(STATUS, "cannot read the file: Permission denied", "dpkg"),)

    big = AnalyzerInput(STATUS, 0o100644, 1 << 40, unreadable)
    result = run_analyzer(DpkgAnalyzer(), big)
    assert result.unknowns[0].reason == (
        "a package database read whole (dpkg status and lists, apk installed) is over the "
        "scan.file_bytes cap of 64 MiB (found 1024 GiB) (if this input is trusted and that "
        "large, raise the cap with STELLA_LIMIT_SCAN_FILE_BYTES=N (docs/limits.md))"
    )


def test_input_read_limit_counts_real_bytes() -> None:
    honest = AnalyzerInput.from_bytes("x", b"0123456789")
    lying = AnalyzerInput("x", honest.mode, 2, honest.opener)  # claims 2 bytes, has 10
    with pytest.raises(InputTooLargeError) as caught:
        lying.read(limit=5)
    assert caught.value.message == "x: more than 5 bytes"
    assert honest.read(limit=10) == b"0123456789"
    # a file that grew past its declared size but stays within the limit is read whole
    grown = AnalyzerInput("x", honest.mode, 4, honest.opener)
    assert grown.read(limit=10) == b"0123456789"


def test_reading_a_small_file_allocates_its_size_not_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "small"
    path.write_bytes(b"x" * 100)
    small = AnalyzerInput("small", 0o100644, 100, lambda: path.open("rb"))
    tracemalloc.start()
    try:
        assert small.read() == b"x" * 100  # the default cap is 64 MiB
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


class Streaming(Analyzer):
    """An analyzer that opens its file itself (as one reading an archive does)."""

    name: ClassVar[str] = "streaming"
    version: ClassVar[int] = 1
    kind: ClassVar[AnalyzerKind] = AnalyzerKind.LANGUAGE_PACKAGES

    def required(self, path: str, mode: int) -> bool:
        return True

    def analyze(self, inp: AnalyzerInput) -> AnalysisResult:
        with inp.open() as fh:
            return AnalysisResult(unknowns=(Unknown(inp.path, f"read {len(fh.read())}", "s"),))


def test_a_file_over_the_analyzers_cap_is_refused_before_it_is_opened() -> None:
    def never() -> NoReturn:
        raise AssertionError("opened")

    big = AnalyzerInput("x.jar", 0o100644, (64 << 20) + 1, never)
    result = run_analyzer(Streaming(), big)
    assert result.unknowns == (
        Unknown(
            "x.jar",
            "a package database read whole (dpkg status and lists, apk installed) is over the "
            "scan.file_bytes cap of 64 MiB (found 67,108,865 bytes) (if this input is trusted "
            "and that large, raise the cap with STELLA_LIMIT_SCAN_FILE_BYTES=N (docs/limits.md))",
            "streaming",
        ),
    )
