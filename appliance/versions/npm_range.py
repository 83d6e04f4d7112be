"""npm version ranges, with node-semver's grammar and its pre-release rule.

A range is ``set || set ...``; a set is comparators that must all hold. Sugar (``^``, ``~``,
``x``-ranges, ``1.2.3 - 2.3.4``) desugars to primitive comparators exactly as node-semver's
``Range`` does, including the ``-0`` lower bounds used when pre-releases are included.

The pre-release rule: a version with a pre-release tag satisfies a set only if some
comparator in that set names a pre-release of the same ``major.minor.patch``, unless
``include_prerelease`` is set. So ``^1.2.3`` does not match ``1.3.0-beta``, while
``>=1.3.0-alpha <2`` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from appliance.versions.interface import InvalidRange, Version
from appliance.versions.npm import MAX_LENGTH
from appliance.versions.npm import NAME as NPM
from appliance.versions.npm import parse as parse_npm
from appliance.versions.semver import NAME as SEMVER
from appliance.versions.semver import PreKey, prerelease_key

_NUM = r"0|[1-9][0-9]*"
_XID = rf"(?:{_NUM}|[xX*])"
_PRE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_PARTIAL = re.compile(
    rf"[v=\s]*(?P<M>{_XID})(?:\.(?P<m>{_XID})(?:\.(?P<p>{_XID})"
    rf"(?:-(?P<pre>{_PRE_ID}(?:\.{_PRE_ID})*))?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?)?)?"
)
_BUILD = re.compile(r"\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*")
_HYPHEN = re.compile(r"^\s*(?P<from>\S+)\s+-\s+(?P<to>\S+)\s*$")
_OP_SPACE = re.compile(r"(<=|>=|<|>|=|~>|~|\^)\s+")
_OP = re.compile(r"(<=|>=|<|>|=|~>|~|\^)?(.*)", re.DOTALL)

Release = tuple[int, int, int]


class Op(StrEnum):
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    EQ = "="


@dataclass(frozen=True, slots=True)
class Comparator:
    """One primitive comparison against a full version; ``release`` is None for "any"."""

    op: Op
    release: Release | None
    pre: PreKey

    @property
    def is_any(self) -> bool:
        return self.release is None

    @property
    def has_prerelease(self) -> bool:
        return self.pre[0] == 0

    def test(self, key: tuple[int, int, int, PreKey]) -> bool:
        if self.release is None:
            return True
        mine = (*self.release, self.pre)
        match self.op:
            case Op.LT:
                return key < mine
            case Op.LE:
                return key <= mine
            case Op.GT:
                return key > mine
            case Op.GE:
                return key >= mine
            case Op.EQ:
                return key == mine

    def __str__(self) -> str:
        if self.release is None:
            return "*"
        text = ".".join(map(str, self.release))
        if self.has_prerelease:
            text += "-" + ".".join(str(v) for _, v in self.pre[1])
        return f"{self.op}{text}"


_ANY = Comparator(Op.GE, None, (1, ()))
_ZERO_PRE = prerelease_key(("0",))
_NO_PRE = prerelease_key(())


def _cmp(op: Op, major: int, minor: int, patch: int, pre: PreKey = _NO_PRE) -> Comparator:
    return Comparator(op, (major, minor, patch), pre)


@dataclass(frozen=True, slots=True)
class _Partial:
    major: int | None
    minor: int | None
    patch: int | None
    pre: tuple[str, ...]


def _partial(text: str, whole: str) -> _Partial:
    match = _PARTIAL.fullmatch(text)
    if match is None:
        raise InvalidRange(NPM, whole, f"{text!r} is not a version or x-range")

    def num(name: str) -> int | None:
        value = match.group(name)
        return None if value is None or value in "xX*" else int(value)

    major, minor, patch = num("M"), num("m"), num("p")
    # node-semver refuses a number after a wildcard ("1.x.3").
    if (major is None and (minor is not None or patch is not None)) or (
        minor is None and patch is not None
    ):
        raise InvalidRange(NPM, whole, f"{text!r} has a number after a wildcard")
    pre = match.group("pre")
    return _Partial(major, minor, patch, tuple(pre.split(".")) if pre else ())


def _tilde(v: _Partial, inc: bool) -> list[Comparator]:
    low_pre = _ZERO_PRE if inc else _NO_PRE
    if v.major is None:
        return [_ANY]
    if v.minor is None:
        return [_cmp(Op.GE, v.major, 0, 0, low_pre), _cmp(Op.LT, v.major + 1, 0, 0, _ZERO_PRE)]
    upper = _cmp(Op.LT, v.major, v.minor + 1, 0, _ZERO_PRE)
    if v.patch is None:
        return [_cmp(Op.GE, v.major, v.minor, 0, low_pre), upper]
    return [_cmp(Op.GE, v.major, v.minor, v.patch, prerelease_key(v.pre)), upper]


def _caret(v: _Partial, inc: bool) -> list[Comparator]:
    low_pre = _ZERO_PRE if inc else _NO_PRE
    if v.major is None:
        return [_ANY]
    if v.minor is None:
        return [_cmp(Op.GE, v.major, 0, 0, low_pre), _cmp(Op.LT, v.major + 1, 0, 0, _ZERO_PRE)]
    if v.patch is None:
        low = _cmp(Op.GE, v.major, v.minor, 0, low_pre)
        if v.major == 0:
            return [low, _cmp(Op.LT, 0, v.minor + 1, 0, _ZERO_PRE)]
        return [low, _cmp(Op.LT, v.major + 1, 0, 0, _ZERO_PRE)]
    low = _cmp(Op.GE, v.major, v.minor, v.patch, prerelease_key(v.pre))
    if v.major == 0 and v.minor == 0:
        return [low, _cmp(Op.LT, 0, 0, v.patch + 1, _ZERO_PRE)]
    if v.major == 0:
        return [low, _cmp(Op.LT, 0, v.minor + 1, 0, _ZERO_PRE)]
    return [low, _cmp(Op.LT, v.major + 1, 0, 0, _ZERO_PRE)]


def _xrange(op: str, v: _Partial, inc: bool) -> list[Comparator]:
    pre = _ZERO_PRE if inc else _NO_PRE
    if v.major is None:
        # ">x" and "<x" allow nothing; every other form allows everything.
        return [_cmp(Op.LT, 0, 0, 0, _ZERO_PRE)] if op in ("<", ">") else [_ANY]
    if v.minor is not None and v.patch is not None:
        exact = Op(op) if op else Op.EQ
        return [_cmp(exact, v.major, v.minor, v.patch, prerelease_key(v.pre))]
    if op in ("", "="):
        if v.minor is None:
            return [_cmp(Op.GE, v.major, 0, 0, pre), _cmp(Op.LT, v.major + 1, 0, 0, _ZERO_PRE)]
        return [
            _cmp(Op.GE, v.major, v.minor, 0, pre),
            _cmp(Op.LT, v.major, v.minor + 1, 0, _ZERO_PRE),
        ]
    major, minor = v.major, 0 if v.minor is None else v.minor
    gtlt = op
    if op == ">":
        gtlt = ">="
        if v.minor is None:
            major, minor = major + 1, 0
        else:
            minor += 1
    elif op == "<=":
        gtlt = "<"
        if v.minor is None:
            major += 1
        else:
            minor += 1
    if gtlt == "<":
        pre = _ZERO_PRE
    return [_cmp(Op(gtlt), major, minor, 0, pre)]


def _hyphen(low: _Partial, high: _Partial, inc: bool) -> list[Comparator]:
    out: list[Comparator] = []
    z = _ZERO_PRE if inc else _NO_PRE
    if low.major is not None:
        if low.minor is None:
            out.append(_cmp(Op.GE, low.major, 0, 0, z))
        elif low.patch is None:
            out.append(_cmp(Op.GE, low.major, low.minor, 0, z))
        elif low.pre:
            out.append(_cmp(Op.GE, low.major, low.minor, low.patch, prerelease_key(low.pre)))
        else:
            out.append(_cmp(Op.GE, low.major, low.minor, low.patch, z))
    if high.major is not None:
        if high.minor is None:
            out.append(_cmp(Op.LT, high.major + 1, 0, 0, _ZERO_PRE))
        elif high.patch is None:
            out.append(_cmp(Op.LT, high.major, high.minor + 1, 0, _ZERO_PRE))
        elif high.pre:
            out.append(_cmp(Op.LE, high.major, high.minor, high.patch, prerelease_key(high.pre)))
        elif inc:
            out.append(_cmp(Op.LT, high.major, high.minor, high.patch + 1, _ZERO_PRE))
        else:
            out.append(_cmp(Op.LE, high.major, high.minor, high.patch))
    return out or [_ANY]


def _comparator_set(text: str, whole: str, inc: bool) -> tuple[Comparator, ...]:
    text = _BUILD.sub("", text).strip()
    hyphen = _HYPHEN.match(text)
    comparators: list[Comparator] = []
    if hyphen is not None:
        comparators = _hyphen(
            _partial(hyphen.group("from"), whole), _partial(hyphen.group("to"), whole), inc
        )
    else:
        for token in _OP_SPACE.sub(r"\1", text).split():
            match = _OP.fullmatch(token)
            assert match is not None  # the pattern accepts any string
            op, rest = match.group(1) or "", match.group(2)
            partial = _partial(rest, whole)
            if op in ("~", "~>"):
                comparators.extend(_tilde(partial, inc))
            elif op == "^":
                comparators.extend(_caret(partial, inc))
            else:
                comparators.extend(_xrange(op, partial, inc))
    # ">=0.0.0" (or ">=0.0.0-0" when pre-releases are included) means "any".
    gte0 = _cmp(Op.GE, 0, 0, 0, _ZERO_PRE if inc else _NO_PRE)
    comparators = [_ANY if c == gte0 else c for c in comparators]
    if len(comparators) > 1:
        comparators = [c for c in comparators if not c.is_any] or [_ANY]
    return tuple(dict.fromkeys(comparators)) or (_ANY,)


@dataclass(frozen=True, slots=True)
class Range:
    """A parsed npm range; ``sets`` for the default mode, ``sets_including_prerelease`` for
    node-semver's ``includePrerelease`` option (its desugaring differs)."""

    text: str
    sets: tuple[tuple[Comparator, ...], ...]
    sets_including_prerelease: tuple[tuple[Comparator, ...], ...]

    def contains(self, version: Version | str, include_prerelease: bool = False) -> bool:
        """Whether ``version`` (an npm or strict SemVer version, or text parsed as npm)
        satisfies the range."""
        if isinstance(version, str):
            version = parse_npm(version)
        if version.scheme not in (NPM, SEMVER):
            raise TypeError(f"an npm range cannot hold a {version.scheme} version")
        key = version.key
        is_pre = key[3][0] == 0
        sets = self.sets_including_prerelease if include_prerelease else self.sets
        for comparators in sets:
            if not all(c.test(key) for c in comparators):
                continue
            if not is_pre or include_prerelease:
                return True
            release = key[:3]
            if any(c.has_prerelease and c.release == release for c in comparators):
                return True
        return False

    def __contains__(self, version: Version | str) -> bool:
        return self.contains(version)

    def __str__(self) -> str:
        return " || ".join(" ".join(map(str, s)) for s in self.sets)


@lru_cache(maxsize=16384)
def parse_range(text: str) -> Range:
    """Parse an npm range; raise :class:`InvalidRange` naming the offending part."""
    if len(text) > MAX_LENGTH:
        raise InvalidRange(NPM, text[:40] + "...", f"it is longer than {MAX_LENGTH} characters")
    parts = re.split(r"\s*\|\|\s*", text.strip())
    sets = tuple(_comparator_set(p, text, False) for p in parts)
    sets_inc = tuple(_comparator_set(p, text, True) for p in parts)
    return Range(text, sets, sets_inc)
