"""Canonical's OSV records (``canonical/ubuntu-security-notices``): ``osv/cve/YYYY/*.json``
(one record per CVE, ``UBUNTU-CVE-…``; older files name it ``CVE-…``) and ``osv/usn/*.json``
(one record per notice, ``USN-…``); like every OSV feed, JSON lines are read too.

Normalization, so Ubuntu is matched like Debian:

- ids: a bare ``CVE-…`` id becomes ``UBUNTU-CVE-…`` (the current upstream naming, and never the
  same id as another feed's record); every record's CVEs are its ``aliases`` (from the id, from
  ``upstream``'s ``UBUNTU-CVE-…`` entries, and from USN ``cves_map``);
- ecosystems: ``Ubuntu:22.04:LTS`` -> ``Ubuntu:22.04`` (what os-release's ``VERSION_ID`` gives);
  every Ubuntu Pro / ESM stream (``Ubuntu:Pro:16.04:LTS``, ``Ubuntu:Pro:FIPS…:22.04:LTS``) ->
  ``Ubuntu:Pro:<release>``, which images without Pro never match; the upstream ecosystem is kept
  in ``database_specific.upstream_ecosystem``;
- names are the source packages Canonical publishes, versions dpkg (``version_scheme``);
- the Ubuntu priority (``ecosystem_specific.ubuntu_priority``) is ``database_specific.severity``;
  a USN names several CVEs, each with its own priority (``cves_map``): the notice gets one
  ``severity`` only when all of them agree, since a finding is about one CVE and the notice's
  highest would overstate the others; the per-CVE priorities are kept in
  ``database_specific.cve_priorities`` either way (the ``UBUNTU-CVE-…`` record of each CVE,
  when the feed has it, rates its findings); ``severity[]`` is kept;
- an entry whose only event is ``introduced 0`` (affected, no fix published) carries no range
  and ``database_specific.status = "open"``.
"""

from __future__ import annotations

import re
from typing import Any, Final

from mirror.config import SourceKind
from mirror.sources.interface import (
    ParseResult,
    as_list,
    as_object,
)
from mirror.sources.osv import OSVFeed, osv_label, osv_problem

SCHEME: Final = "dpkg"
#: Ubuntu's priorities, lowest first.
PRIORITIES: Final = ("negligible", "low", "medium", "high", "critical")
_CVE: Final = re.compile(r"CVE-\d{4}-\d{4,}")
_RELEASE: Final = re.compile(r"\d+\.\d+")


def ecosystem(upstream: str) -> str | None:
    """``Ubuntu:22.04:LTS`` -> ``Ubuntu:22.04``; Pro streams -> ``Ubuntu:Pro:<release>``."""
    parts = upstream.split(":")
    releases = [p for p in parts if _RELEASE.fullmatch(p)]
    if parts[0] != "Ubuntu" or len(releases) != 1:
        return None
    pro = any(p.startswith(("Pro", "ESM", "FIPS")) for p in parts[1:])
    return f"Ubuntu:Pro:{releases[0]}" if pro else f"Ubuntu:{releases[0]}"


def _highest(words: list[str]) -> str | None:
    known = [w for w in words if w in PRIORITIES]
    return max(known, key=PRIORITIES.index) if known else None


def cve_priorities(entry: dict[str, Any]) -> dict[str, str]:
    """A USN entry's CVEs with the Ubuntu priority of each (``cves_map``)."""
    cves = as_list(as_object(as_object(entry.get("database_specific")).get("cves_map")).get("cves"))
    out: dict[str, str] = {}
    for cve in map(as_object, cves):
        words = [
            s.get("score")
            for s in map(as_object, as_list(cve.get("severity")))
            if s.get("type") == "Ubuntu" and isinstance(s.get("score"), str)
        ]
        word = _highest([str(w) for w in words])
        if isinstance(cve.get("id"), str) and word is not None:
            out[str(cve["id"])] = word
    return dict(sorted(out.items()))


def _priority(entry: dict[str, Any]) -> str | None:
    """The entry's one Ubuntu priority: its own, or the one all of a USN's CVEs share."""
    specific = as_object(entry.get("ecosystem_specific"))
    if isinstance(specific.get("ubuntu_priority"), str):
        return str(specific["ubuntu_priority"])
    words = set(cve_priorities(entry).values())
    return words.pop() if len(words) == 1 else None


def _cves_of(record: dict[str, Any]) -> set[str]:
    found: set[str] = set()
    for value in [record["id"], *as_list(record.get("aliases")), *as_list(record.get("upstream"))]:
        if isinstance(value, str):
            found |= set(_CVE.findall(value))
    for entry in map(as_object, as_list(record.get("affected"))):
        cves = as_list(
            as_object(as_object(entry.get("database_specific")).get("cves_map")).get("cves")
        )
        found |= {c["id"] for c in map(as_object, cves) if isinstance(c.get("id"), str)}
    return found


class UbuntuOSVSource(OSVFeed):
    kind = SourceKind.UBUNTU_OSV

    @staticmethod
    def _add(record: Any, item: str, result: ParseResult) -> None:
        problem = osv_problem(record)
        rid = record.get("id") if isinstance(record, dict) else None
        label = osv_label(record, item)
        if problem:
            result.skip(label, problem)
            return
        affected = []
        for index, entry in enumerate(record.get("affected", [])):
            eco = as_object(entry.get("package")).get("ecosystem")
            normal = ecosystem(eco) if isinstance(eco, str) else None
            if normal is None:
                result.skip(f"{label} affected[{index}]", f"unknown Ubuntu ecosystem {eco!r}")
                continue
            affected.append(UbuntuOSVSource._entry(entry, normal, str(eco)))
        if not affected:
            result.skip(label, "no affected entry with an Ubuntu release")
            return
        out = {**record, "affected": affected, "aliases": sorted(_cves_of(record))}
        if str(rid).startswith("CVE-"):
            out["id"] = f"UBUNTU-{rid}"
        result.records.append(out)

    @staticmethod
    def _entry(entry: dict[str, Any], eco: str, upstream: str) -> dict[str, Any]:
        specific: dict[str, Any] = {"version_scheme": SCHEME, "upstream_ecosystem": upstream}
        priority = _priority(entry)
        if priority is not None:
            specific["severity"] = priority
        if per_cve := cve_priorities(entry):
            specific["cve_priorities"] = per_cve
        out = {**entry, "package": {**entry["package"], "ecosystem": eco}}
        ranges = entry.get("ranges") or []
        fixed = [
            e for r in ranges for e in r.get("events", []) if isinstance(e, dict) and "fixed" in e
        ]
        if not fixed:
            out.pop("ranges", None)
            specific["status"] = "open"
        out["database_specific"] = {**as_object(entry.get("database_specific")), **specific}
        return out
