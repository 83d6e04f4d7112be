"""dpkg ordering: cases restated from dpkg's lib/dpkg/t/t-version.c and Debian Policy §5.6.12."""

from __future__ import annotations

import pytest

from appliance.versions import InvalidVersion, scheme_for

DPKG = scheme_for("dpkg")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # t-version.c: test_version_compare, equalities
        ("0-0", "0-0"),
        ("0-00", "00-0"),
        ("1:2-3", "1:2-3"),
        # t-version.c: test_version_parse, each string equals its structured form
        ("0", "0:0"),
        ("0", "0:0-"),
        ("0:0-0", "0-0"),
        ("0:0.0-0.0", "0.0-0.0"),
        ("1:0", "1:0-"),
        ("0:0-0-0", "0-0-0"),
        ("0:0:0-0", "0:0:0-0"),
        ("0:09azAZ.-+~:-0", "0:09azAZ.-+~:-0"),
        ("0:0-azAZ09.+~", "0-azAZ09.+~"),
        ("  \t0:0-1", "0-1"),
        ("0:0-1\t  ", "0-1"),
        # an absent revision compares like "0"
        ("1.0", "1.0-0"),
        ("1.0", "0:1.0"),
    ],
)
def test_equal(a: str, b: str) -> None:
    assert DPKG.parse(a) == DPKG.parse(b)
    assert DPKG.compare(a, b) == 0
    assert hash(DPKG.parse(a)) == hash(DPKG.parse(b))


@pytest.mark.parametrize(
    ("low", "high"),
    [
        # t-version.c: epoch, upstream and revision differences
        ("0:0-0", "1:0-0"),
        ("0:a-0", "0:b-0"),
        ("0:0-a", "0:0-b"),
        ("1-1", "2-1"),
        ("1-1", "1-2"),
        # epochs dominate everything
        ("9.9-9", "1:0.1-1"),
        # "~" sorts before everything, even the end of the string
        ("1.0~rc1", "1.0"),
        ("1.0~rc1~git1", "1.0~rc1"),
        ("1.0~~", "1.0~"),
        ("1.0~~a", "1.0~"),
        ("1.0~", "1.0"),
        ("1.0", "1.0a"),
        ("1.0a", "1.0+"),
        ("1.0+", "1.0."),
        # Debian Policy example: ~~ < ~~a < ~ < (empty) < a
        ("~~", "~~a"),
        ("~~a", "~"),
        ("~", "0"),
        # letters sort before non-letters
        ("1.0a", "1.0."),
        ("1.0z", "1.0+"),
        # digit runs compare numerically
        ("1.2", "1.10"),
        ("1.09", "1.10"),
        ("1.0-1", "1.0-1.1"),
        ("1.0-9", "1.0-10"),
        ("2.30-1", "2.30-1+deb12u1"),
        ("2.36-9+deb12u4", "2.36-9+deb12u7"),
        ("1:2.38.1-5+deb12u2", "1:2.38.1-5+deb12u3"),
        ("7.88.1-10+deb12u5", "7.88.1-10+deb12u12"),
        ("3.0.11-1~deb12u2", "3.0.11-1"),
        ("1.2.3-1ubuntu0.1", "1.2.3-1ubuntu1"),
        # the hyphen belongs to the upstream version when a revision follows
        ("1.0-1-1", "1.0-2-1"),
    ],
)
def test_order(low: str, high: str) -> None:
    assert DPKG.parse(low) < DPKG.parse(high)
    assert DPKG.parse(high) > DPKG.parse(low)
    assert DPKG.compare(low, high) == -1
    assert DPKG.compare(high, low) == 1


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "it is empty"),
        ("  ", "it is empty"),
        ("0:", "upstream version is empty"),
        ("0:0 0-1", "whitespace"),
        ("-1:0-1", "epoch '-1' is not a number"),
        ("999999999999999999999999:0-1", "too big"),
        ("a:0-0", "epoch 'a' is not a number"),
        ("A:0-0", "epoch 'A' is not a number"),
        (":1.0", "epoch before ':' is empty"),
        ("-0", "upstream version is empty"),
        ("0:-0", "upstream version is empty"),
        ("0:0-0:0", "revision may hold only"),
        *((f"0:0{c}-0", "upstream version may hold only") for c in "!#@$%&/|\\<>()[]{};,_=*^'"),
        *((f"0:0-0{c}", "revision may hold only") for c in "!#@$%&/|\\<>()[]{}:;,_=*^'"),
    ],
)
def test_invalid(text: str, reason: str) -> None:
    with pytest.raises(InvalidVersion, match="dpkg version") as info:
        DPKG.parse(text)
    assert reason in info.value.reason
    assert repr(text) in str(info.value)
    assert isinstance(info.value, ValueError)


def test_upstream_not_starting_with_digit_is_accepted() -> None:
    # dpkg only warns about this (t-version.c: "0:abc3-0" -> warning), so it must order.
    assert DPKG.parse("0:abc3-0") < DPKG.parse("0:abd-0")


def test_text_is_kept() -> None:
    version = DPKG.parse("1:2.0-1")
    assert str(version) == "1:2.0-1"
    assert version.text == "1:2.0-1"
    assert version.scheme == "dpkg"
