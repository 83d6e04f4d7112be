"""Alpine package versions, ordered as apk-tools orders them.

``digit{.digit}...{letter}{_suffix{number}}...{~hash}{-r#}``. apk-tools walks two versions
token by token while the token kinds agree; at the first difference of kind, a pre-release
suffix (``_alpha``, ``_beta``, ``_pre``, ``_rc``) is older than anything, and otherwise the
version whose next token is "later in the grammar" (for example the end, or ``-r``) is older.
The key ranks each token so that this walk becomes a plain tuple comparison.
"""

from __future__ import annotations

import re
from functools import lru_cache

from appliance.versions.interface import InvalidVersion, Version, VersionScheme

NAME = "apk"

_PRE_SUFFIXES = ("alpha", "beta", "pre", "rc")
_POST_SUFFIXES = ("cvs", "svn", "git", "hg", "p")
# Suffix values: pre-releases below 0 (``_alpha`` lowest), post-releases from 1.
_SUFFIX_VALUE = {s: i - len(_PRE_SUFFIXES) for i, s in enumerate(_PRE_SUFFIXES)} | {
    s: i + 1 for i, s in enumerate(_POST_SUFFIXES)
}

# Ranks of token kinds at one position when the kinds differ, least first.
_R_PRE_SUFFIX = 0
_R_END = 1
_R_REVISION = 2
_R_HASH = 3
_R_SUFFIX_NO = 4
_R_POST_SUFFIX = 5
_R_LETTER = 6
_R_DIGIT = 7
_R_INITIAL = 8

_FIRST = re.compile(r"[0-9]+")
_DIGIT = re.compile(r"\.([0-9]+)")
_LETTER = re.compile(r"[a-z]")
_SUFFIX = re.compile(r"_([a-z]*)([0-9]*)")
_HASH = re.compile(r"~([0-9a-f]+)")
_REVISION = re.compile(r"-r([0-9]+)")

Token = tuple[int, object]


def _digit_value(digits: str) -> tuple[int, int | str]:
    # apk-tools compares two digit groups as strings when either has a leading zero, and as
    # numbers otherwise; every zero-led string sorts below every other group, so this is
    # the same order.
    if digits.startswith("0"):
        return (0, digits)
    return (1, int(digits))


def tokens(text: str) -> tuple[Token, ...]:
    """The ranked tokens of a valid apk version, ending with the end token."""
    out: list[Token] = []
    match = _FIRST.match(text)
    if match is None:
        raise InvalidVersion(NAME, text, "it must start with a digit")
    out.append((_R_INITIAL, int(match.group())))
    pos = match.end()
    while (match := _DIGIT.match(text, pos)) is not None:
        out.append((_R_DIGIT, _digit_value(match.group(1))))
        pos = match.end()
    if (match := _LETTER.match(text, pos)) is not None:
        out.append((_R_LETTER, match.group()))
        pos = match.end()
    while (match := _SUFFIX.match(text, pos)) is not None:
        name, number = match.groups()
        if name not in _SUFFIX_VALUE:
            raise InvalidVersion(
                NAME,
                text,
                f"unknown suffix '_{name}' (known: "
                + ", ".join(f"_{s}" for s in _PRE_SUFFIXES + _POST_SUFFIXES)
                + ")",
            )
        value = _SUFFIX_VALUE[name]
        out.append((_R_PRE_SUFFIX if value < 0 else _R_POST_SUFFIX, value))
        if number:
            out.append((_R_SUFFIX_NO, int(number)))
        pos = match.end()
    if (match := _HASH.match(text, pos)) is not None:
        out.append((_R_HASH, match.group(1)))
        pos = match.end()
    if (match := _REVISION.match(text, pos)) is not None:
        out.append((_R_REVISION, int(match.group(1))))
        pos = match.end()
    if pos != len(text):
        raise InvalidVersion(
            NAME,
            text,
            f"unexpected {text[pos:]!r} at offset {pos} "
            "(expected digit{.digit}...{letter}{_suffix{n}}...{~hash}{-rN})",
        )
    out.append((_R_END, 0))
    return tuple(out)


@lru_cache(maxsize=65536)
def parse(text: str) -> Version:
    """Parse an apk version; invalid versions (which apk-tools itself flags) are refused."""
    return Version(NAME, text, tokens(text))


class ApkScheme(VersionScheme):
    """Alpine Linux (and other apk-based distributions) package versions."""

    name = NAME

    # the module's memoized parser itself: no method frame on each of thousands of calls
    parse = staticmethod(parse)
