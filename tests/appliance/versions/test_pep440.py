"""PEP 440 ordering: the ordered list from packaging's tests/test_version.py (epoch 0 part),
PEP 440's normalization equalities, and refusal of legacy strings."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from packaging.version import Version as PackagingVersion

from appliance.versions import InvalidVersion, scheme_for
from appliance.versions.pep440 import packaging_version

PEP440 = scheme_for("pep440")

# packaging tests/test_version.py VERSIONS (implicit epoch 0), in increasing order
ORDERED = [
    "1.0.dev456",
    "1.0a1",
    "1.0a2.dev456",
    "1.0a12.dev456",
    "1.0a12",
    "1.0b1.dev456",
    "1.0b2",
    "1.0b2.post345.dev456",
    "1.0b2.post345",
    "1.0b2-346",
    "1.0c1.dev456",
    "1.0c1",
    "1.0rc2",
    "1.0c3",
    "1.0",
    "1.0.post456.dev34",
    "1.0.post456",
    "1.1.dev1",
    "1.2+123abc",
    "1.2+123abc456",
    "1.2+abc",
    "1.2+abc123",
    "1.2+abc123def",
    "1.2+1234.abc",
    "1.2+123456",
    "1.2.r32+123456",
    "1.2.rev33+123456",
    # explicit epoch 1 sorts after every epoch 0 version
    "1!1.0.dev456",
    "1!1.0a1",
    "1!1.0",
    "1!1.2.rev33+123456",
]


def test_order() -> None:
    parsed = [PEP440.parse(v) for v in ORDERED]
    for i, low in enumerate(parsed):
        for high in parsed[i + 1 :]:
            assert low < high, (low.text, high.text)
            assert PEP440.compare(high, low) == 1


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("1.0RC1", "1.0rc1"),
        ("1.0c1", "1.0rc1"),
        ("1.0-alpha", "1.0a0"),
        ("1.0-1", "1.0.post1"),
        ("1.0.post", "1.0.post0"),
        ("v1.0", "1.0"),
        ("1.0.0", "1.0"),
        ("1.0", "0!1.0"),
        ("1.0+ubuntu-1", "1.0+ubuntu.1"),
        ("  1.0  ", "1.0"),
    ],
)
def test_normalization_equalities(a: str, b: str) -> None:
    assert PEP440.parse(a) == PEP440.parse(b)
    assert hash(PEP440.parse(a)) == hash(PEP440.parse(b))


@pytest.mark.parametrize(
    "text",
    [
        "french toast",
        "1.0-SNAPSHOT",
        "1.0+a+",
        "1.0++",
        "1.0+_foobar",
        "1.0+foo&asd",
        "2.0.0.x",
        "",
    ],
)
def test_legacy_strings_are_refused(text: str) -> None:
    with pytest.raises(
        InvalidVersion, match=re.escape(f"pep440 version {text!r} is not valid")
    ) as info:
        PEP440.parse(text)
    assert info.value.__cause__ is not None


def test_packaging_value_is_exposed() -> None:
    assert packaging_version(PEP440.parse("2.0rc1")).is_prerelease
    with pytest.raises(TypeError, match="not a pep440 version"):
        packaging_version(scheme_for("npm").parse("1.0.0"))


_NUMBER = st.sampled_from(["0", "1", "2", "10", "01", "00"])
_PEP440_TEXT = st.builds(
    lambda epoch, release, pre, post, dev, local: epoch + release + pre + post + dev + local,
    st.sampled_from(["", "1!", "0!"]),
    st.lists(_NUMBER, min_size=1, max_size=4).map(".".join),
    st.sampled_from(["", "a1", "b0", "rc2", "c1", ".alpha", "-pre3"]),
    st.sampled_from(["", ".post1", "-2", ".rev", "post0"]),
    st.sampled_from(["", ".dev0", "dev3"]),
    st.sampled_from(["", "+abc", "+1", "+abc.5", "+5.abc", "+Ubuntu-1", "+01"]),
)


@given(_PEP440_TEXT, _PEP440_TEXT)
def test_keys_order_as_packaging_orders(a: str, b: str) -> None:
    """The plain key (and its shortcut for digits-and-dots text) orders exactly as the
    reference implementation."""
    mine_a, mine_b = PEP440.parse(a), PEP440.parse(b)
    ref_a, ref_b = PackagingVersion(a), PackagingVersion(b)
    assert (mine_a < mine_b) == (ref_a < ref_b)
    assert (mine_a == mine_b) == (ref_a == ref_b)
    assert (mine_a > mine_b) == (ref_a > ref_b)


@pytest.mark.parametrize("text", ["1", "1.0", "1.0.0", "01.2", "0", "0.0", "2.0.1.0.0", "10"])
def test_release_only_shortcut_gives_the_full_parse_key(text: str) -> None:
    full = PEP440.parse("0!" + text)  # an epoch: the shortcut does not apply
    assert PEP440.parse(text).key == full.key
    assert PEP440.parse(text).text == text
