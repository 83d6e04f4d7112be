"""Evaluation of OSV ``SEMVER`` and ``ECOSYSTEM`` ranges, as the OSV schema specifies it.

The OSV algorithm: sort a range's events by version (``introduced: "0"`` first, as minus
infinity), walk them with ``affected = False``: an ``introduced`` at or below the version
sets it; a ``fixed`` at or below the version, or a ``last_affected`` strictly below it,
clears it. When the range has ``limit`` events, the version must also be below one of them
(a limit containing ``"*"`` is infinity). A range needs at least one ``introduced`` event.
Events with equal versions keep their published order (a stable sort).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from appliance.versions.interface import InvalidRange, InvalidVersion, Version, VersionScheme


class EventKind(StrEnum):
    INTRODUCED = "introduced"
    FIXED = "fixed"
    LAST_AFFECTED = "last_affected"
    LIMIT = "limit"


class RangeType(StrEnum):
    SEMVER = "SEMVER"
    ECOSYSTEM = "ECOSYSTEM"
    GIT = "GIT"


@dataclass(frozen=True, slots=True)
class Event:
    """One OSV range event, as published: its kind and its version text."""

    kind: EventKind
    version: str

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> Event:
        """Read ``{"introduced": "1.0"}``-style objects; exactly one known key is allowed."""
        keys = [k for k in obj if k in EventKind.__members__.values()]
        if len(keys) != 1 or not isinstance(obj[keys[0]], str):
            raise InvalidRange(
                "osv",
                repr(dict(obj)),
                "an event must have exactly one of introduced, fixed, last_affected, limit "
                "with a string version",
            )
        value = obj[keys[0]]
        assert isinstance(value, str)
        return cls(EventKind(keys[0]), value)


@dataclass(frozen=True, slots=True)
class PreparedRange:
    """A range's events parsed in one scheme and sorted, ready for many version checks.

    ``walk`` holds ``(kind, version)`` with ``None`` for ``introduced: "0"``; ``limits``
    holds limit versions with ``None`` for infinity; no limits means no upper limit.
    """

    scheme: str
    walk: tuple[tuple[EventKind, Version | None], ...]
    limits: tuple[Version | None, ...]

    def contains(self, version: Version) -> bool:
        """Whether ``version`` is affected by this range."""
        if version.scheme != self.scheme:
            raise TypeError(
                f"range events are {self.scheme} versions; {version.text!r} is {version.scheme}"
            )
        # keys compared directly: the scheme is checked once above, not in each comparison
        key = version.key
        if self.limits and not any(lim is None or key < lim.key for lim in self.limits):
            return False
        affected = False
        for kind, bound in self.walk:
            if kind is EventKind.INTRODUCED:
                if bound is None or key >= bound.key:
                    affected = True
            elif kind is EventKind.FIXED:
                if bound is not None and key >= bound.key:
                    affected = False
            elif bound is not None and key > bound.key:  # LAST_AFFECTED
                affected = False
        return affected


def _sort_key(item: tuple[EventKind, Version | None]) -> tuple[int, tuple[object, ...]]:
    bound = item[1]
    return (0, ()) if bound is None else (1, bound.key)


_KINDS = {kind.value: kind for kind in EventKind}
# A range's events as plain ``(kind, version)`` text pairs: the cache key of a prepared
# range. Strings and tuples hash in C; a tuple of :class:`Event` values would hash and
# compare each event through Python code on every lookup.
EventPairs = tuple[tuple[str, str], ...]


@lru_cache(maxsize=65536)
def _prepare(events: EventPairs, scheme: VersionScheme) -> PreparedRange:
    walk: list[tuple[EventKind, Version | None]] = []
    limits: list[Version | None] = []
    for name, text in events:
        kind = _KINDS[name]
        try:
            if kind is EventKind.LIMIT:
                limits.append(None if "*" in text else scheme.parse(text))
            elif kind is EventKind.INTRODUCED and text == "0":
                walk.append((kind, None))
            else:
                walk.append((kind, scheme.parse(text)))
        except InvalidVersion as e:
            raise InvalidRange(
                scheme.name, f"{name}: {text}", f"the version is not valid: {e.reason}"
            ) from e
    if not any(kind is EventKind.INTRODUCED for kind, _ in walk):
        raise InvalidRange(
            scheme.name,
            ", ".join(f"{name}: {text}" for name, text in events) or "no events",
            "an OSV range needs at least one introduced event",
        )
    walk.sort(key=_sort_key)
    return PreparedRange(scheme.name, tuple(walk), tuple(limits))


def prepare(events: Sequence[Event | Mapping[str, object]], scheme: VersionScheme) -> PreparedRange:
    """Parse and sort a range's events once (cached by events and scheme)."""
    pairs = []
    for e in events:
        event = e if isinstance(e, Event) else Event.from_json(e)
        pairs.append((event.kind.value, event.version))
    return _prepare(tuple(pairs), scheme)


def prepare_pairs(events: EventPairs, scheme: VersionScheme) -> PreparedRange:
    """:func:`prepare` for events already read as ``(kind, version)`` pairs of the four
    known kinds (``("introduced", "0")``): the matcher's path, which reads them straight
    from the record without building an :class:`Event` each. Raises :class:`KeyError` for
    an unknown kind, :class:`InvalidRange` as :func:`prepare` does."""
    return _prepare(events, scheme)


def affected(
    version: Version | str,
    events: Sequence[Event | Mapping[str, object]],
    scheme: VersionScheme,
) -> bool:
    """Whether ``version`` falls in the OSV range given by ``events``, under ``scheme``."""
    parsed = scheme.parse(version) if isinstance(version, str) else version
    return prepare(events, scheme).contains(parsed)
