"""Rust crate versions (Cargo): strict SemVer 2.0.0.

Cargo refuses anything but full ``MAJOR.MINOR.PATCH`` with optional pre-release and build
metadata, so this is the strict SemVer parser under its own name. Build metadata does not
affect order here (SemVer 2.0.0 precedence; the Rust package registry refuses two versions
that differ only in build metadata, so the ``semver`` crate's tie-break on it never matters
for matching).
"""

from __future__ import annotations

from functools import lru_cache

from appliance.versions.interface import Version, VersionScheme
from appliance.versions.semver import parse_semver

NAME = "cargo"


@lru_cache(maxsize=65536)
def parse(text: str) -> Version:
    return Version(NAME, text, parse_semver(text, NAME).key())


class CargoScheme(VersionScheme):
    """Rust crate versions."""

    name = NAME

    # the module's memoized parser itself: no method frame on each of thousands of calls
    parse = staticmethod(parse)
