from __future__ import annotations

import pytest

from appliance.scanner.analyzers.gem import GemAnalyzer
from appliance.scanner.model import PackageType
from tests.appliance.scanner.helpers import DATA, by_name, merged, run

ROOT = DATA / "ruby"


def test_installed_gem_specifications() -> None:
    analyzer = GemAnalyzer()
    files = {
        p.relative_to(ROOT).as_posix(): p.read_bytes()
        for p in sorted(ROOT.rglob("*.gemspec"))
        if analyzer.required(p.relative_to(ROOT).as_posix(), 0o100644)
    }
    result = merged(analyzer, files)
    assert result.unknowns == ()
    packages = by_name(result)
    assert sorted((p.name, p.version) for p in packages.values()) == [
        ("json", "2.7.1"),  # a default gem
        ("rack", "3.0.8"),
        ("rack-session", "2.0.0"),
    ]
    assert packages["rack"].type is PackageType.GEM
    assert packages["rack"].licenses == ("MIT",)
    assert packages["rack"].dependencies == ()  # development dependencies only
    assert packages["rack-session"].licenses == ("MIT", "Ruby")
    assert packages["rack-session"].dependencies == ("rack",)


def test_gemspec_without_literal_name_is_unknown() -> None:
    path = "usr/local/bundle/specifications/x.gemspec"
    result = run(GemAnalyzer(), path, b"Gem::Specification.new do |s|\n  s.name = NAME\nend\n")
    assert result.packages == ()
    assert "gemspec has no s.name or s.version" in result.unknowns[0].reason


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("usr/local/bundle/specifications/rack-3.0.8.gemspec", True),
        ("usr/lib/ruby/gems/3.3.0/specifications/default/json-2.7.1.gemspec", True),
        ("src/app/myapp.gemspec", False),
        ("usr/local/bundle/gems/rack-3.0.8/rack.gemspec", False),
    ],
)
def test_required(path: str, wanted: bool) -> None:
    assert GemAnalyzer().required(path, 0o100644) is wanted
