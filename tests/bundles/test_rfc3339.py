"""The one RFC 3339 parser: the forms it takes, the forms it refuses, the form it writes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bundles.rfc3339 import TimeFormatError, format_time, is_canonical, parse_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-31T23:59:59Z", datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2026-12-31t23:59:59z", datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2026-12-31 23:59:59Z", datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2026-12-31T23:59Z", datetime(2026, 12, 31, 23, 59, tzinfo=UTC)),
        ("2026-12-31", datetime(2026, 12, 31, tzinfo=UTC)),
        ("  2026-12-31  ", datetime(2026, 12, 31, tzinfo=UTC)),
        ("2027-01-01T01:00:00+01:00", datetime(2027, 1, 1, tzinfo=UTC)),
        ("2026-12-31T19:00:00-05:00", datetime(2027, 1, 1, tzinfo=UTC)),
        ("2026-12-31T23:59:59.5Z", datetime(2026, 12, 31, 23, 59, 59, 500000, tzinfo=UTC)),
        ("2026-12-31T23:59:59.123456789Z", datetime(2026, 12, 31, 23, 59, 59, 123456, tzinfo=UTC)),
    ],
)
def test_accepted_forms_come_back_as_utc(text: str, expected: datetime) -> None:
    parsed = parse_time(text, where="--at")
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("noon", "--at: 'noon' is not an RFC 3339 time"),
        ("20261231", "--at: '20261231' is not an RFC 3339 time"),
        ("2026-W53-4", "--at: '2026-W53-4' is not an RFC 3339 time"),
        ("2026-12-31T23", "--at: '2026-12-31T23' is not an RFC 3339 time"),
        ("2026-12-31T23:59:59+0100", "--at: '2026-12-31T23:59:59+0100' is not an RFC 3339 time"),
        ("2026-12-31T23:59:59", "--at: '2026-12-31T23:59:59' has no time zone"),
        ("2026-02-30", "--at: '2026-02-30' is not a real time (day is out of range for month)"),
        ("2026-12-31T24:00:00Z", "--at: '2026-12-31T24:00:00Z' is not a real time"),
        ("2026-12-31T00:00:00+24:00", "--at: '2026-12-31T00:00:00+24:00' has an impossible"),
        ("", "--at: time must be a non-empty string, got ''"),
    ],
)
def test_refusals_name_the_option_the_value_and_an_example(text: str, message: str) -> None:
    with pytest.raises(TimeFormatError) as caught:
        parse_time(text, where="--at")
    assert caught.value.message.startswith(message)
    hint = caught.value.hint or ""
    assert "2026-12-31T23:59:59Z" in hint or "+01:00" in hint


def test_a_long_bad_value_is_cut_short() -> None:
    with pytest.raises(TimeFormatError) as caught:
        parse_time("x" * 10_000, where="expires")
    assert len(caught.value.message) < 150


def test_non_strings_are_refused() -> None:
    with pytest.raises(TimeFormatError, match=r"expires: time must be a non-empty string, got 7"):
        parse_time(7, where="expires")


def test_format_is_canonical_utc_whole_seconds() -> None:
    plus_two = timezone(timedelta(hours=2))
    when = datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=plus_two)
    assert format_time(when) == "2026-01-02T01:04:05Z"
    assert format_time(datetime(5, 1, 2, tzinfo=UTC)) == "0005-01-02T00:00:00Z"
    with pytest.raises(TimeFormatError, match="has no time zone"):
        format_time(datetime(2026, 1, 2))


def test_canonical_form_is_exactly_what_format_writes() -> None:
    assert is_canonical("2030-01-01T00:00:00Z")
    for text in ("2030-01-01", "2030-01-01T00:00:00+00:00", "2030-01-01T00:00:00.0Z", "soon"):
        assert not is_canonical(text)


@given(st.datetimes(timezones=st.just(UTC)))
def test_format_then_parse_round_trips(when: datetime) -> None:
    text = format_time(when)
    assert parse_time(text, where="t") == when.replace(microsecond=0)
    assert is_canonical(text)
