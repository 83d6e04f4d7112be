"""SemVer 2.0.0 precedence (semver.org §11) and node-semver's version fixtures, for the
semver, npm and cargo schemes."""

from __future__ import annotations

import itertools

import pytest

from appliance.versions import InvalidVersion, VersionScheme, scheme_for
from appliance.versions.semver import parse_semver

SEMVER = scheme_for("semver")
NPM = scheme_for("npm")
CARGO = scheme_for("cargo")

# semver.org §11: 1.0.0-alpha < 1.0.0-alpha.1 < 1.0.0-alpha.beta < 1.0.0-beta < 1.0.0-beta.2
#                 < 1.0.0-beta.11 < 1.0.0-rc.1 < 1.0.0; 1.0.0 < 2.0.0 < 2.1.0 < 2.1.1
SPEC_ORDER = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "2.0.0",
    "2.1.0",
    "2.1.1",
]

# node-semver test/fixtures/comparisons.js (strict-mode rows): first > second
NODE_COMPARISONS = [
    ("0.0.0", "0.0.0-foo"),
    ("0.0.1", "0.0.0"),
    ("1.0.0", "0.9.9"),
    ("0.10.0", "0.9.0"),
    ("0.99.0", "0.10.0"),
    ("2.0.0", "1.2.3"),
    ("1.2.3", "1.2.3-asdf"),
    ("1.2.3", "1.2.3-4"),
    ("1.2.3", "1.2.3-4-foo"),
    ("1.2.3-5-foo", "1.2.3-5"),
    ("1.2.3-5", "1.2.3-4"),
    ("1.2.3-5-foo", "1.2.3-5-Foo"),
    ("3.0.0", "2.7.2+asdf"),
    ("1.2.3-a.10", "1.2.3-a.5"),
    ("1.2.3-a.b", "1.2.3-a.5"),
    ("1.2.3-a.b", "1.2.3-a"),
    ("1.2.3-a.b.c.10.d.5", "1.2.3-a.b.c.5.d.100"),
    ("1.2.3-r2", "1.2.3-r100"),
    ("1.2.3-r100", "1.2.3-R2"),
]


@pytest.mark.parametrize("scheme", [SEMVER, NPM, CARGO], ids=lambda s: s.name)
def test_spec_order(scheme: VersionScheme) -> None:
    parsed = [scheme.parse(v) for v in SPEC_ORDER]
    assert sorted(reversed(parsed)) == parsed
    for low, high in itertools.pairwise(parsed):
        assert low < high


@pytest.mark.parametrize(("high", "low"), NODE_COMPARISONS)
@pytest.mark.parametrize("scheme", [SEMVER, NPM], ids=lambda s: s.name)
def test_node_semver_comparisons(scheme: VersionScheme, high: str, low: str) -> None:
    assert scheme.parse(high) > scheme.parse(low)
    assert scheme.compare(low, high) == -1


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # node-semver test/fixtures/equality.js (strict-mode rows): build metadata is ignored
        ("1.2.3-beta+build", "1.2.3-beta+otherbuild"),
        ("1.2.3+build", "1.2.3+otherbuild"),
        ("  v1.2.3+build", "1.2.3+otherbuild"),
        ("1.2.3", "v1.2.3"),
    ],
)
def test_npm_equality(a: str, b: str) -> None:
    assert NPM.parse(a) == NPM.parse(b)


@pytest.mark.parametrize(
    ("text", "major", "minor", "patch", "pre", "build"),
    [
        # node-semver test/fixtures/valid-versions.js (without the "v" row)
        ("1.0.0", 1, 0, 0, (), ()),
        ("2.1.0", 2, 1, 0, (), ()),
        ("3.2.1", 3, 2, 1, (), ()),
        ("1.2.3-0", 1, 2, 3, ("0",), ()),
        ("1.2.3-123", 1, 2, 3, ("123",), ()),
        ("1.2.3-1.2.3", 1, 2, 3, ("1", "2", "3"), ()),
        ("1.2.3-1a", 1, 2, 3, ("1a",), ()),
        ("1.2.3-a1", 1, 2, 3, ("a1",), ()),
        ("1.2.3-alpha", 1, 2, 3, ("alpha",), ()),
        ("1.2.3-alpha.1", 1, 2, 3, ("alpha", "1"), ()),
        ("1.2.3-alpha-1", 1, 2, 3, ("alpha-1",), ()),
        ("1.2.3-alpha-.-beta", 1, 2, 3, ("alpha-", "-beta"), ()),
        ("1.2.3+456", 1, 2, 3, (), ("456",)),
        ("1.2.3+build", 1, 2, 3, (), ("build",)),
        ("1.2.3+new-build", 1, 2, 3, (), ("new-build",)),
        ("1.2.3+build.1", 1, 2, 3, (), ("build", "1")),
        ("1.2.3+build.1a", 1, 2, 3, (), ("build", "1a")),
        ("1.2.3+build.a1", 1, 2, 3, (), ("build", "a1")),
        ("1.2.3+build.alpha", 1, 2, 3, (), ("build", "alpha")),
        ("1.2.3+build.alpha.beta", 1, 2, 3, (), ("build", "alpha", "beta")),
        ("1.2.3-alpha+build", 1, 2, 3, ("alpha",), ("build",)),
    ],
)
def test_valid_versions(
    text: str, major: int, minor: int, patch: int, pre: tuple[str, ...], build: tuple[str, ...]
) -> None:
    parsed = parse_semver(text)
    assert (parsed.major, parsed.minor, parsed.patch) == (major, minor, patch)
    assert parsed.prerelease == pre
    assert parsed.build == build
    assert str(parsed) == text
    assert SEMVER.is_valid(text)
    assert CARGO.is_valid(text)


@pytest.mark.parametrize(
    "text",
    [
        "1.2",
        "1.2.3.4",
        "01.2.3",
        "1.02.3",
        "1.2.03",
        "1.2.3-01",
        "1.2.3-",
        "1.2.3+",
        "1.2.3-a..b",
        "v1.2.3",
        " 1.2.3",
        "hello, world",
        "1.2.3-a_b",
    ],
)
def test_strict_semver_refuses(text: str) -> None:
    with pytest.raises(InvalidVersion, match="semver version"):
        SEMVER.parse(text)
    with pytest.raises(InvalidVersion, match="cargo version"):
        CARGO.parse(text)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        # node-semver test/fixtures/invalid-versions.js
        ("1" * 255 + ".0.0", "longer than 256"),
        (f"{2**53 - 1}0.0.0", "larger than 2^53-1"),
        (f"0.{2**53 - 1}0.0", "larger than 2^53-1"),
        (f"0.0.{2**53 - 1}0", "larger than 2^53-1"),
        ("hello, world", "SemVer 2.0.0"),
        ("xyz", "SemVer 2.0.0"),
    ],
)
def test_npm_invalid(text: str, reason: str) -> None:
    with pytest.raises(InvalidVersion, match="npm version") as info:
        NPM.parse(text)
    assert reason in info.value.reason


def test_schemes_do_not_mix() -> None:
    with pytest.raises(TypeError, match="cannot compare a semver version"):
        _ = SEMVER.parse("1.0.0") < NPM.parse("1.0.0")
    assert SEMVER.parse("1.0.0") != NPM.parse("1.0.0")
