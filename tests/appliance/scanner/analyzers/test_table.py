from __future__ import annotations

from typing import ClassVar

import pytest

from appliance.scanner.analyzers.interface import (
    Analyzer,
    AnalyzerInput,
    AnalyzerKind,
    AnalyzerTableError,
)
from appliance.scanner.analyzers.table import DEFAULT, IMAGE_KINDS, AnalyzerTable
from appliance.scanner.model import AnalysisResult


class _Named(Analyzer):
    name: ClassVar[str] = "dpkg"
    version: ClassVar[int] = 1
    kind: ClassVar[AnalyzerKind] = AnalyzerKind.OS_PACKAGES

    def required(self, path: str, mode: int) -> bool:
        return False

    def analyze(self, inp: AnalyzerInput) -> AnalysisResult:
        return AnalysisResult()


def test_default_table_order_and_versions() -> None:
    assert DEFAULT.names() == (
        "os-release",
        "dpkg",
        "apk",
        "rpm",
        "python-packages",
        "node-packages",
        "npm-lockfile",
        "java",
        "gem",
        "composer",
        "dotnet-deps",
        "go-binary",
    )
    assert all(isinstance(v, int) and v >= 1 for v in DEFAULT.versions().values())


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(AnalyzerTableError) as caught:
        AnalyzerTable([*DEFAULT, _Named()])
    assert caught.value.diagnostics() == (
        "analyzer name 'dpkg' is registered twice (DpkgAnalyzer and _Named) "
        "(give each analyzer its own name; cached results are keyed by it)"
    )


def test_get_and_select() -> None:
    assert DEFAULT.get("apk").name == "apk"
    with pytest.raises(AnalyzerTableError, match="no analyzer named 'yarn'"):
        DEFAULT.get("yarn")
    image = DEFAULT.select(IMAGE_KINDS)
    assert "npm-lockfile" not in image.names()
    assert len(image) == len(DEFAULT) - 1
    assert DEFAULT.without(["go-binary"]).names()[-1] == "dotnet-deps"
    with pytest.raises(AnalyzerTableError):
        DEFAULT.without(["nothing"])


@pytest.mark.parametrize(
    ("path", "mode", "names"),
    [
        ("var/lib/dpkg/status", 0o100644, ("dpkg",)),
        ("etc/os-release", 0o100644, ("os-release",)),
        ("usr/bin/docker-registry", 0o100755, ("go-binary",)),
        ("opt/app/app.jar", 0o100644, ("java",)),
        ("opt/app/app.jar", 0o100755, ("java", "go-binary")),
        ("srv/package-lock.json", 0o100644, ("npm-lockfile",)),
        ("usr/share/doc/README", 0o100644, ()),
    ],
)
def test_dispatch_by_path_and_mode(path: str, mode: int, names: tuple[str, ...]) -> None:
    assert tuple(a.name for a in DEFAULT.required(path, mode)) == names
