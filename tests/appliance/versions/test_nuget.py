"""NuGet ordering: the NuGet documentation's normalization and precedence rules."""

from __future__ import annotations

import pytest

from appliance.versions import InvalidVersion, scheme_for

NUGET = scheme_for("nuget")

ORDERED = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.0.1",
    "1.0.1",
    "1.1",
    "2.0.0.0-preview1",
    "2.0",
]


def test_order() -> None:
    parsed = [NUGET.parse(v) for v in ORDERED]
    for i, low in enumerate(parsed):
        for high in parsed[i + 1 :]:
            assert low < high, (low.text, high.text)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        # documented normalizations: leading zeros, a zero fourth part, build metadata
        ("1.00", "1.0"),
        ("1.01.1", "1.1.1"),
        ("1.0.0.0", "1.0.0"),
        ("1.0", "1.0.0"),
        ("1", "1.0.0"),
        ("1.0.7+r3456", "1.0.7"),
        # pre-release labels are case-insensitive
        ("1.0.0-Beta", "1.0.0-beta"),
        ("1.0.0-RC.1", "1.0.0-rc.1"),
    ],
)
def test_equal(a: str, b: str) -> None:
    assert NUGET.parse(a) == NUGET.parse(b)


@pytest.mark.parametrize(
    "text", ["", "1.0.0.0.0", "a.b", "1.0-", "1.0.0-beta..1", "v1.0.0", "1.0.0+"]
)
def test_invalid(text: str) -> None:
    with pytest.raises(InvalidVersion, match="nuget version"):
        NUGET.parse(text)
