"""npm ranges: node-semver's range-include and range-exclude fixtures (strict-mode rows),
restated as (range, version, include_prerelease) facts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.versions import InvalidRange, InvalidVersion, scheme_for
from appliance.versions.npm_range import parse_range

NPM = scheme_for("npm")

# node-semver test/fixtures/range-include.js
INCLUDE = [
    ("1.0.0 - 2.0.0", "1.2.3", False),
    ("^1.2.3+build", "1.2.3", False),
    ("^1.2.3+build", "1.3.0", False),
    ("1.2.3-pre+asdf - 2.4.3-pre+asdf", "1.2.3", False),
    ("1.2.3-pre+asdf - 2.4.3-pre+asdf", "1.2.3-pre.2", False),
    ("1.2.3-pre+asdf - 2.4.3-pre+asdf", "2.4.3-alpha", False),
    ("1.2.3+asdf - 2.4.3+asdf", "1.2.3", False),
    ("1.0.0", "1.0.0", False),
    (">=*", "0.2.4", False),
    ("", "1.0.0", False),
    ("*", "1.2.3", False),
    (">=1.0.0", "1.0.0", False),
    (">=1.0.0", "1.0.1", False),
    (">=1.0.0", "1.1.0", False),
    (">1.0.0", "1.0.1", False),
    (">1.0.0", "1.1.0", False),
    ("<=2.0.0", "2.0.0", False),
    ("<=2.0.0", "1.9999.9999", False),
    ("<=2.0.0", "0.2.9", False),
    ("<2.0.0", "1.9999.9999", False),
    ("<2.0.0", "0.2.9", False),
    (">= 1.0.0", "1.0.0", False),
    (">=  1.0.0", "1.0.1", False),
    (">=   1.0.0", "1.1.0", False),
    ("> 1.0.0", "1.0.1", False),
    (">  1.0.0", "1.1.0", False),
    ("<=   2.0.0", "2.0.0", False),
    ("<= 2.0.0", "1.9999.9999", False),
    ("<=  2.0.0", "0.2.9", False),
    ("<    2.0.0", "1.9999.9999", False),
    ("<\t2.0.0", "0.2.9", False),
    (">=0.1.97", "0.1.97", False),
    ("0.1.20 || 1.2.4", "1.2.4", False),
    (">=0.2.3 || <0.0.1", "0.0.0", False),
    (">=0.2.3 || <0.0.1", "0.2.3", False),
    (">=0.2.3 || <0.0.1", "0.2.4", False),
    ("||", "1.3.4", False),
    ("2.x.x", "2.1.3", False),
    ("1.2.x", "1.2.3", False),
    ("1.2.x || 2.x", "2.1.3", False),
    ("1.2.x || 2.x", "1.2.3", False),
    ("x", "1.2.3", False),
    ("2.*.*", "2.1.3", False),
    ("1.2.*", "1.2.3", False),
    ("1.2.* || 2.*", "2.1.3", False),
    ("1.2.* || 2.*", "1.2.3", False),
    ("*", "1.2.3", False),
    ("2", "2.1.2", False),
    ("2.3", "2.3.1", False),
    ("~0.0.1", "0.0.1", False),
    ("~0.0.1", "0.0.2", False),
    ("~x", "0.0.9", False),
    ("~2", "2.0.9", False),
    ("~2.4", "2.4.0", False),
    ("~2.4", "2.4.5", False),
    ("~>3.2.1", "3.2.2", False),
    ("~1", "1.2.3", False),
    ("~>1", "1.2.3", False),
    ("~> 1", "1.2.3", False),
    ("~1.0", "1.0.2", False),
    ("~ 1.0", "1.0.2", False),
    ("~ 1.0.3", "1.0.12", False),
    (">=1", "1.0.0", False),
    (">= 1", "1.0.0", False),
    ("<1.2", "1.1.1", False),
    ("< 1.2", "1.1.1", False),
    ("~v0.5.4-pre", "0.5.5", False),
    ("~v0.5.4-pre", "0.5.4", False),
    ("=0.7.x", "0.7.2", False),
    ("<=0.7.x", "0.7.2", False),
    (">=0.7.x", "0.7.2", False),
    ("<=0.7.x", "0.6.2", False),
    ("~1.2.1 >=1.2.3", "1.2.3", False),
    ("~1.2.1 =1.2.3", "1.2.3", False),
    ("~1.2.1 1.2.3", "1.2.3", False),
    ("~1.2.1 >=1.2.3 1.2.3", "1.2.3", False),
    ("~1.2.1 1.2.3 >=1.2.3", "1.2.3", False),
    (">=1.2.1 1.2.3", "1.2.3", False),
    ("1.2.3 >=1.2.1", "1.2.3", False),
    (">=1.2.3 >=1.2.1", "1.2.3", False),
    (">=1.2.1 >=1.2.3", "1.2.3", False),
    (">=1.2", "1.2.8", False),
    ("^1.2.3", "1.8.1", False),
    ("^0.1.2", "0.1.2", False),
    ("^0.1", "0.1.2", False),
    ("^0.0.1", "0.0.1", False),
    ("^1.2", "1.4.2", False),
    ("^1.2 ^1", "1.4.2", False),
    ("^1.2.3-alpha", "1.2.3-pre", False),
    ("^1.2.0-alpha", "1.2.0-pre", False),
    ("^0.0.1-alpha", "0.0.1-beta", False),
    ("^0.0.1-alpha", "0.0.1", False),
    ("^0.1.1-alpha", "0.1.1-beta", False),
    ("^x", "1.2.3", False),
    ("x - 1.0.0", "0.9.7", False),
    ("x - 1.x", "0.9.7", False),
    ("1.0.0 - x", "1.9.7", False),
    ("1.x - x", "1.9.7", False),
    ("<=7.x", "7.9.9", False),
    ("2.x", "2.0.0-pre.0", True),
    ("2.x", "2.1.0-pre.0", True),
    ("1.1.x", "1.1.0-a", True),
    ("1.1.x", "1.1.1-a", True),
    ("~1.1", "1.1.0-a", True),
    ("~1.1.x", "1.1.0-a", True),
    ("~1.1", "1.1.1-a", True),
    ("~2", "2.0.0-pre.0", True),
    ("~2.x", "2.0.0-pre.0", True),
    ("*", "1.0.0-rc1", True),
    ("^1.0.0-0", "1.0.1-rc1", True),
    ("^1.0.0-rc2", "1.0.1-rc1", True),
    ("^1.0.0", "1.0.1-rc1", True),
    ("^1.0.0", "1.1.0-rc1", True),
    ("1 - 2", "2.0.0-pre", True),
    ("1 - 2", "1.0.0-pre", True),
    ("1.0 - 2", "1.0.0-pre", True),
    ("=0.7.x", "0.7.0-asdf", True),
    (">=0.7.x", "0.7.0-asdf", True),
    ("<=0.7.x", "0.7.0-asdf", True),
    (">=1.0.0 <=1.1.0", "1.1.0-pre", True),
]

# node-semver test/fixtures/range-exclude.js (rows whose version is not a version are below)
EXCLUDE = [
    ("1.0.0 - 2.0.0", "2.2.3", False),
    ("1.2.3+asdf - 2.4.3+asdf", "1.2.3-pre.2", False),
    ("1.2.3+asdf - 2.4.3+asdf", "2.4.3-alpha", False),
    ("^1.2.3+build", "2.0.0", False),
    ("^1.2.3+build", "1.2.0", False),
    ("^1.2.3", "1.2.3-pre", False),
    ("^1.2", "1.2.0-pre", False),
    (">1.2", "1.3.0-beta", False),
    ("<=1.2.3", "1.2.3-beta", False),
    ("^1.2.3", "1.2.3-beta", False),
    ("=0.7.x", "0.7.0-asdf", False),
    (">=0.7.x", "0.7.0-asdf", False),
    ("<=0.7.x", "0.7.0-asdf", False),
    ("1.0.0", "1.0.1", False),
    (">=1.0.0", "0.0.0", False),
    (">=1.0.0", "0.0.1", False),
    (">=1.0.0", "0.1.0", False),
    (">1.0.0", "0.0.1", False),
    (">1.0.0", "0.1.0", False),
    ("<=2.0.0", "3.0.0", False),
    ("<=2.0.0", "2.9999.9999", False),
    ("<=2.0.0", "2.2.9", False),
    ("<2.0.0", "2.9999.9999", False),
    ("<2.0.0", "2.2.9", False),
    (">=0.1.97", "0.1.93", False),
    ("0.1.20 || 1.2.4", "1.2.3", False),
    (">=0.2.3 || <0.0.1", "0.0.3", False),
    (">=0.2.3 || <0.0.1", "0.2.2", False),
    ("2.x.x", "1.1.3", False),
    ("2.x.x", "3.1.3", False),
    ("1.2.x", "1.3.3", False),
    ("1.2.x || 2.x", "3.1.3", False),
    ("1.2.x || 2.x", "1.1.3", False),
    ("2.*.*", "1.1.3", False),
    ("2.*.*", "3.1.3", False),
    ("1.2.*", "1.3.3", False),
    ("1.2.* || 2.*", "3.1.3", False),
    ("1.2.* || 2.*", "1.1.3", False),
    ("2", "1.1.2", False),
    ("2.3", "2.4.1", False),
    ("~0.0.1", "0.1.0-alpha", False),
    ("~0.0.1", "0.1.0", False),
    ("~2.4", "2.5.0", False),
    ("~2.4", "2.3.9", False),
    ("~>3.2.1", "3.3.2", False),
    ("~>3.2.1", "3.2.0", False),
    ("~1", "0.2.3", False),
    ("~>1", "2.2.3", False),
    ("~1.0", "1.1.0", False),
    ("<1", "1.0.0", False),
    (">=1.2", "1.1.1", False),
    ("~v0.5.4-beta", "0.5.4-alpha", False),
    ("=0.7.x", "0.8.2", False),
    (">=0.7.x", "0.6.2", False),
    ("<0.7.x", "0.7.2", False),
    ("<1.2.3", "1.2.3-beta", False),
    ("=1.2.3", "1.2.3-beta", False),
    (">1.2", "1.2.8", False),
    ("^0.0.1", "0.0.2-alpha", False),
    ("^0.0.1", "0.0.2", False),
    ("^1.2.3", "2.0.0-alpha", False),
    ("^1.2.3", "1.2.2", False),
    ("^1.2", "1.1.9", False),
    ("2.x", "3.0.0-pre.0", True),
    ("^0.0.3", "0.0.3-alpha", True),
    ("^0.2.3", "0.2.3-alpha", True),
    ("^1.0.0", "1.0.0-rc1", True),
    ("^1.0.0", "2.0.0-rc1", True),
    ("^1.2.3-rc2", "2.0.0", True),
    ("^1.0.0", "2.0.0-rc1", False),
    ("1 - 2", "3.0.0-pre", True),
    ("1 - 2", "2.0.0-pre", False),
    ("1 - 2", "1.0.0-pre", False),
    ("1.0 - 2", "1.0.0-pre", False),
    ("1.1.x", "1.0.0-a", False),
    ("1.1.x", "1.1.0-a", False),
    ("1.1.x", "1.2.0-a", False),
    ("1.1.x", "1.2.0-a", True),
    ("1.1.x", "1.0.0-a", True),
    ("1.x", "1.0.0-a", False),
    ("1.x", "1.1.0-a", False),
    ("1.x", "1.2.0-a", False),
    ("1.x", "0.0.0-a", True),
    ("1.x", "2.0.0-a", True),
    (">=1.0.0 <1.1.0", "1.1.0", False),
    (">=1.0.0 <1.1.0", "1.1.0", True),
    (">=1.0.0 <1.1.0", "1.1.0-pre", False),
    (">=1.0.0 <1.1.0-pre", "1.1.0-pre", False),
]


@pytest.mark.parametrize(("text", "version", "include_prerelease"), INCLUDE)
def test_range_include(text: str, version: str, include_prerelease: bool) -> None:
    assert parse_range(text).contains(version, include_prerelease=include_prerelease)


@pytest.mark.parametrize(("text", "version", "include_prerelease"), EXCLUDE)
def test_range_exclude(text: str, version: str, include_prerelease: bool) -> None:
    assert not parse_range(text).contains(version, include_prerelease=include_prerelease)


@pytest.mark.parametrize(("text", "version"), [("*", "not a version"), (">=2", "glorp")])
def test_range_with_junk_version(text: str, version: str) -> None:
    with pytest.raises(InvalidVersion, match="npm version"):
        parse_range(text).contains(version)


def test_parsed_version_and_semver_version_both_work() -> None:
    caret = parse_range("^1.2.3")
    assert caret.contains(NPM.parse("1.8.1"))
    assert scheme_for("semver").parse("1.8.1") in caret
    with pytest.raises(TypeError, match="cannot hold a pep440 version"):
        caret.contains(scheme_for("pep440").parse("1.8.1"))


@pytest.mark.parametrize(
    ("text", "desugared"),
    [
        ("^1.2.3", ">=1.2.3 <2.0.0-0"),
        ("^0.1.2", ">=0.1.2 <0.2.0-0"),
        ("^0.0.1", ">=0.0.1 <0.0.2-0"),
        ("~1.2.3", ">=1.2.3 <1.3.0-0"),
        ("~1", ">=1.0.0 <2.0.0-0"),
        ("1.2.x", ">=1.2.0 <1.3.0-0"),
        (">1.2", ">=1.3.0"),
        ("<=1.2", "<1.3.0-0"),
        ("1.2 - 3.4.5", ">=1.2.0 <=3.4.5"),
        ("1.2.3 - 3.4", ">=1.2.3 <3.5.0-0"),
        ("*", "*"),
        (">=0.0.0", "*"),
        (">x", "<0.0.0-0"),
        ("1.2.3 || >=2 <3", "=1.2.3 || >=2.0.0 <3.0.0-0"),
    ],
)
def test_desugaring(text: str, desugared: str) -> None:
    assert str(parse_range(text)) == desugared


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (">=foo", "'foo' is not a version or x-range"),
        ("1.x.3", "'1.x.3' has a number after a wildcard"),
        ("^01.2.3", "'01.2.3' is not a version or x-range"),
        ("1" * 300, "longer than 256"),
    ],
)
def test_invalid_ranges(text: str, reason: str) -> None:
    with pytest.raises(InvalidRange, match="npm range") as info:
        parse_range(text)
    assert reason in info.value.reason


_small = st.integers(min_value=0, max_value=4)
_pre = st.sampled_from(["", "-alpha", "-0", "-rc.1"])


@settings(max_examples=300, deadline=None)
@given(_small, _small, _small, _small, _small, _small, _pre)
def test_caret_and_tilde_match_their_definitions(
    major: int, minor: int, patch: int, v_major: int, v_minor: int, v_patch: int, pre: str
) -> None:
    base = (major, minor, patch)
    release = (v_major, v_minor, v_patch)
    version = f"{v_major}.{v_minor}.{v_patch}{pre}"
    if major > 0:
        caret_upper = (major + 1, 0, 0)
    elif minor > 0:
        caret_upper = (0, minor + 1, 0)
    else:
        caret_upper = (0, 0, patch + 1)
    caret = parse_range(f"^{major}.{minor}.{patch}").contains(version)
    assert caret is (not pre and base <= release < caret_upper)
    tilde = parse_range(f"~{major}.{minor}.{patch}").contains(version)
    assert tilde is (not pre and base <= release < (major, minor + 1, 0))
    hyphen = parse_range(f"{major}.{minor}.{patch} - {major}.{minor + 1}.0").contains(version)
    assert hyphen is (not pre and base <= release <= (major, minor + 1, 0))
