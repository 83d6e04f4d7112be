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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any


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


def preferred(ids: Sequence[str] | frozenset[str] | set[str]) -> str:
    """The id a finding is shown under."""
    return min(ids, key=_rank)


def record_ids(record: Mapping[str, Any]) -> tuple[str, ...]:
    """A record's id and its aliases (strings only), in published order without repeats."""
    out = [record["id"]]
    for alias in record.get("aliases") or ():
        if isinstance(alias, str) and alias and alias not in out:
            out.append(alias)
    return tuple(out)


def is_cve(identifier: str) -> bool:
    return identifier.startswith("CVE-")


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


def merge(entries: Sequence[Sequence[str]]) -> list[Group]:
    """Group entries (each: a record's id followed by its aliases) into vulnerabilities."""
    if len(entries) == 1 and sum(1 for i in entries[0] if is_cve(i)) < 2:
        only = set(entries[0])
        shown = preferred(only)
        return [Group(shown, tuple(sorted(only - {shown}, key=_rank)), (0,))]
    uf = _UnionFind()
    anchors: list[list[str]] = []
    for ids in entries:
        cves = [i for i in ids if is_cve(i)]
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
                known.update(i for i in ids if not is_cve(i) or i == key)
            else:
                known.update(ids)
    groups = []
    for root, indexes in members.items():
        ids_of_group = names[root]
        shown = preferred(ids_of_group)
        groups.append(
            Group(
                shown,
                tuple(sorted(ids_of_group - {shown}, key=_rank)),
                tuple(sorted(set(indexes))),
            )
        )
    groups.sort(key=lambda g: _rank(g.id))
    return groups
