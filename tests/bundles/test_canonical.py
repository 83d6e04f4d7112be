"""Canonical JSON: RFC 8785 test vectors and properties."""

from __future__ import annotations

import json
import random
import struct
import tracemalloc
from pathlib import Path

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from bundles import canonical
from bundles.errors import CanonicalJSONError, SizeLimitError

# RFC 8785 Appendix B: IEEE 754 bit patterns and their canonical serialization.
NUMBER_VECTORS = [
    ("0000000000000000", "0"),
    ("8000000000000000", "0"),
    ("0000000000000001", "5e-324"),
    ("8000000000000001", "-5e-324"),
    ("7fefffffffffffff", "1.7976931348623157e+308"),
    ("ffefffffffffffff", "-1.7976931348623157e+308"),
    ("4340000000000000", "9007199254740992"),
    ("c340000000000000", "-9007199254740992"),
    ("4430000000000000", "295147905179352830000"),
    ("44b52d02c7e14af5", "9.999999999999997e+22"),
    ("44b52d02c7e14af6", "1e+23"),
    ("44b52d02c7e14af7", "1.0000000000000001e+23"),
    ("444b1ae4d6e2ef4e", "999999999999999700000"),
    ("444b1ae4d6e2ef4f", "999999999999999900000"),
    ("444b1ae4d6e2ef50", "1e+21"),
    ("3eb0c6f7a0b5ed8c", "9.999999999999997e-7"),
    ("3eb0c6f7a0b5ed8d", "0.000001"),
    ("41b3de4355555553", "333333333.3333332"),
    ("41b3de4355555554", "333333333.33333325"),
    ("41b3de4355555555", "333333333.3333333"),
    ("41b3de4355555556", "333333333.3333334"),
    ("41b3de4355555557", "333333333.33333343"),
    ("becbf647612f3696", "-0.0000033333333333333333"),
    ("43143ff3c1cb0959", "1424953923781206.2"),
]


def _double(bits: str) -> float:
    return float(struct.unpack(">d", bytes.fromhex(bits))[0])


@pytest.mark.parametrize(("bits", "expected"), NUMBER_VECTORS)
def test_rfc8785_number_vectors(bits: str, expected: str) -> None:
    assert canonical.dumps(_double(bits)) == expected.encode()


@pytest.mark.parametrize("bits", ["7fffffffffffffff", "7ff0000000000000", "fff0000000000000"])
def test_nan_and_infinity_are_refused(bits: str) -> None:
    with pytest.raises(CanonicalJSONError, match="canonical JSON"):
        canonical.dumps(_double(bits))


def test_rfc8785_structure_example() -> None:
    # RFC 8785 §3.2.2 input, parsed as any JSON reader would.
    source = (
        '{"numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],'
        ' "string": "\\u20ac$\\u000F\\u000aA\'\\u0042\\u0022\\u005c\\\\\\"\\/",'
        ' "literals": [null, true, false]}'
    )
    expected = (
        '{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],'
        '"string":"€$\\u000f\\nA\'B\\"\\\\\\\\\\"/"}'
    )
    assert canonical.dumps(json.loads(source)).decode() == expected


def test_rfc8785_key_sorting_by_utf16_code_units() -> None:
    # RFC 8785 §3.2.3: keys sort by UTF-16 code units, so the emoji (a surrogate pair starting
    # 0xD83D) sorts before U+FB33 although its code point is larger.
    value = {
        "\u20ac": "Euro Sign",
        "\r": "Carriage Return",
        "\ufb33": "Hebrew Letter Dalet With Dagesh",
        "1": "One",
        "\U0001f600": "Emoji: Grinning Face",
        "\u0080": "Control",
        "\u00f6": "Latin Small Letter O With Diaeresis",
    }
    order = [k for k in json.loads(canonical.dumps(value))]
    assert order == ["\r", "1", "\u0080", "\u00f6", "\u20ac", "\U0001f600", "\ufb33"]


def test_integers_stay_integers() -> None:
    assert canonical.dumps({"n": 3, "f": 3.0}) == b'{"f":3,"n":3}'


def test_large_integers_whose_double_reads_back_the_same_are_written() -> None:
    values = [2**53, -(2**53), 295147905179352830000, 10**22]
    assert canonical.dumps(values) == (
        b"[9007199254740992,-9007199254740992,295147905179352830000,1e+22]"
    )


@pytest.mark.parametrize("value", [2**53 + 1, 2**60, 10**400])
def test_large_integers_that_would_be_rounded_are_refused(value: int) -> None:
    with pytest.raises(CanonicalJSONError, match="would be rounded"):
        canonical.dumps({"n": [value]})


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@given(json_values)
def test_round_trip_is_a_fixed_point(value: object) -> None:
    data = canonical.dumps(value)
    assert canonical.dumps(canonical.loads(data)) == data
    assert canonical.is_canonical(data)


# any code point, lone surrogates and control characters included; keys on both sides of the
# places where code point and UTF-16 order part (U+E000-U+FFFF against U+10000 and up)
any_text = st.text(st.characters(blacklist_categories=()), max_size=8) | st.sampled_from(
    ["\ue000", "\uffff", "\U00010000", "\U0001f600", "a\x7f", "\u2028", "\x00\x1f"]
)
wide_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.floats(allow_nan=False, allow_infinity=False)
    | any_text,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.tuples(inner, inner)
        | st.dictionaries(any_text, inner, max_size=5)
    ),
    max_leaves=30,
)


def reference(value: object) -> bytes | None:
    """The bytes the ``rfc8785`` library writes (large integers as their exact double), or
    None when it refuses the value."""
    try:
        return rfc8785.dumps(value)  # type: ignore[arg-type]
    except rfc8785.IntegerDomainError:
        try:
            return rfc8785.dumps(canonical._exact_doubles(value))
        except (rfc8785.CanonicalizationError, CanonicalJSONError, UnicodeEncodeError):
            return None
    except (rfc8785.CanonicalizationError, UnicodeEncodeError):
        return None


@given(wide_values)
def test_plain_values_are_written_as_the_reference_writes_them(value: object) -> None:
    expected = reference(value)
    if expected is None:
        with pytest.raises(CanonicalJSONError):
            canonical.dumps(value)
    else:
        assert canonical.dumps(value) == expected


def test_keys_sort_by_utf16_also_between_the_planes() -> None:
    value = {"\U0001f600": 1, "\uffff": 2, "\ue000": 3, "a": 4}
    assert canonical.dumps(value) == reference(value)
    # U+1F600 is the surrogate pair D83D DE00: before U+E000 by code unit, after it by code point
    assert canonical.dumps(value).decode() == '{"a":4,"\U0001f600":1,"\ue000":3,"\uffff":2}'


@given(st.dictionaries(st.text(), json_scalars, max_size=8), st.randoms())
def test_key_order_does_not_matter(value: dict[str, object], rnd: random.Random) -> None:
    items = list(value.items())
    rnd.shuffle(items)
    assert canonical.dumps(dict(items)) == canonical.dumps(value)
    assert canonical.digest(dict(items)) == canonical.digest(value)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b'{"a": 1, "a": 2}', "duplicate JSON object key 'a'"),
        (b'{"a": NaN}', "NaN is not allowed"),
        (b'{"a": Infinity}', "Infinity is not allowed"),
        (b'{"a": ', "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_strict_loading_refuses_ambiguous_documents(document: bytes, message: str) -> None:
    with pytest.raises(CanonicalJSONError, match=message) as info:
        canonical.loads(document, source="manifest.json")
    assert info.value.diagnostics().startswith("manifest.json: ")


def test_loading_has_a_size_limit() -> None:
    with pytest.raises(SizeLimitError, match="exceeds the JSON size limit of 8 bytes"):
        canonical.loads(b'{"a": "long"}', limit=8)


def test_is_canonical_detects_whitespace_and_order() -> None:
    assert canonical.is_canonical(b'{"a":1,"b":2}')
    assert not canonical.is_canonical(b'{"b":2,"a":1}')
    assert not canonical.is_canonical(b'{"a": 1}')
    assert not canonical.is_canonical(b"{nope")


def test_dumps_lines() -> None:
    assert canonical.dumps_lines([{"b": 1, "a": 2}, [1]]) == b'{"a":2,"b":1}\n[1]\n'


def test_load_file_holds_what_the_file_holds_not_the_cap(tmp_path: Path) -> None:
    # One read(cap + 1) allocates the whole 64 MiB cap for a small document.
    path = tmp_path / "small.json"
    path.write_bytes(b'{"a": 1}')
    tracemalloc.start()
    try:
        assert canonical.load_file(path) == {"a": 1}
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


@given(
    st.lists(
        st.floats(allow_nan=False, allow_infinity=False)
        | st.floats(min_value=1e-4, max_value=1e16)
        | st.floats(min_value=-1e16, max_value=-1e-4)
        | st.integers(min_value=-(2**54), max_value=2**54).map(float)
        | st.sampled_from([0.0, -0.0, 1e-4, 9.999999999999999e-05, 1e16, 9999999999999998.0]),
        max_size=5,
    )
)
def test_floats_are_written_as_the_reference_writes_them(floats: list[float]) -> None:
    """Floats written without an exponent take the fast path: the same bytes as ECMAScript's
    number formatting, an integral value as an integer."""
    for value in (floats, {"a": floats, "b": {"c": floats[:1]}}):
        assert canonical.dumps(value) == reference(value)
