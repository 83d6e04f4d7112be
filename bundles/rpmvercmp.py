"""RPM version order, exactly as rpm's ``rpmvercmp`` orders versions: one definition for the
mirror (which picks the first fixed EVR of a release from Red Hat's CSAF) and the appliance
(which matches installed packages, :mod:`appliance.versions.rpm`).

``[epoch:]version[-release]``. Each of version and release is cut into alphabetic and numeric
segments; anything else is only a separator. ``~`` sorts before everything, even the end of
the string (pre-releases); ``^`` sorts after the end but before any further segment
(post-release snapshots); a numeric segment is newer than an alphabetic one. The key encodes
each segment as ``(rank, value)`` with one end marker, so comparison is a tuple comparison.
"""

from __future__ import annotations

import re
from typing import Final

# Ranks of segment kinds at one position, least first.
_TILDE, _END, _CARET, _ALPHA, _NUM = range(5)
_SEGMENTS: Final = re.compile(r"~|\^|[A-Za-z]+|[0-9]+")
_END_SEGMENT: Final[tuple[int, int | str]] = (_END, 0)

PartKey = tuple[tuple[int, int | str], ...]
EVRKey = tuple[int, PartKey, PartKey]


def part_key(part: str) -> PartKey:
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


def vercmp(a: str, b: str) -> int:
    """``rpmvercmp`` on two bare version (or release) strings: -1, 0 or 1."""
    ka, kb = part_key(a), part_key(b)
    return (ka > kb) - (ka < kb)


def evr_key(evr: str) -> EVRKey:
    """A sort key for a published ``[epoch:]version[-release]``, read leniently (an epoch that
    is not a number counts as 0): for ordering what a feed lists, not for checking it."""
    epoch, _, rest = evr.rpartition(":")
    version, sep, release = rest.rpartition("-")
    if not sep:
        version, release = rest, ""
    return (
        int(epoch) if epoch.isascii() and epoch.isdigit() else 0,
        part_key(version),
        part_key(release),
    )
