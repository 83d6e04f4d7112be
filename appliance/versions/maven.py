"""Maven artifact versions, ordered by the POM reference's "Version Order Specification"
(the rules Maven's ``ComparableVersion`` implements).

The version is lower-cased and cut into tokens at ``.``, ``-`` and every change between
digits and other characters (such a change counts as ``-``); an empty token is ``0``.
``a``/``b``/``m`` directly followed by a digit mean alpha/beta/milestone, ``cr`` means
``rc``, and ``ga``, ``final`` and ``release`` mean the release itself (the empty qualifier).
Null tokens (``0`` and the release qualifier) are trimmed at the end and before each ``-``.

Tokens compare as: qualifiers (whatever their separator) < ``-number`` < ``.number``;
qualifiers by alpha < beta < milestone < rc < snapshot < release < sp < any other (those
alphabetically); numbers numerically. A shorter version is padded with null tokens, so
``1`` = ``1.0``, ``1-rc1`` < ``1``, ``1`` < ``1-sp``.

One deliberate difference: zeros directly before a qualifier are dropped (``1.0.0.RC1`` is
``1-RC1``). ``ComparableVersion`` lets such a zero equal the padding but beat any qualifier,
which is not transitive (``0.SNAPSHOT`` < ``0`` < ``a`` < ``0.SNAPSHOT``); dropping it keeps
every ordering Maven's own tests and the specification's examples state, except Maven 3's
``2.0.a`` < ``2.0.0.a`` (equal here; Maven 4 no longer tests it), and makes the key a plain
tuple.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from appliance.versions.interface import InvalidVersion, Version, VersionScheme

NAME = "maven"

_QUALIFIERS = ("alpha", "beta", "milestone", "rc", "snapshot", "", "sp")
_ALIASES = {"cr": "rc", "ga": "", "final": "", "release": ""}
_SHORT = {"a": "alpha", "b": "beta", "m": "milestone"}
_RELEASE = (_QUALIFIERS.index(""), "")

_QUALIFIER, _DASH_NUMBER, _DOT_NUMBER = 0, 1, 2
Token = tuple[int, Any]
_NULL_QUALIFIER: Token = (_QUALIFIER, _RELEASE)


def _qualifier_key(name: str) -> tuple[int, str]:
    if name in _QUALIFIERS:
        return (_QUALIFIERS.index(name), "")
    return (len(_QUALIFIERS), name)


def _is_null(token: Token) -> bool:
    return token == _NULL_QUALIFIER or (token[0] != _QUALIFIER and token[1] == 0)


def _split(text: str) -> list[tuple[str, str, bool]]:
    """(separator, token, separated-by-a-digit-change) triples; the first separator is
    ``.``; a change between digits and other characters counts as ``-``; empty tokens are
    ``0``."""
    pieces: list[tuple[str, str, bool]] = []
    sep, current, by_change = ".", "", False
    for char in text:
        if char in ".-":
            pieces.append((sep, current or "0", by_change))
            sep, current, by_change = char, "", False
            continue
        is_digit = "0" <= char <= "9"
        if current and is_digit != ("0" <= current[-1] <= "9"):
            pieces.append((sep, current, by_change))
            sep, current, by_change = "-", "", True
        current += char
    pieces.append((sep, current or "0", by_change))
    return pieces


def tokens(text: str) -> tuple[Token, ...]:
    """The normalized, trimmed tokens of a Maven version."""
    pieces = _split(text.lower())
    out: list[tuple[str, Token]] = []
    for index, (sep, piece, _) in enumerate(pieces):
        if piece.isascii() and piece.isdigit():
            out.append((sep, (_DOT_NUMBER if sep == "." else _DASH_NUMBER, int(piece))))
            continue
        # "a1" is alpha-1, but "a.1" and "a-1" keep the qualifier "a".
        followed_by_digit = index + 1 < len(pieces) and pieces[index + 1][2]
        name = _SHORT.get(piece, piece) if followed_by_digit else piece
        name = _ALIASES.get(name, name)
        out.append((sep, (_QUALIFIER, _qualifier_key(name))))
    # Trim null tokens at the end, then before each remaining "-" from the end backwards.
    while out and _is_null(out[-1][1]):
        out.pop()
    index = len(out) - 1
    while index > 0:
        if out[index][0] == "-":
            while index > 0 and _is_null(out[index - 1][1]):
                del out[index - 1]
                index -= 1
        index -= 1
    # Zeros directly before a qualifier are dropped ("1.0.0.RC1" is "1-RC1"); see the module
    # docstring for why.
    index = len(out) - 1
    while index > 0:
        if out[index][1][0] == _QUALIFIER:
            while index > 0 and out[index - 1][1][0] != _QUALIFIER and out[index - 1][1][1] == 0:
                del out[index - 1]
                index -= 1
        index -= 1
    return tuple(token for _, token in out)


def sort_key(toks: tuple[Token, ...]) -> tuple[tuple[Any, ...], ...]:
    """A tuple key equal to comparing ``toks`` padded with release tokens forever.

    Each token other than the release qualifier is grouped with the number of release
    qualifiers before it; a group sorts by whether its token is above or below the release,
    then by that count (more padding first for tokens above, last for tokens below), then by
    the token. The end sorts between the two sides.
    """
    groups: list[tuple[Any, ...]] = []
    pending = 0
    for token in toks:
        if token == _NULL_QUALIFIER:
            pending += 1
        elif token[0] == _QUALIFIER and token[1] < _RELEASE:
            groups.append((0, pending, token))
            pending = 0
        else:
            groups.append((2, -pending, token))
            pending = 0
    groups.append((1,))
    return tuple(groups)


@lru_cache(maxsize=65536)
def parse(text: str) -> Version:
    """Parse a Maven version. Any non-empty string without whitespace is a Maven version."""
    if not text or text != text.strip() or any(c.isspace() for c in text):
        raise InvalidVersion(NAME, text, "it is empty or contains whitespace")
    return Version(NAME, text, sort_key(tokens(text)))


class MavenScheme(VersionScheme):
    """Maven (and other ``ComparableVersion`` users: Gradle metadata in OSV) versions."""

    name = NAME

    # the module's memoized parser itself: no method frame on each of thousands of calls
    parse = staticmethod(parse)
