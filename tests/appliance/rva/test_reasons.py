"""The reason-code registry, its documentation, and the schema loader that checks codes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from appliance.policy.bundle import DEFAULT_DIR
from appliance.rva.reasons import DESCRIPTIONS, ReasonCode
from bundles import schemas

DOC = Path(__file__).parents[3] / "docs/reason-codes.md"
EXAMPLES = DEFAULT_DIR.parent / "examples"


def test_every_code_is_described_and_documented() -> None:
    documented = set(re.findall(r"^\| `(RISK\.[A-Z0-9_.]+)` \|", DOC.read_text(), re.MULTILINE))
    assert documented == {c.value for c in ReasonCode}
    assert set(DESCRIPTIONS) == set(ReasonCode)


def test_shipped_policies_emit_only_registered_codes() -> None:
    emitted = set()
    for rego in [*DEFAULT_DIR.glob("*.rego"), *EXAMPLES.glob("*/*.rego")]:
        emitted |= set(re.findall(r'"code": "(RISK\.[A-Z0-9_.]+)"', rego.read_text()))
    assert emitted
    assert emitted <= {c.value for c in ReasonCode}


def test_codes_fit_the_schema_pattern() -> None:
    pattern = schemas.load(schemas.RVA_V1)["$defs"]["reasonCode"]["pattern"]
    assert all(re.fullmatch(pattern, c.value) for c in ReasonCode)


def test_unknown_schema_is_a_clear_error() -> None:
    with pytest.raises(schemas.UnknownSchemaError, match="no JSON schema named 'rva-v9'"):
        schemas.load("rva-v9")
    assert not schemas.is_valid(schemas.RVA_V1, {})
