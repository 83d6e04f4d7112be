"""RPM package versions, ordered exactly as rpm's ``rpmvercmp`` orders them.

``[epoch:]version[-release]``. Each of version and release is cut into alphabetic and numeric
segments; anything else is only a separator. ``~`` sorts before everything, even the end of
the string (pre-releases); ``^`` sorts after the end but before any further segment
(post-release snapshots); a numeric segment is newer than an alphabetic one. The key encodes
each segment as ``(rank, value)`` with one end marker, so comparison is a tuple comparison.
"""

from __future__ import annotations

import re
from functools import lru_cache

from appliance.versions.interface import InvalidVersion, Version, VersionScheme

NAME = "rpm"

# Ranks of segment kinds at one position, least first.
_TILDE, _END, _CARET, _ALPHA, _NUM = range(5)
_SEGMENTS = re.compile(r"~|\^|[A-Za-z]+|[0-9]+")
_END_SEGMENT: tuple[int, int | str] = (_END, 0)


def part_key(part: str) -> tuple[tuple[int, int | str], ...]:
    """The ``rpmvercmp`` key of one version or release string.

    Characters that are not ASCII letters, digits, ``~`` or ``^`` only separate segments
    (rpm treats ``2.0`` and ``2_0`` alike, and non-ASCII characters as separators too).
    """
    segments: list[tuple[int, int | str]] = []
    for match in _SEGMENTS.finditer(part):
        piece = match.group()
        if piece == "~":
            segments.append((_TILDE, 0))
        elif piece == "^":
            segments.append((_CARET, 0))
        elif piece.isdigit():
            segments.append((_NUM, int(piece)))
        else:
            segments.append((_ALPHA, piece))
    segments.append(_END_SEGMENT)
    return tuple(segments)


def split_evr(text: str) -> tuple[int, str, str]:
    """``(epoch, version, release)`` of an EVR string; a missing epoch is 0, release ""."""
    stripped = text.strip()
    if not stripped:
        raise InvalidVersion(NAME, text, "it is empty")
    if any(c.isspace() for c in stripped):
        raise InvalidVersion(NAME, text, "it contains whitespace")
    epoch = 0
    rest = stripped
    head, sep, tail = stripped.partition(":")
    if sep:
        if not head.isascii() or not head.isdigit():
            raise InvalidVersion(NAME, text, f"the epoch {head!r} is not a number")
        epoch, rest = int(head), tail
    if ":" in rest:
        raise InvalidVersion(NAME, text, "it has more than one ':'")
    version, sep, release = rest.rpartition("-")
    if not sep:
        version, release = rest, ""
    if not version:
        raise InvalidVersion(NAME, text, "the version part is empty")
    if sep and not release:
        raise InvalidVersion(NAME, text, "the release after '-' is empty")
    return epoch, version, release


@lru_cache(maxsize=65536)
def parse(text: str) -> Version:
    """Parse an RPM ``[epoch:]version[-release]`` string.

    A missing release sorts before any release (``1.0`` < ``1.0-1``), which keeps the order
    total; rpm's dependency matching, which ignores a missing release, is a range question.
    """
    epoch, version, release = split_evr(text)
    return Version(NAME, text, (epoch, part_key(version), part_key(release)))


def vercmp(a: str, b: str) -> int:
    """``rpmvercmp`` on two bare version (or release) strings: -1, 0 or 1."""
    ka, kb = part_key(a), part_key(b)
    return (ka > kb) - (ka < kb)


class RpmScheme(VersionScheme):
    """Red Hat, Rocky, AlmaLinux, SUSE and other RPM-based distributions."""

    name = NAME

    # the module's memoized parser itself: no method frame on each of thousands of calls
    parse = staticmethod(parse)
