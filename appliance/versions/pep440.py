"""Python package versions (PEP 440), by wrapping ``packaging.version``.

``packaging`` is the reference implementation and parses here. The key is PEP 440's order
spelled in plain ints and strings (:func:`order_key`), not the ``packaging`` object: a range
check compares thousands of versions, and tuples of ints compare in C where each comparison
of two ``packaging`` versions runs Python code. Strings that are not PEP 440 ("legacy"
versions, which pip no longer accepts) are refused.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

from packaging.version import InvalidVersion as PackagingInvalidVersion
from packaging.version import Version as PackagingVersion

from appliance.versions.interface import InvalidVersion, Version, VersionScheme

NAME = "pep440"


# Pre-release ranks: a dev release without pre or post sorts before every pre-release,
# a release without a pre-release after ``rc``.
_PRE_RANK = {"a": 0, "b": 1, "rc": 2}
_DEV_ONLY = -1
_NO_PRE = 3
# A local segment: strings sort before numbers, numbers compare as numbers.
_LOCAL_TEXT = -1


def order_key(version: PackagingVersion) -> tuple[Any, ...]:
    """PEP 440's total order as a tuple: ``(epoch, release without trailing zeros, (pre
    rank, pre number, has post, post number, not dev, dev number))``, then the local
    segments when there are any (a version without them sorts first). Equal keys are equal
    versions (``1.0 == 1.0.0``), as ``packaging`` compares them."""
    release = version.release
    end = len(release)
    while end and release[end - 1] == 0:
        end -= 1
    pre, post, dev = version.pre, version.post, version.dev
    if pre is not None:
        pre_rank, pre_n = _PRE_RANK[pre[0]], pre[1]
    elif post is None and dev is not None:
        pre_rank, pre_n = _DEV_ONLY, 0
    else:
        pre_rank, pre_n = _NO_PRE, 0
    suffix = (
        pre_rank,
        pre_n,
        0 if post is None else 1,
        post or 0,
        1 if dev is None else 0,
        dev or 0,
    )
    key: tuple[Any, ...] = (version.epoch, release[:end], suffix)
    local = version.local
    if local is None:
        return key
    segments = tuple(
        (int(part), "") if part.isdigit() else (_LOCAL_TEXT, part) for part in local.split(".")
    )
    return (*key, segments)


# Digits and dots only: a final release without epoch, the form of most versions. Its key
# needs no ``packaging`` parse (which reads such text the same way).
_RELEASE_ONLY = re.compile(r"[0-9]+(?:\.[0-9]+)*")
_FINAL = (_NO_PRE, 0, 0, 0, 1, 0)


@lru_cache(maxsize=65536)
def parse(text: str) -> Version:
    """Parse a PEP 440 version (normalized forms such as ``1.0RC1`` are accepted)."""
    if _RELEASE_ONLY.fullmatch(text) is not None:
        release = tuple(map(int, text.split(".")))
        end = len(release)
        while end and release[end - 1] == 0:
            end -= 1
        return Version(NAME, text, (0, release[:end], _FINAL))
    try:
        parsed = PackagingVersion(text)
    except PackagingInvalidVersion as e:
        raise InvalidVersion(NAME, text, "it is not a PEP 440 version") from e
    return Version(NAME, text, order_key(parsed))


def packaging_version(version: Version) -> PackagingVersion:
    """The ``packaging`` value of a parsed PEP 440 version (for its attributes)."""
    if version.scheme != NAME:
        raise TypeError(f"not a {NAME} version: {version.scheme} {version.text!r}")
    return PackagingVersion(version.text)


class Pep440Scheme(VersionScheme):
    """PyPI package versions."""

    name = NAME

    # the module's memoized parser itself: no method frame on each of thousands of calls
    parse = staticmethod(parse)
