"""Scanning an unpacked root file system (``dir:PATH``): every regular file is offered to the
analyzers, in sorted path order so that equal trees give equal results. Symbolic links are
not followed: they could point out of the tree, and their targets are scanned where they are."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from appliance.scanner.analyzers.interface import AnalyzerInput
from appliance.scanner.analyzers.table import DEFAULT, AnalyzerTable
from appliance.scanner.collect import Collector
from appliance.scanner.model import AnalysisResult


def iter_files(root: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """(root-relative POSIX path, real path, lstat) of every regular file, sorted."""
    for directory, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        base = Path(directory)
        for filename in sorted(filenames):
            real = base / filename
            info = real.lstat()
            if stat.S_ISREG(info.st_mode):
                yield real.relative_to(root).as_posix(), real, info


def _input(path: str, real: Path, info: os.stat_result) -> AnalyzerInput:
    return AnalyzerInput(
        path=path, mode=info.st_mode, size=info.st_size, opener=lambda: open(real, "rb")
    )


def scan_rootfs(root: Path, registry: AnalyzerTable = DEFAULT) -> AnalysisResult:
    """All packages, the OS and the unknowns of the file system under ``root``."""
    collector = Collector(registry)
    for path, real, info in iter_files(root):
        if registry.required(path, info.st_mode):
            collector.add(_input(path, real, info))
    return collector.finish()
