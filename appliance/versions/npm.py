"""npm package versions, parsed as node-semver parses them (not in its "loose" mode).

The order is SemVer 2.0.0 precedence; node-semver also accepts surrounding whitespace and a
leading ``v``, and refuses numbers above JavaScript's largest safe integer and strings longer
than 256 characters. Ranges (``^1.2.3 || >=2 <3``) live in :mod:`appliance.versions.npm_range`.
"""

from __future__ import annotations

from functools import lru_cache

from appliance.versions.interface import InvalidVersion, Version, VersionScheme
from appliance.versions.semver import SemVer, parse_semver

NAME = "npm"
MAX_LENGTH = 256
MAX_SAFE_INTEGER = 2**53 - 1


def parse_npm_semver(text: str) -> SemVer:
    """The SemVer parts of an npm version string, with node-semver's limits."""
    if len(text) > MAX_LENGTH:
        raise InvalidVersion(NAME, text[:40] + "...", f"it is longer than {MAX_LENGTH} characters")
    stripped = text.strip()
    if stripped.startswith("v"):
        stripped = stripped[1:]
    try:
        parsed = parse_semver(stripped, NAME)
    except InvalidVersion as e:
        raise InvalidVersion(NAME, text, e.reason) from None
    if max(parsed.release) > MAX_SAFE_INTEGER:
        raise InvalidVersion(NAME, text, "a version number is larger than 2^53-1")
    return parsed


@lru_cache(maxsize=65536)
def parse(text: str) -> Version:
    return Version(NAME, text, parse_npm_semver(text).key())


class NpmScheme(VersionScheme):
    """npm package versions."""

    name = NAME

    # the module's memoized parser itself: no method frame on each of thousands of calls
    parse = staticmethod(parse)
