"""RPM package versions, ordered exactly as rpm's ``rpmvercmp`` orders them
(:mod:`bundles.rpmvercmp`), strictly parsed: an EVR that rpm would not write is refused.
"""

from __future__ import annotations

from functools import lru_cache

from appliance.versions.interface import InvalidVersion, Version, VersionScheme
from bundles.rpmvercmp import part_key

NAME = "rpm"


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


class RpmScheme(VersionScheme):
    """Red Hat, Rocky, AlmaLinux, SUSE and other RPM-based distributions."""

    name = NAME

    # the module's memoized parser itself: no method frame on each of thousands of calls
    parse = staticmethod(parse)
