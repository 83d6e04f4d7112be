"""Ruby gem versions, ordered as ``Gem::Version#<=>`` orders them.

A version is dot-separated segments (a ``-`` stands for ``.pre.``); segments are cut into
numbers and letter runs, and any letter makes the version a pre-release. Trailing zeros of
the release part and of the pre-release part are dropped, then segments compare one by one,
a shorter version padded with zeros, letters below numbers (so ``1.0.a`` < ``1.0``).

The key groups each non-zero segment with the count of zeros before it, which turns the
zero padding into an ordinary tuple comparison.
"""

from __future__ import annotations

import re
from functools import lru_cache

from appliance.versions.interface import InvalidVersion, Version, VersionScheme

NAME = "rubygems"

_PATTERN = re.compile(r"[0-9]+(?:\.[0-9a-zA-Z]+)*(?:-[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?")
_SEGMENT = re.compile(r"[0-9]+|[a-zA-Z]+")
_END = (1,)


def canonical_segments(text: str) -> tuple[int | str, ...]:
    """``Gem::Version#canonical_segments`` of a valid version string."""
    segments: list[int | str] = [
        int(s) if s.isdigit() else s for s in _SEGMENT.findall(text.replace("-", ".pre."))
    ]
    split = next((i for i, s in enumerate(segments) if isinstance(s, str)), len(segments))
    release, pre = segments[:split], segments[split:]
    for part in (release, pre):
        while part and part[-1] == 0:
            part.pop()
    return tuple(release + pre)


def _key(segments: tuple[int | str, ...]) -> tuple[tuple[object, ...], ...]:
    groups: list[tuple[object, ...]] = []
    zeros = 0
    for segment in segments:
        if segment == 0:
            zeros += 1
        elif isinstance(segment, int):
            groups.append((2, -zeros, segment))
            zeros = 0
        else:
            groups.append((0, zeros, segment))
            zeros = 0
    groups.append(_END)
    return tuple(groups)


@lru_cache(maxsize=65536)
def parse(text: str) -> Version:
    stripped = text.strip()
    if not _PATTERN.fullmatch(stripped):
        raise InvalidVersion(
            NAME, text, "it is not a gem version (digits and letters in dotted segments)"
        )
    return Version(NAME, text, _key(canonical_segments(stripped)))


def is_prerelease(text: str) -> bool:
    """A gem version is a pre-release when it holds any letter."""
    return any(c.isalpha() for c in text)


class RubyGemsScheme(VersionScheme):
    """RubyGems package versions."""

    name = NAME

    # the module's memoized parser itself: no method frame on each of thousands of calls
    parse = staticmethod(parse)
