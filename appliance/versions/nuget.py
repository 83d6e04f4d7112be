"""NuGet package versions, ordered as NuGet's ``VersionComparer`` orders them.

``Major[.Minor[.Patch[.Revision]]][-label.label...][+metadata]``: missing parts are 0, so
``1.0`` = ``1.0.0`` = ``1.0.0.0``; numbers may have leading zeros; a pre-release sorts before
its release; labels compare one by one, numeric labels numerically and before the others,
the others case-insensitively; metadata is ignored.
"""

from __future__ import annotations

import re
from functools import lru_cache

from appliance.versions.interface import InvalidVersion, Version, VersionScheme

NAME = "nuget"

_PATTERN = re.compile(
    r"(?P<nums>[0-9]+(?:\.[0-9]+){0,3})"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)


@lru_cache(maxsize=65536)
def parse(text: str) -> Version:
    match = _PATTERN.fullmatch(text.strip())
    if match is None:
        raise InvalidVersion(
            NAME, text, "it is not Major[.Minor[.Patch[.Revision]]][-prerelease][+metadata]"
        )
    numbers = [int(n) for n in match.group("nums").split(".")]
    numbers += [0] * (4 - len(numbers))
    pre = match.group("pre")
    if pre:
        labels = tuple(
            (0, int(label), "") if label.isdigit() else (1, 0, label.upper())
            for label in pre.split(".")
        )
        pre_key: tuple[int, tuple[tuple[int, int, str], ...]] = (0, labels)
    else:
        pre_key = (1, ())
    return Version(NAME, text, (*numbers, pre_key))


class NuGetScheme(VersionScheme):
    """NuGet package versions."""

    name = NAME

    # the module's memoized parser itself: no method frame on each of thousands of calls
    parse = staticmethod(parse)
