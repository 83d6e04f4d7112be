"""RubyGems ordering: cases of rubygems' test_gem_version.rb (test_spaceship and friends)."""

from __future__ import annotations

import pytest

from appliance.versions import InvalidVersion, scheme_for
from appliance.versions.rubygems import canonical_segments, is_prerelease

GEM = scheme_for("rubygems")


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # test_gem_version.rb test_spaceship
        ("1.0", "1.0.0", 0),
        ("1.0", "1.0.a", 1),
        ("1.8.2", "0.0.0", 1),
        ("1.8.2", "1.8.2.a", 1),
        ("1.8.2.b", "1.8.2.a", 1),
        ("1.8.2.a", "1.8.2", -1),
        ("1.8.2.a10", "1.8.2.a9", 1),
        ("0.beta.1", "0.0.beta.1", 0),
        ("0.0.beta", "0.0.beta.1", -1),
        ("0.0.beta", "0.beta.1", -1),
        ("5.a", "5.0.0.rc2", -1),
        ("5.x", "5.0.0.rc2", 1),
        # Gem::Version documentation: 1.0.a.1 < 1.0.a.2 < 1.0.b1 < 1.0
        ("1.0.a.1", "1.0.a.2", -1),
        ("1.0.a.2", "1.0.b1", -1),
        ("1.0.b1", "1.0", -1),
        # "-" stands for ".pre."
        ("1.0.0-rc1", "1.0.0.pre.rc1", 0),
        ("1.0.0-rc1", "1.0.0", -1),
        ("1.0.0-rc1", "1.0.0.rc1", -1),
        # numbers compare numerically, zeros in the middle count
        ("1.10", "1.9", 1),
        ("1.0.1", "1", 1),
        ("1.0.0.1", "1.0.1", -1),
        ("7.0.8.1", "7.0.8", 1),
        ("2.7.4", "2.7.10", -1),
        ("1.13.10", "1.13.10.1", -1),
    ],
)
def test_spaceship(a: str, b: str, expected: int) -> None:
    assert GEM.compare(a, b) == expected
    assert GEM.compare(b, a) == -expected
    if expected == 0:
        assert hash(GEM.parse(a)) == hash(GEM.parse(b))


@pytest.mark.parametrize(
    ("text", "segments"),
    [
        ("1.0.0", (1,)),
        ("1.0.0.a.1.0", (1, "a", 1)),
        ("1.2.3-1", (1, 2, 3, "pre", 1)),
        ("0.beta.1", ("beta", 1)),
        ("1.8.2.a10", (1, 8, 2, "a", 10)),
    ],
)
def test_canonical_segments(text: str, segments: tuple[int | str, ...]) -> None:
    assert canonical_segments(text) == segments


def test_prerelease() -> None:
    assert is_prerelease("1.0.a")
    assert is_prerelease("1.0.0-rc1")
    assert not is_prerelease("1.0.0")


@pytest.mark.parametrize("text", ["junk", "1.0\n2.0", "1..2", "1.2 3.4", "", "1.0.", "-1", "1.0_1"])
def test_invalid(text: str) -> None:
    with pytest.raises(InvalidVersion, match="rubygems version"):
        GEM.parse(text)
