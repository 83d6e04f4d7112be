"""Matching an inventory against a knowledge snapshot: pure, deterministic, explained.

For each package: distribution packages are looked up by source/origin package in the
release's ecosystem (``Debian:12``, ``Alpine:v3.20``); language packages by their normalized
name in their ecosystem, unless the distribution installed them (then the distribution's data
judges them through their owner, see :mod:`appliance.match.distro`); the Go release a binary
embeds (``stdlib``, ``toolchain``) is matched whatever owns the binary, and its evidence names
the binary and the owner. Each record's affected entries for that package are evaluated;
withdrawn records are ignored; records that name one vulnerability are merged into one finding
(:mod:`appliance.match.aliases`); what cannot be decided becomes a :class:`MatchUnknown`. No
I/O: everything comes from the :class:`AdvisorySource`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from appliance.ecosystems import base_ecosystem, normalize_name
from appliance.match import aliases, enrich
from appliance.match.distro import (
    OS_TYPES,
    delegations,
    evaluate_distro,
    file_owners,
    fix_state,
    is_embedded_toolchain,
    lookup,
    toolchain_note,
)
from appliance.match.distro import os_ecosystem as distro_ecosystem
from appliance.match.model import (
    Component,
    Evidence,
    FileEvidence,
    Finding,
    FindingsReport,
    Inventory,
    MatchDetail,
    MatchUnknown,
    Reachability,
    RecordRef,
    UnknownKind,
)
from appliance.match.osv import Affected, Undecided, evaluate
from appliance.match.source import Advisory, AdvisorySource, Prefetching
from appliance.scanner.model import OSInfo, Package, PackageType
from appliance.scanner.purl import package_purl
from appliance.versions import UnknownScheme, scheme_for

#: Package type -> OSV ecosystem of language packages.
LANGUAGE_ECOSYSTEMS: Final = {
    PackageType.PYPI: "PyPI",
    PackageType.NPM: "npm",
    PackageType.GOLANG: "Go",
    PackageType.MAVEN: "Maven",
    PackageType.GEM: "RubyGems",
    PackageType.NUGET: "NuGet",
    PackageType.COMPOSER: "Packagist",
}
_SUMMARY_LIMIT: Final = 200
# The package type each distribution's records are about.
_DISTRO_TYPES: Final = {"Debian": PackageType.DEB, "Alpine": PackageType.APK}


@dataclass(frozen=True, slots=True)
class _Hit:
    advisory: Advisory
    outcome: Affected
    package: str  # "ecosystem/name" as the entry wrote it
    entry: Mapping[str, Any]


def _summary(record: Mapping[str, Any]) -> str:
    text = record.get("summary") or record.get("details") or ""
    if not isinstance(text, str):
        return ""
    if len(text) > 4 * _SUMMARY_LIMIT:
        # ``details`` run to pages: the whole words of a prefix give the same first
        # characters, and when they already pass the limit, the same summary
        words = text[: 4 * _SUMMARY_LIMIT + 1].split()[:-1]
        head = " ".join(words)
        if len(head) > _SUMMARY_LIMIT:
            return head[: _SUMMARY_LIMIT - 1] + "…"
    line = " ".join(text.split())
    return line if len(line) <= _SUMMARY_LIMIT else line[: _SUMMARY_LIMIT - 1] + "…"


def _sort_versions(versions: set[str], scheme: str) -> tuple[str, ...]:
    try:
        parse = scheme_for(scheme).parse
        return tuple(sorted(versions, key=lambda v: (parse(v).key, v)))
    except (UnknownScheme, ValueError, TypeError):
        return tuple(sorted(versions))


def _embedded_evidence(
    evidence: Evidence, package: Package, owners: Mapping[str, Package], os_info: OSInfo | None
) -> Evidence:
    """A binary's embedded Go release: each file with the OS package that owns it, and the
    note that names binary, owner and release."""
    files = tuple(
        FileEvidence(
            f.path,
            f.layer,
            package_purl(owners[f.path.lstrip("/")], os_info)
            if f.path.lstrip("/") in owners
            else "",
        )
        for f in evidence.files
    )
    return replace(evidence, files=files, note=toolchain_note(package, owners))


class Matcher:
    """Matches inventories against one advisory source (one knowledge snapshot)."""

    def __init__(self, source: AdvisorySource) -> None:
        self.source = source

    def match(self, inventory: Inventory) -> FindingsReport:
        os_info = inventory.os
        distro = distro_ecosystem(os_info)
        owners = file_owners(inventory.packages)
        delegated = delegations(inventory.packages, os_info, owners)
        layers = dict(inventory.file_layers)
        reach = {r.purl: r for r in inventory.reachability}
        findings: list[Finding] = []
        unknowns: list[MatchUnknown] = []
        known = self.source.ecosystems()
        # a package's purl is made only when something is reported about it
        plan: list[tuple[Package, str | tuple[UnknownKind, str]]] = [
            (package, self._ecosystem(package, os_info, distro, known))
            for package in inventory.packages
            if package not in delegated
        ]
        prefetch: Prefetching | None = self.source if isinstance(self.source, Prefetching) else None
        if prefetch is not None:
            # every package's records at once: a store answers a batch far faster
            prefetch.prefetch([(e, lookup(p)[0]) for p, e in plan if not isinstance(e, tuple)])
        affected: list[tuple[Package, str, str, list[_Hit]]] = []
        for package, ecosystem in plan:
            if isinstance(ecosystem, tuple):
                unknowns.append(MatchUnknown(package_purl(package, os_info), *ecosystem))
                continue
            hits, missed = self._hits(package, ecosystem)
            if hits or missed:
                purl = package_purl(package, os_info)
                unknowns.extend(MatchUnknown(purl, *m) for m in missed)
                if hits:
                    affected.append((package, purl, ecosystem, hits))
        if prefetch is not None:
            # the KEV and EPSS rows every finding will ask for, at once: a finding's CVEs
            # are among its records' ids and aliases
            cited = {id(h.advisory): h.advisory for *_, hits in affected for h in hits}
            prefetch.prefetch_cves(
                {i for a in cited.values() for i in a.ids if i.startswith("CVE-")}
            )
        for package, purl, ecosystem, hits in affected:
            fact = reach.get(purl)
            evidence = Evidence(
                purl,
                tuple(
                    sorted({FileEvidence(p, layers.get(p.lstrip("/"))) for p in package.locations})
                ),
                fact.state if fact else Reachability.UNKNOWN,
                tuple(sorted(set(fact.entrypoints))) if fact else (),
            )
            if is_embedded_toolchain(package):
                evidence = _embedded_evidence(evidence, package, owners, os_info)
            findings.extend(self._findings(package, purl, ecosystem, evidence, hits))
        return FindingsReport.build(
            findings,
            unknowns,
            delegated.values(),
            snapshot=self.source.snapshot,
            target=inventory.target,
            distro=distro,
            components=len(inventory.packages),
        )

    @staticmethod
    def _ecosystem(
        package: Package,
        os_info: OSInfo | None,
        distro: str | None,
        known: frozenset[str] | None,
    ) -> str | tuple[UnknownKind, str]:
        """The ecosystem to look the package up in, or why there is none."""
        if package.type not in OS_TYPES:
            language = LANGUAGE_ECOSYSTEMS.get(package.type)
            if language is None:
                return (
                    UnknownKind.NO_SCHEME,
                    f"{package.type.value} packages have no vulnerability ecosystem here",
                )
            return language
        where = (os_info.pretty_name or os_info.distro) if os_info else "an unknown OS"
        if distro is None or _DISTRO_TYPES.get(base_ecosystem(distro)) is not package.type:
            return (
                UnknownKind.NO_DATA,
                f"no vulnerability data is kept for {package.type.value} packages of {where}",
            )
        if known is not None and distro not in known:
            return (
                UnknownKind.NO_DATA,
                f"the knowledge snapshot has no {distro} records ({where})",
            )
        return distro

    def _hits(
        self, package: Package, ecosystem: str
    ) -> tuple[list[_Hit], list[tuple[UnknownKind, str, str]]]:
        """Every affected entry of the package's records that covers its version, and what
        could not be decided (kind, reason, record id)."""
        name, version = lookup(package)
        is_distro = package.type in OS_TYPES
        key = normalize_name(ecosystem, name)
        hits: list[_Hit] = []
        unknowns: list[tuple[UnknownKind, str, str]] = []
        for advisory in self.source.advisories(ecosystem, name):
            record = advisory.record
            if record.get("withdrawn"):
                continue
            record_hits: list[_Hit] = []
            undecided: Undecided | None = None
            for entry in record.get("affected") or ():
                # records parsed from JSON hold dicts: the exact type test skips the ABC check
                pkg = (
                    entry.get("package")
                    if type(entry) is dict or isinstance(entry, Mapping)
                    else None
                )
                if (
                    not (type(pkg) is dict or isinstance(pkg, Mapping))
                    or pkg.get("ecosystem") != ecosystem
                ):
                    continue
                written = pkg.get("name")
                if not isinstance(written, str) or (
                    written != name and normalize_name(ecosystem, written) != key
                ):
                    continue
                if is_distro:
                    outcome = evaluate_distro(entry, ecosystem, version)
                else:
                    outcome = evaluate(entry, ecosystem, version)
                if isinstance(outcome, Affected):
                    record_hits.append(_Hit(advisory, outcome, f"{ecosystem}/{written}", entry))
                elif isinstance(outcome, Undecided) and undecided is None:
                    undecided = outcome
            if record_hits:
                hits.extend(record_hits)
            elif undecided is not None:
                # an installed version that does not parse is one unknown, not one per record
                rid = "" if undecided.kind is UnknownKind.BAD_VERSION else advisory.id
                unknowns.append((undecided.kind, undecided.reason, rid))
        return hits, unknowns

    def _findings(
        self, package: Package, purl: str, ecosystem: str, evidence: Evidence, hits: list[_Hit]
    ) -> list[Finding]:
        """The package's findings: its hits merged into one finding per vulnerability."""
        name, version = lookup(package)
        component = Component(
            purl, package.type.value, package.name, package.full_version, ecosystem, name
        )
        by_record: dict[str, list[_Hit]] = {}
        for hit in hits:
            by_record.setdefault(hit.advisory.id, []).append(hit)
        record_order = sorted(by_record)
        groups = aliases.merge([by_record[r][0].advisory.ids for r in record_order])
        findings = [
            self._finding(
                group,
                [h for i in group.members for h in by_record[record_order[i]]],
                component,
                version,
                evidence,
            )
            for group in groups
        ]
        return findings

    def _finding(
        self,
        group: aliases.Group,
        hits: Sequence[_Hit],
        component: Component,
        version: str,
        evidence: Evidence,
    ) -> Finding:
        snapshot = self.source.snapshot
        details: list[MatchDetail] = []
        fixed: set[str] = set()
        notes: list[tuple[str, str]] = []
        scores = []
        words = []
        seen: set[str] = set()
        for hit in hits:
            advisory = hit.advisory
            record = advisory.record
            record_id = advisory.id
            out = hit.outcome
            details.append(
                MatchDetail(
                    RecordRef(record_id, advisory.digest, str(record.get("modified", ""))),
                    out.kind,
                    out.scheme,
                    out.range,
                    version,
                    hit.package,
                    snapshot,
                    out.fixed,
                    out.notes,
                )
            )
            fixed.update(out.fixed)
            notes.extend(out.notes)
            word = enrich.database_severity(record, out.notes)
            if word is not None:
                words.append(word)
            if record_id not in seen:
                seen.add(record_id)
                entries = [h.entry for h in hits if h.advisory is advisory]
                for vector in enrich.cvss_vectors(record, entries):
                    score = enrich.score_vector(vector, record_id)
                    if score is not None:
                        scores.append(score)
        level, source, statement = enrich.severity(scores, words)
        cves = [i for i in (group.id, *group.aliases) if i.startswith("CVE-")]
        # most findings rest on one hit: nothing to deduplicate or order
        ordered = details if len(details) == 1 else sorted(set(details))
        first = (
            hits[0] if len(hits) == 1 else min(hits, key=lambda h: h.advisory.id)
        ).advisory.record
        return Finding(
            id=group.id,
            aliases=group.aliases,
            component=component,
            fixed_versions=_sort_versions(fixed, ordered[0].scheme),
            fix_state=fix_state(fixed, notes),
            severity=level,
            severity_source=source,
            severity_detail=statement,
            matches=tuple(ordered),
            evidence=evidence,
            cvss=tuple(sorted(set(scores))),
            kev=enrich.kev(cves, self.source.kev),
            epss=enrich.epss(cves, self.source.epss),
            summary=_summary(first),
        )


def match(inventory: Inventory, source: AdvisorySource) -> FindingsReport:
    """Every finding for ``inventory`` under the snapshot ``source`` answers for."""
    return Matcher(source).match(inventory)
