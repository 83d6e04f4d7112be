"""The scheme registry: names, OSV ecosystems, and its refusals."""

from __future__ import annotations

import pytest

from appliance.versions import (
    UnknownScheme,
    VersionScheme,
    scheme_for,
    scheme_for_ecosystem,
    scheme_names,
    supported_ecosystems,
)
from appliance.versions.schemes import _unique


def test_every_scheme_is_registered_once() -> None:
    assert set(scheme_names()) == {
        "dpkg",
        "apk",
        "rpm",
        "pep440",
        "semver",
        "npm",
        "go",
        "maven",
        "rubygems",
        "nuget",
        "cargo",
    }
    for name in scheme_names():
        scheme = scheme_for(name)
        assert isinstance(scheme, VersionScheme)
        assert scheme.name == name


@pytest.mark.parametrize(
    ("ecosystem", "scheme"),
    [
        ("PyPI", "pep440"),
        ("npm", "npm"),
        ("Go", "go"),
        ("crates.io", "cargo"),
        ("Maven", "maven"),
        ("RubyGems", "rubygems"),
        ("NuGet", "nuget"),
        ("Hex", "semver"),
        ("Debian", "dpkg"),
        ("Debian:12", "dpkg"),
        ("Ubuntu", "dpkg"),
        ("Ubuntu:22.04:LTS", "dpkg"),
        ("Alpine", "apk"),
        ("Alpine:v3.20", "apk"),
        ("Wolfi", "apk"),
        ("Red Hat", "rpm"),
        ("Red Hat:enterprise_linux:9::appstream", "rpm"),
        ("Rocky Linux:9", "rpm"),
        ("AlmaLinux:9", "rpm"),
        ("openSUSE:Leap 15.5", "rpm"),
        ("SUSE:Linux Enterprise Server 15 SP5", "rpm"),
    ],
)
def test_ecosystems(ecosystem: str, scheme: str) -> None:
    assert scheme_for_ecosystem(ecosystem).name == scheme


@pytest.mark.parametrize("ecosystem", ["Packagist", "Pub", "Hackage", "GitHub Actions", "pypi"])
def test_unsupported_ecosystems_are_named(ecosystem: str) -> None:
    with pytest.raises(
        UnknownScheme, match=f"no version scheme for OSV ecosystem '{ecosystem}'"
    ) as info:
        scheme_for_ecosystem(ecosystem)
    assert "reported as unknown" in info.value.diagnostics()
    assert isinstance(info.value, LookupError)
    assert "PyPI" in supported_ecosystems()


def test_unknown_scheme_name() -> None:
    with pytest.raises(UnknownScheme, match="no version scheme is named 'deb'") as info:
        scheme_for("deb")
    assert "known schemes: dpkg, apk" in info.value.diagnostics()


def test_duplicates_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicate OSV ecosystem 'Debian'"):
        _unique([("Debian", 1), ("Debian", 2)], "OSV ecosystem")
