"""apk ordering, checked against apk-tools' own test table (tests/data/versions)."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.versions import InvalidVersion, scheme_for

APK = scheme_for("apk")
DATA = Path(__file__).parents[2] / "data" / "versions" / "apk-version.data"

# Lines of the table this scheme does not model: apk's "fuzzy" operators (~, <~, >~, !~),
# which are dependency-matching operators, not orderings; and the comparisons that involve an
# invalid version (apk-tools compares up to the first bad token; this scheme refuses them).
FUZZY_OPERATORS = {"~", "<~", ">~", "!~"}
INVALID_COMPARISONS = {"1.0 < 1.0bc": "1.0bc", "23_foo > 4_beta": "23_foo"}


def _lines() -> list[str]:
    out = []
    for raw in DATA.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            out.append(line)
    return out


def _comparisons() -> list[tuple[str, str, str]]:
    cases = []
    for line in _lines():
        parts = line.split()
        if len(parts) == 3 and parts[1] not in FUZZY_OPERATORS and line not in INVALID_COMPARISONS:
            cases.append((parts[0], parts[1], parts[2]))
    return cases


def _validity() -> list[tuple[str, bool]]:
    return [
        (line[1:], False) if line.startswith("!") else (line, True)
        for line in _lines()
        if len(line.split()) == 1
    ]


def test_table_is_mostly_comparisons() -> None:
    assert len(_comparisons()) > 700
    assert len(_validity()) > 30


@pytest.mark.parametrize(("a", "op", "b"), _comparisons())
def test_apk_tools_comparisons(a: str, op: str, b: str) -> None:
    va, vb = APK.parse(a), APK.parse(b)
    expected = {"<": -1, "=": 0, ">": 1}[op]
    assert APK.compare(va, vb) == expected
    assert APK.compare(vb, va) == -expected


@pytest.mark.parametrize(("text", "valid"), _validity())
def test_apk_tools_validity(text: str, valid: bool) -> None:
    assert APK.is_valid(text) is valid


@pytest.mark.parametrize(("line", "invalid"), INVALID_COMPARISONS.items())
def test_invalid_versions_of_the_table_are_refused(line: str, invalid: str) -> None:
    assert line in _lines()
    with pytest.raises(InvalidVersion, match=f"apk version '{invalid}' is not valid"):
        APK.parse(invalid)


@pytest.mark.parametrize(
    ("low", "high"),
    [
        ("1.0_alpha", "1.0_beta"),
        ("1.0_beta", "1.0_pre"),
        ("1.0_pre", "1.0_rc"),
        ("1.0_rc", "1.0"),
        ("1.0", "1.0_cvs"),
        ("1.0_cvs", "1.0_svn"),
        ("1.0_svn", "1.0_git"),
        ("1.0_git", "1.0_hg"),
        ("1.0_hg", "1.0_p"),
        ("1.0_p1", "1.0_p2"),
        ("1.0", "1.0-r1"),
        ("1.0-r1", "1.0-r2"),
        ("1.0-r9", "1.0-r10"),
        ("1.0", "1.0a"),
        ("1.0a", "1.0b"),
        ("1.0z", "1.0.1"),
        ("3.3.2-r0", "3.3.2-r1"),
        ("1.36.1-r29", "1.36.1-r30"),
        ("3.0.13-r0", "3.0.14-r0"),
        ("1.0_rc1", "1.0_rc1-r1"),
        ("1.0_pre1", "1.0_pre1~abc"),
        ("1.0_pre1-r1", "1.0_pre1~abc"),
    ],
)
def test_suffix_and_revision_order(low: str, high: str) -> None:
    assert APK.parse(low) < APK.parse(high)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "must start with a digit"),
        ("r1", "must start with a digit"),
        ("1.0_foo", "unknown suffix '_foo'"),
        ("1.0-1", "unexpected '-1'"),
        ("1.0 ", "unexpected ' '"),
    ],
)
def test_invalid_messages(text: str, reason: str) -> None:
    with pytest.raises(InvalidVersion) as info:
        APK.parse(text)
    assert reason in info.value.reason
