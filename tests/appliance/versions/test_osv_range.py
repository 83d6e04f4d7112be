"""OSV range evaluation (the OSV schema's sort-then-walk algorithm, with limits)."""

from __future__ import annotations

import pytest

from appliance.versions import Event, EventKind, InvalidRange, affected, prepare, scheme_for
from appliance.versions.osv_range import prepare_pairs

PYPI = scheme_for("pep440")
DPKG = scheme_for("dpkg")
SEMVER = scheme_for("semver")

TWO_WINDOWS = [
    {"introduced": "1.0"},
    {"fixed": "1.5"},
    {"introduced": "2.0"},
    {"fixed": "2.5"},
]


@pytest.mark.parametrize(
    ("events", "version", "expected"),
    [
        # introduced "0" is minus infinity
        ([{"introduced": "0"}, {"fixed": "2.0"}], "0.0.1", True),
        ([{"introduced": "0"}, {"fixed": "2.0"}], "1.9.9", True),
        ([{"introduced": "0"}, {"fixed": "2.0"}], "2.0", False),
        ([{"introduced": "0"}, {"fixed": "2.0"}], "2.0.1", False),
        ([{"introduced": "0"}, {"fixed": "2.0"}], "2.0rc1", True),
        # introduced is inclusive, fixed exclusive
        ([{"introduced": "1.0"}, {"fixed": "2.0"}], "0.9", False),
        ([{"introduced": "1.0"}, {"fixed": "2.0"}], "1.0", True),
        # several windows in one range
        (TWO_WINDOWS, "0.9", False),
        (TWO_WINDOWS, "1.0", True),
        (TWO_WINDOWS, "1.4.9", True),
        (TWO_WINDOWS, "1.5", False),
        (TWO_WINDOWS, "1.9", False),
        (TWO_WINDOWS, "2.0", True),
        (TWO_WINDOWS, "2.4", True),
        (TWO_WINDOWS, "2.5", False),
        (TWO_WINDOWS, "3.0", False),
        # events are sorted before the walk, whatever their published order
        (list(reversed(TWO_WINDOWS)), "1.2", True),
        (list(reversed(TWO_WINDOWS)), "1.7", False),
        ([{"fixed": "2.0"}, {"introduced": "0"}], "1.0", True),
        # last_affected is inclusive
        ([{"introduced": "1.0"}, {"last_affected": "1.4"}], "1.4", True),
        ([{"introduced": "1.0"}, {"last_affected": "1.4"}], "1.4.post1", False),
        ([{"introduced": "0"}, {"last_affected": "1.4"}], "0.1", True),
        # no fix: affected from introduced on
        ([{"introduced": "1.0"}], "99.0", True),
        ([{"introduced": "1.0"}], "0.99", False),
        ([{"introduced": "0"}], "0.0.0.dev0", True),
        # limits: also below some limit ("*" is infinity)
        ([{"introduced": "0"}, {"limit": "2.0"}], "1.9", True),
        ([{"introduced": "0"}, {"limit": "2.0"}], "2.0", False),
        ([{"introduced": "0"}, {"limit": "*"}], "100", True),
        ([{"introduced": "0"}, {"limit": "1.0"}, {"limit": "3.0"}], "2.0", True),
        ([{"introduced": "1.0"}, {"limit": "3.0"}], "0.5", False),
        ([{"introduced": "0"}, {"limit": "v*"}], "100", True),
    ],
)
def test_pypi_ranges(events: list[dict[str, str]], version: str, expected: bool) -> None:
    assert affected(version, events, PYPI) is expected


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("2.36-9+deb12u3", True),
        ("2.36-9+deb12u4", False),
        ("2.36-9+deb12u10", False),
        ("1:2.0-1", False),
        ("2.36~rc1-1", True),
    ],
)
def test_debian_range(version: str, expected: bool) -> None:
    events = [{"introduced": "0"}, {"fixed": "2.36-9+deb12u4"}]
    assert affected(version, events, DPKG) is expected


def test_semver_range_with_parsed_version() -> None:
    events = [Event(EventKind.INTRODUCED, "1.0.0"), Event(EventKind.FIXED, "1.0.2")]
    assert affected(SEMVER.parse("1.0.1"), events, SEMVER)
    assert not affected(SEMVER.parse("1.0.2"), events, SEMVER)
    assert affected("1.0.2-rc.1", events, SEMVER)


def test_prepare_is_cached_and_reusable() -> None:
    first = prepare([{"introduced": "0"}, {"fixed": "1.0"}], PYPI)
    again = prepare([Event(EventKind.INTRODUCED, "0"), Event(EventKind.FIXED, "1.0")], PYPI)
    assert first is again
    assert first.contains(PYPI.parse("0.5"))
    with pytest.raises(TypeError, match="range events are pep440 versions"):
        first.contains(DPKG.parse("0.5"))


def test_prepare_pairs_is_prepare_for_plain_pairs() -> None:
    pairs = (("introduced", "0"), ("fixed", "2.0"), ("limit", "*"))
    prepared = prepare_pairs(pairs, PYPI)
    assert prepared is prepare([{"introduced": "0"}, {"fixed": "2.0"}, {"limit": "*"}], PYPI)
    assert prepared.contains(PYPI.parse("1.9"))
    assert not prepared.contains(PYPI.parse("2.0.0"))
    with pytest.raises(InvalidRange, match="fixed: not a version!"):
        prepare_pairs((("introduced", "0"), ("fixed", "not a version!")), PYPI)
    with pytest.raises(InvalidRange, match="needs at least one introduced event"):
        prepare_pairs((("fixed", "1.0"),), PYPI)


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ([{"introduced": "0", "fixed": "1.0"}], "exactly one of introduced"),
        ([{"affected": "1.0"}], "exactly one of introduced"),
        ([{"fixed": 1}], "exactly one of introduced"),
        ([{"introduced": "0"}, {"fixed": "not a version!"}], "fixed: not a version!"),
        ([{"introduced": "0"}, {"limit": "nope nope"}], "limit: nope nope"),
        ([], "needs at least one introduced event"),
        ([{"fixed": "1.0"}, {"limit": "*"}], "needs at least one introduced event"),
    ],
)
def test_bad_events(events: list[dict[str, object]], message: str) -> None:
    with pytest.raises(InvalidRange, match="range") as info:
        affected("1.0", events, PYPI)
    assert message in str(info.value)
