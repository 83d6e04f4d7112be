"""Maven ordering: the POM reference's "Version Order Specification" examples and the
cases of maven-artifact's ComparableVersionTest that the specification decides."""

from __future__ import annotations

import pytest

from appliance.versions import InvalidVersion, scheme_for

MAVEN = scheme_for("maven")

# ComparableVersionTest.VERSIONS_QUALIFIER (unchanged from Maven 3 to Maven 4), increasing
VERSIONS_QUALIFIER = [
    "1-alpha2snapshot",
    "1-alpha2",
    "1-alpha-123",
    "1-beta-2",
    "1-beta123",
    "1-m2",
    "1-m11",
    "1-rc",
    "1-cr2",
    "1-rc123",
    "1-SNAPSHOT",
    "1",
    "1-sp",
    "1-sp2",
    "1-sp123",
    "1-abc",
    "1-def",
    "1-pom-1",
    "1-1-snapshot",
    "1-1",
    "1-2",
    "1-123",
]

# ComparableVersionTest.VERSIONS_NUMBER as in Maven 4, increasing. (Maven 3's list put
# "2-1" < "2.0.a" < "2.0.0.a"; this scheme drops zeros before a qualifier, as Maven 4 does
# in effect, so "2.0.a" == "2.0.0.a" < "2-1": see test_zeros_before_a_qualifier.)
VERSIONS_NUMBER = [
    "2.0",
    "2.0.a",
    "2-1",
    "2.0.2",
    "2.0.123",
    "2.1.0",
    "2.1-a",
    "2.1b",
    "2.1-c",
    "2.1-1",
    "2.1.0.1",
    "2.2",
    "2.123",
    "11.a2",
    "11.a11",
    "11.b2",
    "11.b11",
    "11.m2",
    "11.m11",
    "11",
    "11.a",
    "11b",
    "11c",
    "11m",
]


@pytest.mark.parametrize("versions", [VERSIONS_QUALIFIER, VERSIONS_NUMBER])
def test_ordered_lists(versions: list[str]) -> None:
    parsed = [MAVEN.parse(v) for v in versions]
    for i, low in enumerate(parsed):
        for high in parsed[i + 1 :]:
            assert low < high, (low.text, high.text)
            assert high > low


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # ComparableVersionTest.testVersionsEqual
        ("1", "1"),
        ("1", "1.0"),
        ("1", "1.0.0"),
        ("1.0", "1.0.0"),
        ("1", "1-0"),
        ("1", "1.0-0"),
        ("1.0", "1.0-0"),
        ("1a", "1-a"),
        ("1a", "1.0-a"),
        ("1a", "1.0.0-a"),
        ("1.0a", "1-a"),
        ("1.0.0a", "1-a"),
        ("1x", "1-x"),
        ("1x", "1.0-x"),
        ("1x", "1.0.0-x"),
        ("1.0x", "1-x"),
        ("1.0.0x", "1-x"),
        ("1cr", "1rc"),
        ("1a1", "1-alpha-1"),
        ("1b2", "1-beta-2"),
        ("1m3", "1-milestone-3"),
        ("1X", "1x"),
        ("1A", "1a"),
        ("1B", "1b"),
        ("1M", "1m"),
        ("1Cr", "1Rc"),
        ("1cR", "1rC"),
        ("1m3", "1Milestone3"),
        ("1m3", "1MileStone3"),
        ("1m3", "1MILESTONE3"),
        ("1ga", "1"),
        ("1release", "1"),
        ("1final", "1"),
        ("1GA", "1"),
        ("1FinaL", "1"),
        ("1.0.0-alpha1", "1.0.0-ALPHA1"),
        ("1.a", "1.A"),
        ("1-abcdefghijklmnopqrstuvwxyz", "1-ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
        # testVersionEqualWithLeadingZeroes / testVersionZeroEqualWithLeadingZeroes
        ("0000000000000000001", "1"),
        ("0001", "01"),
        ("0000000000000000000", "0"),
        # POM reference examples
        ("1.foo", "1-foo"),
        ("1.ga", "1"),
        ("1-ga", "1-0"),
        ("1-0", "1.0"),
        ("1-ga-1", "1-1"),
        ("1-a1", "1-alpha-1"),
    ],
)
def test_equal(a: str, b: str) -> None:
    assert MAVEN.parse(a) == MAVEN.parse(b)
    assert MAVEN.compare(a, b) == 0
    assert hash(MAVEN.parse(a)) == hash(MAVEN.parse(b))


@pytest.mark.parametrize(
    ("low", "high"),
    [
        # ComparableVersionTest.testVersionComparing
        ("1", "2"),
        ("1.5", "2"),
        ("1", "2.5"),
        ("1.0", "1.1"),
        ("1.1", "1.2"),
        ("1.0.0", "1.1"),
        ("1.0.1", "1.1"),
        ("1.1", "1.2.0"),
        ("1.0-alpha-1", "1.0"),
        ("1.0-alpha-1", "1.0-alpha-2"),
        ("1.0-alpha-1", "1.0-beta-1"),
        ("1.0-beta-1", "1.0-SNAPSHOT"),
        ("1.0-SNAPSHOT", "1.0"),
        ("1.0-alpha-1-SNAPSHOT", "1.0-alpha-1"),
        ("1.0", "1.0-1"),
        ("1.0-1", "1.0-2"),
        ("1.0.0", "1.0-1"),
        ("2.0-1", "2.0.1"),
        ("2.0.1-klm", "2.0.1-lmn"),
        ("2.0.1", "2.0.1-xyz"),
        ("2.0.1", "2.0.1-123"),
        ("2.0.1-xyz", "2.0.1-123"),
        # testLeadingZeroes, testCompareDigitToLetter, testLexicographicOrder, non-ASCII
        ("0.7", "2"),
        ("0.2", "1.0.7"),
        ("J", "7"),
        ("c", "7"),
        ("aardvark", "zebra"),
        ("zebra", "ζέβρα"),
        ("é", "1"),
        ("\u0668", "1"),
        # testMng5568: transitivity with an unusual version
        ("6.1.0rc3", "6.1.0"),
        ("6.1.0rc3", "6.1H.5-beta"),
        ("6.1.0", "6.1H.5-beta"),
        # testMng6572: long numbers
        ("20190126.230843", "1234567890.12345"),
        ("1234567890.12345", "123456789012345.1H.5-beta"),
        ("123456789012345.1H.5-beta", "12345678901234567890.1H.5-beta"),
        # testMng6964: qualifiers after "-0."
        ("1-0.alpha", "1"),
        ("1-0.beta", "1"),
        ("1-0.alpha", "1-0.beta"),
        # POM reference examples
        ("1", "1.1"),
        ("1-snapshot", "1"),
        ("1", "1-sp"),
        ("1-foo2", "1-foo10"),
        ("1.foo", "1-1"),
        ("1-1", "1.1"),
        ("1-ga", "1-sp"),
        ("1-ga.1", "1-sp.1"),
        ("1-sp-1", "1-ga-1"),
        ("1.0.0-RC1", "1.0.0"),
        ("2.17.0", "2.17.1"),
        ("2.15.0-rc1", "2.15.0-rc2"),
        ("5.3.18", "5.3.20.RELEASE"),
        ("1.2.3.Final", "1.2.4.Final"),
    ],
)
def test_order(low: str, high: str) -> None:
    assert MAVEN.parse(low) < MAVEN.parse(high)
    assert MAVEN.compare(high, low) == 1


@pytest.mark.parametrize(
    ("a", "b"), [("2.0.a", "2.0.0.a"), ("1.0.0.RC1", "1-RC1"), ("5.0.0.M1", "5-m1")]
)
def test_zeros_before_a_qualifier(a: str, b: str) -> None:
    assert MAVEN.parse(a) == MAVEN.parse(b)


def test_order_stays_transitive_where_comparable_version_is_not() -> None:
    # ComparableVersion says 0 > 0.SNAPSHOT, a > 0 and 0.SNAPSHOT > a: a cycle. Here
    # 0.SNAPSHOT sorts like SNAPSHOT, below the release "0", below "a".
    low, mid, high = (MAVEN.parse(v) for v in ("0.SNAPSHOT", "0", "a"))
    assert low < mid < high
    assert low < high


@pytest.mark.parametrize("text", ["", " 1.0", "1.0 beta", "1.0\t"])
def test_invalid(text: str) -> None:
    with pytest.raises(InvalidVersion, match="maven version"):
        MAVEN.parse(text)
