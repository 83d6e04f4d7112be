"""Python package versions (PEP 440), by wrapping ``packaging.version``.

``packaging`` is the reference implementation; its parsed ``Version`` already compares by a
cached key, so the key here is that object. Strings that are not PEP 440 ("legacy"
versions, which pip no longer accepts) are refused.
"""

from __future__ import annotations

from functools import lru_cache

from packaging.version import InvalidVersion as PackagingInvalidVersion
from packaging.version import Version as PackagingVersion

from appliance.versions.interface import InvalidVersion, Version, VersionScheme

NAME = "pep440"


@lru_cache(maxsize=65536)
def parse(text: str) -> Version:
    """Parse a PEP 440 version (normalized forms such as ``1.0RC1`` are accepted)."""
    try:
        parsed = PackagingVersion(text)
    except PackagingInvalidVersion as e:
        raise InvalidVersion(NAME, text, "it is not a PEP 440 version") from e
    return Version(NAME, text, (parsed,))


def packaging_version(version: Version) -> PackagingVersion:
    """The ``packaging`` value behind a parsed PEP 440 version (for its attributes)."""
    if version.scheme != NAME:
        raise TypeError(f"not a {NAME} version: {version.scheme} {version.text!r}")
    value = version.key[0]
    assert isinstance(value, PackagingVersion)
    return value


class Pep440Scheme(VersionScheme):
    """PyPI package versions."""

    name = NAME

    def parse(self, text: str) -> Version:
        return parse(text)
