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

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, replace
from typing import Any, Final

from appliance.distros import OS_TYPES, Distro, distro_of
from appliance.ecosystems import LANGUAGE_ECOSYSTEMS, normalize_name
from appliance.match import aliases, enrich, pysymbols, symbols
from appliance.match.distro import (
    delegations,
    entry_applies,
    evaluate_distro,
    file_owners,
    fix_state,
    is_embedded_toolchain,
    lookup_names,
    module_stream,
    toolchain_note,
)
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
from appliance.match.osv import Affected, Outcome, Undecided, evaluate
from appliance.match.source import (
    Advisory,
    AdvisorySource,
    Prefetching,
    Probe,
    Probing,
    Rated,
)
from appliance.scanner.model import OSInfo, Package, PackageType
from appliance.scanner.purl import package_purl
from appliance.versions import UnknownScheme, scheme_for

_SUMMARY_LIMIT: Final = 200
__all__ = ["LANGUAGE_ECOSYSTEMS", "Matcher", "match", "record_outcome"]


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


def _entry_outcome(
    entry: Any,
    ecosystem: str,
    names: Sequence[str],
    keys: Set[str],
    version: str,
    is_distro: bool,
    streams: bool,
    stream: str | None,
) -> tuple[str, Outcome] | None:
    """One ``affected`` entry of a record for a package looked up under ``names`` (normalized:
    ``keys``) at ``version``: the package name as the entry writes it and the outcome, or None
    when the entry is about another package (or another module stream)."""
    # records parsed from JSON hold dicts: the exact type test skips the ABC check
    pkg = entry.get("package") if type(entry) is dict or isinstance(entry, Mapping) else None
    if not (type(pkg) is dict or isinstance(pkg, Mapping)) or pkg.get("ecosystem") != ecosystem:
        return None
    written = pkg.get("name")
    if not isinstance(written, str) or (
        written not in names and normalize_name(ecosystem, written) not in keys
    ):
        return None
    if streams and not entry_applies(entry, stream):
        return None
    if is_distro:
        return written, evaluate_distro(entry, ecosystem, version)
    return written, evaluate(entry, ecosystem, version)


def record_outcome(record: Mapping[str, Any], probe: Probe) -> Outcome:
    """What ``record`` says of a package as ``probe`` describes it, by the matcher's own
    rules: :class:`Affected` when an entry covers its version, else :class:`Undecided` when
    an entry cannot be decided (an unknown), else None (withdrawn, about other packages or
    versions: the record changes nothing in that package's findings)."""
    if record.get("withdrawn"):
        return None
    keys = frozenset({probe.name})
    streams = probe.module is not None
    undecided: Undecided | None = None
    for entry in record.get("affected") or ():
        found = _entry_outcome(
            entry,
            probe.ecosystem,
            (),
            keys,
            probe.version,
            probe.distro,
            streams,
            probe.module or None,
        )
        if found is None:
            continue
        outcome = found[1]
        if isinstance(outcome, Affected):
            return outcome
        if isinstance(outcome, Undecided) and undecided is None:
            undecided = outcome
    return undecided


class Matcher:
    """Matches inventories against one advisory source (one knowledge snapshot)."""

    def __init__(self, source: AdvisorySource) -> None:
        self.source = source
        self._rated = source if isinstance(source, Rated) else None
        self._probing = source if isinstance(source, Probing) else None
        self._python = pysymbols.PythonJudge(None, source)

    def match(self, inventory: Inventory) -> FindingsReport:
        os_info = inventory.os
        entry = distro_of(os_info)
        distro = entry.ecosystem_of(os_info) if entry is not None and os_info else None
        owners = file_owners(inventory.packages)
        delegated = delegations(inventory.packages, os_info, owners)
        layers = dict(inventory.file_layers)
        reach = {r.purl: r for r in inventory.reachability}
        self._python = pysymbols.PythonJudge(inventory.python, self.source)
        findings: list[Finding] = []
        unknowns: list[MatchUnknown] = []
        known = self.source.ecosystems()
        # a package's purl is made only when something is reported about it
        plan: list[tuple[Package, str | tuple[UnknownKind, str]]] = [
            (package, self._ecosystem(package, os_info, entry, distro, known))
            for package in inventory.packages
            if package not in delegated
        ]
        prefetch: Prefetching | None = self.source if isinstance(self.source, Prefetching) else None
        if prefetch is not None:
            # every package's records at once: a store answers a batch far faster
            prefetch.prefetch(
                [
                    (e, name)
                    for p, e in plan
                    if not isinstance(e, tuple)
                    for name in lookup_names(p, os_info)[0]
                ]
            )
        affected: list[tuple[Package, str, str, list[_Hit]]] = []
        for package, ecosystem in plan:
            if isinstance(ecosystem, tuple):
                unknowns.append(MatchUnknown(package_purl(package, os_info), *ecosystem))
                continue
            hits, missed = self._hits(package, ecosystem, os_info, entry)
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
            findings.extend(self._findings(package, purl, ecosystem, evidence, hits, os_info))
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
        entry: Distro | None,
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
        if entry is None or entry.package_type is not package.type:
            return (
                UnknownKind.NO_DATA,
                f"no vulnerability data is kept for {package.type.value} packages of {where}",
            )
        if entry.no_data:
            return (UnknownKind.NO_DATA, f"{where}: {entry.no_data}")
        if distro is None:
            return (
                UnknownKind.NO_DATA,
                f"os-release of {where} does not name the {entry.title} release "
                f"({entry.release_rule.value}), so no release's data can be chosen",
            )
        if known is not None and distro not in known:
            return (
                UnknownKind.NO_DATA,
                f"the knowledge snapshot has no {distro} records ({where})",
            )
        return distro

    def _hits(
        self,
        package: Package,
        ecosystem: str,
        os_info: OSInfo | None = None,
        distro: Distro | None = None,
    ) -> tuple[list[_Hit], list[tuple[UnknownKind, str, str]]]:
        """Every affected entry of the package's records that covers its version, and what
        could not be decided (kind, reason, record id). An RPM package's records are read
        under its binary and its source rpm name; a record found under both is read once."""
        names, version = lookup_names(package, os_info)
        is_distro = package.type in OS_TYPES
        keys = {normalize_name(ecosystem, n) for n in names}
        # a modular rpm's entries are chosen by module stream when the feed names streams
        streams = distro is not None and distro.module_streams and is_distro
        stream = module_stream(package) if streams else None
        if self._probing is not None:
            module = (stream or "") if streams else None
            self._probing.probed(
                Probe(ecosystem, key, version, is_distro, module) for key in sorted(keys)
            )
        hits: list[_Hit] = []
        unknowns: list[tuple[UnknownKind, str, str]] = []
        seen: set[str] = set()
        advisories = (
            self.source.advisories(ecosystem, names[0])
            if len(names) == 1
            else [a for n in names for a in self.source.advisories(ecosystem, n)]
        )
        for advisory in advisories:
            record = advisory.record
            if record.get("withdrawn"):
                continue
            if len(names) > 1:
                if advisory.id in seen:
                    continue
                seen.add(advisory.id)
            record_hits: list[_Hit] = []
            undecided: Undecided | None = None
            for entry in record.get("affected") or ():
                found = _entry_outcome(
                    entry, ecosystem, names, keys, version, is_distro, streams, stream
                )
                if found is None:
                    continue
                written, outcome = found
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
        self,
        package: Package,
        purl: str,
        ecosystem: str,
        evidence: Evidence,
        hits: list[_Hit],
        os_info: OSInfo | None = None,
    ) -> list[Finding]:
        """The package's findings: its hits merged into one finding per vulnerability."""
        names, version = lookup_names(package, os_info)
        component = Component(
            purl, package.type.value, package.name, package.full_version, ecosystem, names[0]
        )
        by_record: dict[str, list[_Hit]] = {}
        for hit in hits:
            by_record.setdefault(hit.advisory.id, []).append(hit)
        record_order = sorted(by_record)
        groups = aliases.merge([by_record[r][0].advisory.ids for r in record_order])
        findings = []
        for group in groups:
            group_hits = [h for i in group.members for h in by_record[record_order[i]]]
            found = component
            if len(names) > 1:
                # the name the finding's records were found under (the source rpm's when
                # records name both)
                written = sorted({h.package.partition("/")[2] for h in group_hits})
                name = names[1] if names[1] in written else written[0]
                found = replace(component, lookup_name=name)
            verdict = symbols.judge(package, [h.entry for h in group_hits])
            judged = symbols.apply(evidence, verdict)
            if verdict is None:  # Python: module and function level
                ids = {i for h in group_hits for i in h.advisory.ids}
                py = self._python.judge(package, purl, ids, [h.entry for h in group_hits])
                judged = pysymbols.apply(evidence, py)
            findings.append(self._finding(group, group_hits, found, version, judged))
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
        matched: list[tuple[Mapping[str, Any], list[Mapping[str, Any]]]] = []
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
            if record_id not in seen:
                seen.add(record_id)
                entries = [h.entry for h in hits if h.advisory is advisory]
                matched.append((record, entries))
        cves = [i for i in (group.id, *group.aliases) if i.startswith("CVE-")]
        rated = self._rated
        assessed = enrich.assess(
            matched,
            notes,
            cves,
            os_package=PackageType(component.type) in OS_TYPES,
            ghsa=rated.ghsa_records if rated is not None else None,
            cve=rated.cve_records if rated is not None else None,
        )
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
            severity=assessed.severity,
            severity_source=assessed.source,
            severity_detail=assessed.detail,
            matches=tuple(ordered),
            evidence=evidence,
            cvss=enrich.published_scores(assessed.ratings, seen),
            kev=enrich.kev(cves, self.source.kev),
            epss=enrich.epss(cves, self.source.epss),
            summary=_summary(first),
            ratings=assessed.ratings,
        )


def match(inventory: Inventory, source: AdvisorySource) -> FindingsReport:
    """Every finding for ``inventory`` under the snapshot ``source`` answers for."""
    return Matcher(source).match(inventory)
