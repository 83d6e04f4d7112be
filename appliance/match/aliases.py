"""Merging records that describe one vulnerability, so one vulnerability is one finding.

OSV records name the same vulnerability under several ids (``PYSEC-2021-7`` = ``CVE-2021-31542``
= ``GHSA-rxjp-mfm9-w4wr``; ``GO-…`` = ``GHSA-…``). Within one component, records whose id
or aliases meet are merged, transitively. One kind of record is an advisory, not a
vulnerability: a Debian ``DSA`` or an Alpine secfix that lists several CVEs. Such a record
never joins two CVEs into one finding; it contributes to the finding of each CVE it lists.

The finding's id is chosen by content only: the lowest CVE, else the lowest GHSA, else the
lowest other id (numbers compared as numbers), so the choice never depends on input order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=65536)
def _natural(text: str) -> tuple[tuple[int, int | str], ...]:
    """``CVE-2021-9999`` before ``CVE-2021-10000``: dash-separated parts, numbers as numbers
    (tagged, so a number never meets a string in a comparison)."""
    return tuple([(0, int(p)) if p.isdigit() else (1, p) for p in text.split("-")])


@lru_cache(maxsize=65536)
def _rank(identifier: str) -> tuple[int, tuple[tuple[int, int | str], ...]]:
    if identifier.startswith("CVE-"):
        return (0, _natural(identifier))
    if identifier.startswith("GHSA-"):
        return (1, _natural(identifier))
    return (2, _natural(identifier))


def _ordered(ids: Iterable[str]) -> list[str]:
    """``ids`` sorted as by :func:`_rank` (the preferred first): CVEs, then GHSAs, then the
    others; the numbers-as-numbers key is computed only to order two ids of one kind, and
    most kinds hold one id."""
    cves: list[str] = []
    ghsas: list[str] = []
    others: list[str] = []
    for i in ids:
        if i.startswith("CVE-"):
            cves.append(i)
        elif i.startswith("GHSA-"):
            ghsas.append(i)
        else:
            others.append(i)
    for kind in (cves, ghsas, others):
        if len(kind) > 1:
            kind.sort(key=_natural)
    return cves + ghsas + others


def record_ids(record: Mapping[str, Any]) -> tuple[str, ...]:
    """A record's id and its aliases (strings only), in published order without repeats."""
    out = [record["id"]]
    for alias in record.get("aliases") or ():
        if isinstance(alias, str) and alias and alias not in out:
            out.append(alias)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Group:
    """One vulnerability: its shown id, its other ids (sorted), and the indexes of the input
    entries that contribute to it."""

    id: str
    aliases: tuple[str, ...]
    members: tuple[int, ...]


class _UnionFind:
    __slots__ = ("parent",)

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        parent = self.parent.setdefault(x, x)
        while parent != x:
            grand = self.parent[parent]
            self.parent[x] = grand
            x, parent = parent, grand
        return x

    def union(self, a: str, b: str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            # the smaller root wins, so the structure depends on the ids only
            if ra < rb:
                self.parent[rb] = ra
            else:
                self.parent[ra] = rb


def _apart(entries: Sequence[Sequence[str]]) -> bool:
    """Whether no id is in two entries and no entry names two CVEs: then every entry is a
    vulnerability of its own, and the union-find would only confirm it."""
    seen: set[str] = set()
    for ids in entries:
        cves = 0
        for i in ids:
            if i in seen:
                return False
            seen.add(i)
            if i.startswith("CVE-"):
                cves += 1
        if cves > 1:
            return False
    return True


def merge(entries: Sequence[Sequence[str]]) -> list[Group]:
    """Group entries (each: a record's id followed by its aliases) into vulnerabilities."""
    if len(entries) == 1 and sum(1 for i in entries[0] if i.startswith("CVE-")) < 2:
        ordered = _ordered(set(entries[0]))
        return [Group(ordered[0], tuple(ordered[1:]), (0,))]
    if _apart(entries):
        # nothing to merge, the common case: one group per entry
        groups = []
        for index, ids in enumerate(entries):
            ordered = _ordered(set(ids))
            groups.append(Group(ordered[0], tuple(ordered[1:]), (index,)))
        groups.sort(key=lambda g: _rank(g.id))
        return groups
    uf = _UnionFind()
    anchors: list[list[str]] = []
    for ids in entries:
        cves = [i for i in ids if i.startswith("CVE-")]
        if len(cves) >= 2:
            for cve in cves:
                uf.find(cve)
            anchors.append(cves)
        else:
            for other in ids[1:]:
                uf.union(ids[0], other)
            uf.find(ids[0])
            anchors.append([ids[0]])
    members: dict[str, list[int]] = {}
    names: dict[str, set[str]] = {}
    for index, (ids, anchor) in enumerate(zip(entries, anchors, strict=True)):
        fan_out = len(anchor) > 1
        for key in anchor:
            root = uf.find(key)
            members.setdefault(root, []).append(index)
            known = names.setdefault(root, set())
            if fan_out:
                known.update(i for i in ids if not i.startswith("CVE-") or i == key)
            else:
                known.update(ids)
    groups = []
    for root, indexes in members.items():
        ordered = _ordered(names[root])
        groups.append(Group(ordered[0], tuple(ordered[1:]), tuple(sorted(set(indexes)))))
    groups.sort(key=lambda g: _rank(g.id))
    return groups
