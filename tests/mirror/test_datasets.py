"""The fast canonical line writer is byte-identical to bundles.canonical (RFC 8785)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bundles import canonical
from bundles.errors import CanonicalJSONError
from mirror.datasets import canonical_line

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.sampled_from(["\u2028", "\x7f", "\x00\x1f", "a:1.5,", "\U0001f600", "\ue000"])
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(), documents, max_size=6))
def test_fast_path_matches_rfc8785(record: dict[str, Any]) -> None:
    try:
        expected = canonical.dumps(record)
    except CanonicalJSONError:
        with pytest.raises(CanonicalJSONError):
            canonical_line(record)
        return
    assert canonical_line(record) == expected


@pytest.mark.parametrize(
    "record",
    [
        {"\ue000": 1, "\U0001f600": 2},  # UTF-16 order differs from code-point order
        {"n": 1e21, "m": 1e-7, "k": 100.0},
        {"big": 2**53 - 1},
        {"s": 'tab\there "quoted" back\\slash \x01'},
    ],
)
def test_known_divergent_inputs(record: dict[str, Any]) -> None:
    assert canonical_line(record) == canonical.dumps(record)
