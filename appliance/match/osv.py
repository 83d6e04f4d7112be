"""Whether one OSV ``affected`` entry covers an installed version, and why.

The OSV rules: a version is affected when it lies in one of the entry's ``ECOSYSTEM`` or
``SEMVER`` ranges (introduced / fixed / last_affected / limit, evaluated by
:mod:`appliance.versions.osv_range`) or is listed in ``versions``. ``GIT`` ranges name commits,
which a scanned image does not have: when only they could decide, the answer is an unknown,
never a guess. Legacy npm advisories carry node-semver ranges in ``database_specific``
(``version_scheme: npm-semver``) and are evaluated with node-semver's rules.

Pure functions over already-parsed JSON; the answer names the range that matched, the scheme
and the fixed versions above the installed one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

from appliance.match.model import MatchKind, UnknownKind
from appliance.versions import (
    EventKind,
    InvalidRange,
    InvalidVersion,
    PreparedRange,
    UnknownScheme,
    Version,
    VersionScheme,
    prepare,
    scheme_for,
    scheme_for_ecosystem,
)
from appliance.versions.npm_range import parse_range
from appliance.versions.osv_range import EventPairs, prepare_pairs

NPM_SEMVER: Final = "npm-semver"
# Schemes whose versions are SemVer already: a SEMVER range is compared in them directly, so
# Go's "v" prefix and pseudo-versions keep their meaning.
_SEMVER_NATIVE: Final = frozenset({"go", "npm", "cargo", "semver"})
_NONZERO: Final = frozenset("123456789")
_KINDS: Final = {kind.value: kind for kind in EventKind}


@dataclass(frozen=True, slots=True)
class Affected:
    """The entry covers the version: how (``kind``), by which range text, in which scheme,
    and the fixed versions above the installed one (empty: no fix known)."""

    kind: MatchKind
    range: str
    scheme: str
    fixed: tuple[str, ...]
    notes: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Undecided:
    """The entry cannot be evaluated for this version."""

    kind: UnknownKind
    reason: str


NOT_AFFECTED: Final = None
Outcome = Affected | Undecided | None


def entry_scheme(entry: Mapping[str, Any], ecosystem: str) -> str:
    """The name of the scheme an entry's versions are written in: the record's
    ``version_scheme`` when it names one, else the ecosystem's. Raises
    :class:`UnknownScheme`."""
    scheme = _scheme(entry, ecosystem)
    return NPM_SEMVER if scheme is None else scheme.name


@lru_cache(maxsize=1024)
def _ecosystem_scheme(ecosystem: str) -> VersionScheme:
    """The ecosystem's scheme, looked up once per ecosystem (a registry miss raises and is
    not remembered)."""
    return scheme_for_ecosystem(ecosystem)


def _scheme(entry: Mapping[str, Any], ecosystem: str) -> VersionScheme | None:
    """The scheme an entry's versions are written in (see :func:`entry_scheme`), None for
    legacy npm ranges (``version_scheme: npm-semver``)."""
    specific = entry.get("database_specific")
    named = (
        specific.get("version_scheme")
        if type(specific) is dict or isinstance(specific, Mapping)
        else None
    )
    if named is None:
        return _ecosystem_scheme(ecosystem)
    if named == NPM_SEMVER:
        return None
    if isinstance(named, str):
        return scheme_for(named)
    return _ecosystem_scheme(ecosystem)


def _pairs(raw: Sequence[Any]) -> EventPairs | None:
    """A range's events as ``(kind, version)`` text pairs, the cheap cache key of its
    prepared form; None when an event has another shape (then :func:`prepare` refuses it
    with its own message)."""
    out = []
    for item in raw:
        # records parsed from JSON hold dicts: the exact type tests skip the slower ABC checks
        if type(item) is dict and len(item) == 1:
            ((key, value),) = item.items()
            if key in _KINDS and type(value) is str:
                out.append((key, value))
                continue
        return None
    return tuple(out)


def _prepare_events(events: Any, scheme: VersionScheme) -> PreparedRange:
    pairs = _pairs(events)
    return prepare(events, scheme) if pairs is None else prepare_pairs(pairs, scheme)


def _text(bound: Version | None) -> str:
    return "0" if bound is None else bound.text


def _interval(prepared: PreparedRange, version: Version) -> str:
    """The events bounding the interval that contains ``version`` (as published text)."""
    walk = prepared.walk
    key = version.key  # the range and the version are of one scheme: keys compare
    start = -1
    for index, (kind, bound) in enumerate(walk):
        if kind is EventKind.INTRODUCED:
            if bound is None or key >= bound.key:
                start = index
        elif kind is EventKind.FIXED:
            if bound is not None and key >= bound.key:
                start = -1
        elif bound is not None and key > bound.key:
            start = -1
    parts = [f"introduced {_text(walk[start][1])}"] if start >= 0 else []
    for kind, bound in walk[start + 1 :]:
        if kind in (EventKind.FIXED, EventKind.LAST_AFFECTED):
            parts.append(f"{kind.value} {_text(bound)}")
            break
    for limit in prepared.limits:
        parts.append(f"limit {'*' if limit is None else limit.text}")
    return ", ".join(parts)


def _fixed_above(prepared: PreparedRange, version: Version) -> list[str]:
    key = version.key
    return [
        bound.text
        for kind, bound in prepared.walk
        if kind is EventKind.FIXED and bound is not None and bound.key > key
    ]


def _in_versions(listed: Sequence[Any], version: Version, scheme: VersionScheme) -> bool:
    """Whether ``version`` is in the list: by text first, then by parsed equality for the
    items that could be equal. Lists run to hundreds of items, so when the version starts
    with a number not led by ``0``, only items starting with that number, or not with a digit
    1-9 (``v``-prefixed, ``0``-led), are parsed: any other item has a different first number
    or epoch, hence is a different version."""
    text = version.text
    if text in listed:
        return True
    head = text[: len(text) - len(text.lstrip("0123456789"))]
    if head and head[0] != "0":
        candidates = [
            item
            for item in listed
            if isinstance(item, str) and (item.startswith(head) or item[:1] not in _NONZERO)
        ]
    else:
        candidates = [item for item in listed if isinstance(item, str)]
    key = version.key  # ``version`` is of ``scheme``: equal keys are equal versions
    parse = scheme.parse
    for item in candidates:
        try:
            if parse(item).key == key:
                return True
        except InvalidVersion:
            continue
    return False


def _npm_legacy(entry: Mapping[str, Any], version_text: str) -> Outcome:
    specific = entry.get("database_specific") or {}
    vulnerable = specific.get("vulnerable_versions")
    patched = specific.get("patched_versions")
    if not isinstance(vulnerable, str) or not vulnerable.strip():
        return Undecided(UnknownKind.UNSUPPORTED, "npm advisory has no vulnerable_versions range")
    scheme = scheme_for("npm")
    try:
        version = scheme.parse(version_text)
    except InvalidVersion as e:
        return Undecided(UnknownKind.BAD_VERSION, e.diagnostics())
    try:
        if not parse_range(vulnerable).contains(version):
            return NOT_AFFECTED
        if isinstance(patched, str) and patched.strip():
            patched_range = parse_range(patched)
            if patched_range.contains(version):
                # an advisory whose ranges overlap: the patched range wins, as npm audit does
                return NOT_AFFECTED
    except InvalidRange as e:
        return Undecided(UnknownKind.BAD_RANGE, e.diagnostics())
    no_fix = not isinstance(patched, str) or patched.strip() in ("", "<0.0.0")
    return Affected(
        MatchKind.NPM_SEMVER,
        f"vulnerable {vulnerable}" + ("" if no_fix else f", patched {patched}"),
        NPM_SEMVER,
        () if no_fix else (str(patched),),
    )


def evaluate(entry: Mapping[str, Any], ecosystem: str, version_text: str) -> Outcome:
    """Whether the ``affected`` entry covers ``version_text`` (a version of ``ecosystem``)."""
    try:
        scheme = _scheme(entry, ecosystem)
    except UnknownScheme as e:
        return Undecided(UnknownKind.NO_SCHEME, e.diagnostics())
    if scheme is None:
        return _npm_legacy(entry, version_text)
    try:
        version = scheme.parse(version_text)
    except InvalidVersion as e:
        return Undecided(UnknownKind.BAD_VERSION, e.diagnostics())
    decidable = False
    git_only = False
    fixed: set[str] = set()
    matched: list[str] = []
    for rng in entry.get("ranges") or ():
        rtype = rng.get("type") if type(rng) is dict or isinstance(rng, Mapping) else None
        if rtype == "GIT":
            git_only = True
            continue
        if rtype not in ("ECOSYSTEM", "SEMVER"):
            return Undecided(UnknownKind.UNSUPPORTED, f"range type {rtype!r} is not supported")
        decidable = True
        range_scheme = scheme
        if rtype == "SEMVER" and scheme.name not in _SEMVER_NATIVE:
            range_scheme = scheme_for("semver")
        try:
            candidate = version if range_scheme is scheme else range_scheme.parse(version_text)
            prepared = _prepare_events(rng.get("events") or (), range_scheme)
        except InvalidVersion as e:
            return Undecided(UnknownKind.BAD_VERSION, e.diagnostics())
        except InvalidRange as e:
            return Undecided(UnknownKind.BAD_RANGE, e.diagnostics())
        if prepared.contains(candidate):
            matched.append(f"{rtype}: {_interval(prepared, candidate)}")
            fixed.update(_fixed_above(prepared, candidate))
    listed = entry.get("versions")
    if isinstance(listed, list) and listed:
        decidable = True
        if not matched and _in_versions(listed, version, scheme):
            return Affected(
                MatchKind.OSV_VERSIONS, f"versions list has {version.text}", scheme.name, ()
            )
    if matched:
        ordered = sorted(fixed, key=scheme.parse)
        return Affected(MatchKind.OSV_RANGE, "; ".join(matched), scheme.name, tuple(ordered))
    if not decidable:
        if git_only:
            return Undecided(
                UnknownKind.GIT_RANGE,
                "the record has only GIT (commit) ranges; an installed version cannot be "
                "placed in them",
            )
        return Undecided(UnknownKind.UNSUPPORTED, "the affected entry has no ranges or versions")
    return NOT_AFFECTED
