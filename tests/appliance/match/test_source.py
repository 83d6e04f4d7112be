"""Record digests equal the SHA-256 of the canonical line, whatever the record holds."""

from __future__ import annotations

import hashlib
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from appliance.match.source import record_digest
from bundles import canonical

scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53 - 1), max_value=2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=500)
@given(st.dictionaries(st.text(max_size=6), values, max_size=5))
def test_record_digest_is_the_canonical_digest(record: dict[str, Any]) -> None:
    assert record_digest(record) == hashlib.sha256(canonical.dumps(record)).hexdigest()


def test_examples_on_both_paths() -> None:
    plain = {"id": "A-1", "n": 3, "ok": True, "none": None, "s": 'x\ty\u0001\\u ":1.5'}
    odd = {"id": "A-2", "score": 7.5, "name": "Kotěšovec", "big": 2**53 + 2, "𝄞": 1, "\ue000": 2}
    for record in (plain, odd):
        assert record_digest(record) == hashlib.sha256(canonical.dumps(record)).hexdigest()
