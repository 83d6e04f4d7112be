"""RFC 3339 times: the one parser for every option and every stored or signed time, and the one
form times are written in.

The rules, the same wherever a time is read (an option such as ``gate --at`` or
``audit --since``, a bundle's ``created``/``expires``, a VEX statement's ``timestamp``, an
RVA's ``evaluationTime``):

- ``YYYY-MM-DDTHH:MM:SS`` with an optional fraction, and a time zone: ``Z`` (or ``z``) for UTC
  or an offset ``+hh:mm``/``-hh:mm``. ``T`` may be ``t`` or a space (RFC 3339 §5.6, note).
  Seconds may be left out (``2026-12-31T23:59Z``), as the parser before this one allowed.
- A date alone (``2026-12-31``) is accepted everywhere and means midnight UTC at its start.
- A date and time without a time zone is refused: the reader cannot know which clock was meant,
  and guessing UTC would silently shift a local time by hours.
- Week dates, ordinal dates, basic forms (``20261231``) and hour-only times are refused: they
  are ISO 8601, not RFC 3339.

Every parsed time comes back as an aware ``datetime`` in UTC. :func:`format_time` writes the
canonical form, UTC with ``Z`` and whole seconds (``2026-12-31T23:59:59Z``): one fixed width,
so stored times sort as text.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

from bundles.errors import StellaError

EXAMPLE: Final = "2026-12-31 or 2026-12-31T23:59:59Z"
_SHOWN: Final = 80
_TIME: Final = re.compile(
    r"(?P<date>(?P<y>[0-9]{4})-(?P<m>[0-9]{2})-(?P<d>[0-9]{2}))"
    r"(?:[Tt ](?P<H>[0-9]{2}):(?P<M>[0-9]{2})(?::(?P<S>[0-9]{2})(?:\.(?P<f>[0-9]{1,9}))?)?"
    r"(?P<tz>[Zz]|(?P<sign>[+-])(?P<oh>[0-9]{2}):(?P<om>[0-9]{2}))?)?"
)


class TimeFormatError(StellaError):
    """A time is not an RFC 3339 time by the rules of this module."""


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 1] + "…"


def parse_time(text: object, *, where: str) -> datetime:
    """``text`` as an aware UTC datetime; ``where`` names the option or field in errors."""
    if not isinstance(text, str) or not text.strip():
        raise TimeFormatError(
            f"{where}: time must be a non-empty string, got {_shown(text)}",
            hint=f"write e.g. {EXAMPLE}",
        )
    raw = text.strip()
    match = _TIME.fullmatch(raw)
    if match is None:
        raise TimeFormatError(
            f"{where}: {_shown(text)} is not an RFC 3339 time", hint=f"write e.g. {EXAMPLE}"
        )
    if match["H"] is not None and match["tz"] is None:
        raise TimeFormatError(
            f"{where}: {_shown(text)} has no time zone",
            hint="append Z for UTC or an offset like +01:00",
        )
    zone = UTC
    if match["sign"] is not None:
        hours, minutes = int(match["oh"]), int(match["om"])
        if hours > 23 or minutes > 59:
            raise TimeFormatError(
                f"{where}: {_shown(text)} has an impossible offset", hint=f"write e.g. {EXAMPLE}"
            )
        offset = timedelta(hours=hours, minutes=minutes)
        zone = timezone(-offset if match["sign"] == "-" else offset)
    fraction = (match["f"] or "").ljust(6, "0")[:6]
    try:
        when = datetime(
            int(match["y"]),
            int(match["m"]),
            int(match["d"]),
            int(match["H"] or 0),
            int(match["M"] or 0),
            int(match["S"] or 0),
            int(fraction),
            tzinfo=zone,
        )
    except ValueError as e:  # month 13, February 30, hour 24, second 60 (no leap seconds)
        raise TimeFormatError(
            f"{where}: {_shown(text)} is not a real time ({e})", hint=f"write e.g. {EXAMPLE}"
        ) from e
    return when.astimezone(UTC)


def format_time(when: datetime) -> str:
    """The canonical form: UTC, ``Z``, whole seconds (``2026-12-31T23:59:59Z``)."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise TimeFormatError(
            f"time {when.isoformat()} has no time zone",
            hint="pass an aware datetime, e.g. datetime.now(UTC)",
        )
    return when.astimezone(UTC).replace(microsecond=0, tzinfo=None).isoformat() + "Z"


def is_canonical(text: str) -> bool:
    """Whether ``text`` is already in the canonical form :func:`format_time` writes."""
    try:
        return format_time(parse_time(text, where="time")) == text
    except TimeFormatError:
        return False
