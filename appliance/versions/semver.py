"""Semantic Versioning 2.0.0: parsing and precedence, shared by npm, Go and Cargo.

Precedence (SemVer 2.0.0 §11): major, minor and patch numerically; a pre-release sorts
before its release; pre-release identifiers compare one by one, numeric ones numerically and
below alphanumeric ones, which compare in ASCII order; more identifiers sort later when all
before are equal. Build metadata is kept but never affects precedence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from appliance.versions.interface import InvalidVersion, Version, VersionScheme

NAME = "semver"

_NUM = r"0|[1-9][0-9]*"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID = r"[0-9A-Za-z-]+"
SEMVER_RE = re.compile(
    rf"(?P<major>{_NUM})\.(?P<minor>{_NUM})\.(?P<patch>{_NUM})"
    rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?"
    rf"(?:\+(?P<build>{_BUILD_ID}(?:\.{_BUILD_ID})*))?"
)

PreKey = tuple[int, tuple[tuple[int, int | str], ...]]
_RELEASE: PreKey = (1, ())


@dataclass(frozen=True, slots=True)
class SemVer:
    """The parts of a SemVer 2.0.0 version; ``prerelease`` and ``build`` keep identifiers
    as written (numeric identifiers stay strings here)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[str, ...]
    build: tuple[str, ...]

    @property
    def release(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    def key(self) -> tuple[int, int, int, PreKey]:
        """The precedence key: equal keys mean equal precedence."""
        return (self.major, self.minor, self.patch, prerelease_key(self.prerelease))

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text


def prerelease_key(identifiers: tuple[str, ...]) -> PreKey:
    """Key of a pre-release: any pre-release sorts below the release ``(1, ())``."""
    if not identifiers:
        return _RELEASE
    return (
        0,
        tuple((0, int(i)) if i.isdigit() else (1, i) for i in identifiers),
    )


def parse_semver(text: str, scheme: str = NAME) -> SemVer:
    """Parse strict SemVer 2.0.0 text (no ``v``, no leading zeros, no surrounding space)."""
    match = SEMVER_RE.fullmatch(text)
    if match is None:
        raise InvalidVersion(
            scheme, text, "it is not MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD] (SemVer 2.0.0)"
        )
    pre = match.group("pre")
    build = match.group("build")
    return SemVer(
        int(match.group("major")),
        int(match.group("minor")),
        int(match.group("patch")),
        tuple(pre.split(".")) if pre else (),
        tuple(build.split(".")) if build else (),
    )


@lru_cache(maxsize=65536)
def parse(text: str) -> Version:
    """Parse strict SemVer 2.0.0 into a :class:`Version` ordered by precedence."""
    return Version(NAME, text, parse_semver(text).key())


class SemverScheme(VersionScheme):
    """Strict SemVer 2.0.0, as OSV ``SEMVER`` ranges use it."""

    name = NAME

    # the module's memoized parser itself: no method frame on each of thousands of calls
    parse = staticmethod(parse)
