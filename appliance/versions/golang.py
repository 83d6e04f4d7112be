"""Go module versions, ordered as ``golang.org/x/mod/semver`` orders them.

Module versions are SemVer with a ``v`` prefix; OSV's Go records write them without it, so
the prefix is optional here. ``vMAJOR`` and ``vMAJOR.MINOR`` are shorthands for ``.0``.
Pseudo-versions (``v0.0.0-20191109021931-daa7c04131f5``, ``v1.2.4-0.2019...``,
``v1.2.3-pre.0.2019...``) are ordinary SemVer pre-releases and sort as such, and build
metadata, which Go only allows as ``+incompatible``, is ignored for ordering.
"""

from __future__ import annotations

import re
from functools import lru_cache

from appliance.versions.interface import InvalidVersion, Version, VersionScheme
from appliance.versions.semver import SEMVER_RE, prerelease_key

NAME = "go"

_SHORT = re.compile(r"(0|[1-9][0-9]*)(?:\.(0|[1-9][0-9]*))?")
# The shape golang.org/x/mod/module checks for pseudo-versions.
_PSEUDO = re.compile(
    r"v?[0-9]+\.(?:0\.0-|[0-9]+\.[0-9]+-(?:[^+]*\.)?0\.)[0-9]{14}-[A-Za-z0-9]+"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)


@lru_cache(maxsize=65536)
def parse(text: str) -> Version:
    """Parse a Go module version, with or without its ``v``."""
    body = text[1:] if text.startswith("v") else text
    match = SEMVER_RE.fullmatch(body)
    if match is not None:
        pre = match.group("pre")
        key = (
            int(match.group("major")),
            int(match.group("minor")),
            int(match.group("patch")),
            prerelease_key(tuple(pre.split(".")) if pre else ()),
        )
        return Version(NAME, text, key)
    short = _SHORT.fullmatch(body)
    if short is not None and text.startswith("v"):
        major, minor = short.groups()
        return Version(NAME, text, (int(major), int(minor or 0), 0, prerelease_key(())))
    raise InvalidVersion(NAME, text, "it is not a Go module version (vMAJOR.MINOR.PATCH...)")


def is_pseudo_version(text: str) -> bool:
    """Whether ``text`` has the form of a Go pseudo-version (a commit, not a tag)."""
    return _PSEUDO.fullmatch(text) is not None


class GoScheme(VersionScheme):
    """Go module versions."""

    name = NAME

    # the module's memoized parser itself: no method frame on each of thousands of calls
    parse = staticmethod(parse)
