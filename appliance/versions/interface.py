"""The one small interface every version scheme implements.

A scheme parses a version string once into a :class:`Version`, a value that carries the
original text and a sort key computed at parse time. Two versions of the same scheme compare
by their keys only, so sorting or range checks never re-parse (the pattern of
``packaging.version``). Versions of different schemes never compare: mixing a Debian version
with a PEP 440 one is a bug, not a question with an answer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from bundles.errors import StellaError


class VersionError(StellaError, ValueError):
    """Root of the version-scheme boundary: a version, range or scheme name is not usable."""


class InvalidVersion(VersionError):
    """A version string is not valid in the scheme it was given to.

    A ``ValueError`` as well, so code written against ``packaging`` style parsers keeps
    working; a :class:`StellaError` so the command line prints it as one line.
    """

    def __init__(self, scheme: str, text: str, reason: str) -> None:
        super().__init__(
            f"{scheme} version {text!r} is not valid: {reason}",
            hint=f"check the version string, or whether {scheme} is the right scheme for it",
        )
        self.scheme = scheme
        self.text = text
        self.reason = reason


class InvalidRange(VersionError):
    """A version range (an npm range, or an OSV range's events) is not usable."""

    def __init__(self, scheme: str, text: str, reason: str) -> None:
        super().__init__(
            f"{scheme} range {text!r} is not valid: {reason}",
            hint="check the range as published in the advisory",
        )
        self.scheme = scheme
        self.text = text
        self.reason = reason


class UnknownScheme(VersionError, LookupError):
    """No version scheme is registered under a name or for an OSV ecosystem."""


@dataclass(frozen=True, slots=True, eq=False)
class Version:
    """One parsed version: the text as given, and the key it sorts by.

    Equality, hashing and ordering use ``(scheme, key)`` only, so ``1.0`` and ``1.0.0`` are
    equal where the scheme says they are, while ``text`` keeps what was written.
    """

    scheme: str
    text: str
    key: tuple[Any, ...] = field(repr=False)

    def _other_key(self, other: object) -> tuple[Any, ...] | None:
        if not isinstance(other, Version):
            return None
        if other.scheme != self.scheme:
            raise TypeError(
                f"cannot compare a {self.scheme} version ({self.text!r}) "
                f"with a {other.scheme} version ({other.text!r})"
            )
        return other.key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Version):
            return NotImplemented
        return self.scheme == other.scheme and self.key == other.key

    def __hash__(self) -> int:
        return hash((self.scheme, self.key))

    def __lt__(self, other: object) -> bool:
        key = self._other_key(other)
        if key is None:
            return NotImplemented
        return self.key < key

    def __le__(self, other: object) -> bool:
        key = self._other_key(other)
        if key is None:
            return NotImplemented
        return self.key <= key

    def __gt__(self, other: object) -> bool:
        key = self._other_key(other)
        if key is None:
            return NotImplemented
        return self.key > key

    def __ge__(self, other: object) -> bool:
        key = self._other_key(other)
        if key is None:
            return NotImplemented
        return self.key >= key

    def __str__(self) -> str:
        return self.text


class VersionScheme(ABC):
    """A version scheme: a name and a parser. Implementations are stateless singletons."""

    name: str

    @abstractmethod
    def parse(self, text: str) -> Version:
        """Parse ``text``; raise :class:`InvalidVersion` quoting it when it is not valid."""

    def is_valid(self, text: str) -> bool:
        """Whether ``text`` parses in this scheme."""
        try:
            self.parse(text)
        except InvalidVersion:
            return False
        return True

    def compare(self, a: Version | str, b: Version | str) -> int:
        """-1, 0 or 1 as ``a`` sorts before, equal to, or after ``b``."""
        va = a if isinstance(a, Version) else self.parse(a)
        vb = b if isinstance(b, Version) else self.parse(b)
        if va.scheme != self.name or vb.scheme != self.name:
            raise TypeError(f"{self.name}.compare was given a version of another scheme")
        if va.key < vb.key:
            return -1
        if va.key > vb.key:
            return 1
        return 0

    def __repr__(self) -> str:
        return f"<VersionScheme {self.name}>"
