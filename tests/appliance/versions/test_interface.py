"""The Version value and the error family shared by every scheme."""

from __future__ import annotations

import pytest

from appliance.versions import InvalidVersion, Version, VersionError, scheme_for
from bundles.errors import StellaError


def test_version_value() -> None:
    dpkg = scheme_for("dpkg")
    version = dpkg.parse("1:2.0-1")
    assert str(version) == "1:2.0-1"
    assert repr(version) == "Version(scheme='dpkg', text='1:2.0-1')"
    assert dpkg.parse("1:2.0-1") is version  # parse is cached
    with pytest.raises(AttributeError):
        version.text = "2"  # type: ignore[misc]  # frozen: refused at run time too


def test_versions_do_not_order_against_other_things() -> None:
    version = scheme_for("npm").parse("1.0.0")
    assert version != "1.0.0"
    with pytest.raises(TypeError):
        _ = version < "2.0.0"
    with pytest.raises(TypeError, match="cannot compare a npm version"):
        _ = version >= scheme_for("cargo").parse("1.0.0")
    with pytest.raises(TypeError, match="npm.compare was given a version of another scheme"):
        scheme_for("npm").compare(version, scheme_for("semver").parse("1.0.0"))


def test_invalid_version_is_a_value_error_and_a_stella_error() -> None:
    with pytest.raises(InvalidVersion) as info:
        scheme_for("apk").parse("1.0_foo")
    error = info.value
    assert isinstance(error, ValueError)
    assert isinstance(error, StellaError)
    assert isinstance(error, VersionError)
    assert (error.scheme, error.text) == ("apk", "1.0_foo")
    assert error.diagnostics() == (
        "apk version '1.0_foo' is not valid: unknown suffix '_foo' (known: _alpha, _beta, "
        "_pre, _rc, _cvs, _svn, _git, _hg, _p) (check the version string, or whether apk is "
        "the right scheme for it)"
    )


@pytest.mark.parametrize("name", ["dpkg", "rpm", "apk", "pep440", "maven"])
def test_is_valid(name: str) -> None:
    scheme = scheme_for(name)
    assert scheme.is_valid("1.2")
    assert not scheme.is_valid("")


def test_version_is_constructible_for_tests_of_other_areas() -> None:
    a = Version("x", "a", (1,))
    b = Version("x", "b", (2,))
    assert a < b
    assert a == Version("x", "other text", (1,))
