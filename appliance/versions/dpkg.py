"""Debian package versions, ordered exactly as dpkg orders them.

``[epoch:]upstream[-revision]``: epochs compare as integers; upstream and revision compare
with dpkg's ``verrevcmp``, alternating non-digit runs (character by character, ``~`` before
the end of the string, letters before other characters) and digit runs (numerically). The
sort key encodes that walk as nested tuples so a parsed version compares by key alone.
"""

from __future__ import annotations

import re
from functools import lru_cache

from appliance.versions.interface import InvalidVersion, Version, VersionScheme

NAME = "dpkg"
_EPOCH_MAX = 2**31 - 1
_UPSTREAM_OK = re.compile(r"[A-Za-z0-9.+~:-]+")
_REVISION_OK = re.compile(r"[A-Za-z0-9.+~]*")
_RUNS = re.compile(r"([^0-9]*)([0-9]*)")

# ``(0,)`` ends a non-digit run; no character encodes to 0, so a run's tuple is never a
# prefix of another's. The pair below is "nothing left": an empty run and the number 0.
_END_PAIR = ((0,), 0)


def _order(char: str) -> int:
    if char == "~":
        return -1
    if char.isalpha():
        return ord(char)
    return ord(char) + 256


def part_key(part: str) -> tuple[tuple[tuple[int, ...], int], ...]:
    """The key of one upstream or revision string under ``verrevcmp``.

    A list of (non-digit run, number) pairs closed by one "nothing left" pair. Only the first
    pair can have an empty run, and it is always present, so the closing pair meets a real
    pair of a longer string and compares as dpkg's padding with empty runs and zeros does.
    """
    pairs = [
        ((*tuple(_order(c) for c in letters), 0), int(digits) if digits else 0)
        for letters, digits in _RUNS.findall(part)
        if letters or digits
    ] or [_END_PAIR]
    pairs.append(_END_PAIR)
    return tuple(pairs)


@lru_cache(maxsize=65536)
def parse(text: str) -> Version:
    """Parse a Debian version; raise :class:`InvalidVersion` for what dpkg refuses."""
    stripped = text.strip()
    if not stripped:
        raise InvalidVersion(NAME, text, "it is empty")
    if any(c.isspace() for c in stripped):
        raise InvalidVersion(NAME, text, "it contains whitespace")
    epoch = 0
    rest = stripped
    if ":" in stripped:
        epoch_text, rest = stripped.split(":", 1)
        if not epoch_text:
            raise InvalidVersion(NAME, text, "the epoch before ':' is empty")
        if not epoch_text.isascii() or not epoch_text.isdigit():
            raise InvalidVersion(NAME, text, f"the epoch {epoch_text!r} is not a number")
        epoch = int(epoch_text)
        if epoch > _EPOCH_MAX:
            raise InvalidVersion(NAME, text, f"the epoch {epoch_text} is too big")
    upstream, sep, revision = rest.rpartition("-")
    if not sep:
        upstream, revision = rest, ""
    if not upstream:
        raise InvalidVersion(NAME, text, "the upstream version is empty")
    if not _UPSTREAM_OK.fullmatch(upstream):
        raise InvalidVersion(
            NAME, text, "the upstream version may hold only letters, digits and . + ~ : -"
        )
    if not _REVISION_OK.fullmatch(revision):
        raise InvalidVersion(NAME, text, "the revision may hold only letters, digits and . + ~")
    return Version(NAME, text, (epoch, part_key(upstream), part_key(revision)))


class DpkgScheme(VersionScheme):
    """Debian and Ubuntu binary and source package versions."""

    name = NAME

    # the module's memoized parser itself: no method frame on each of thousands of calls
    parse = staticmethod(parse)
