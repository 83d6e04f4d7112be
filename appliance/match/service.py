"""Matching against ``knowledge.db``: the store-backed advisory source and one entry point.

The matcher stays pure; this module is the edge that reads the store. A source is pinned to
one snapshot (the active one unless named), so a scan and its replay read the same records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from appliance.ecosystems import normalize_name
from appliance.match.matcher import match
from appliance.match.model import FindingsReport, Inventory, Reachability, ReachabilityFact
from appliance.match.source import Advisory, Probe
from appliance.scanner.result import ScanResult
from appliance.scanner.service import collection_paused
from appliance.store.knowledge import KnowledgeError, KnowledgeStore
from bundles.digest import Digest
from bundles.snapshot import DatasetType


class NoKnowledge(KnowledgeError):
    """There is no snapshot to match against."""


class KnowledgeAdvisories:
    """An :class:`~appliance.match.source.AdvisorySource` reading one snapshot of the store.

    Answers are memoized per source object: one scan asks for each package once, and the
    store does not change under a pinned snapshot. It is :class:`Prefetching`: the matcher
    hands it the whole inventory's packages, then the CVEs of every hit, and each batch costs
    a few queries instead of one per package or CVE.
    """

    def __init__(self, store: KnowledgeStore, snapshot: Digest | None = None) -> None:
        pinned = snapshot or store.active()
        if pinned is None:
            raise NoKnowledge(
                "the knowledge store has no active snapshot",
                hint="import a knowledge bundle with 'stella import' first",
            )
        if not store.has_snapshot(pinned):
            raise NoKnowledge(
                f"snapshot {pinned} is not in the knowledge store",
                hint="list the imported snapshots with 'stella snapshot list'",
            )
        self.store = store
        self._snapshot = pinned
        self._snapshot_text = str(pinned)  # asked for once per finding
        self._advisories: dict[tuple[str, str], list[Advisory]] = {}
        self._tables: dict[DatasetType, dict[str, Mapping[str, Any] | None]] = {
            DatasetType.KEV: {},
            DatasetType.EPSS: {},
        }
        self._cve: dict[str, list[Mapping[str, Any]]] = {}
        self._ghsa: dict[str, list[Mapping[str, Any]]] = {}
        self._reach: dict[str, list[Mapping[str, Any]]] = {}
        self._ecosystems: frozenset[str] | None = None

    @property
    def snapshot(self) -> str | None:
        return self._snapshot_text

    def prefetch(self, packages: Iterable[tuple[str, str]]) -> None:
        """Load the records of every package not loaded yet, parsing each distinct line
        once; its digest is hashed from the line only if a finding cites it."""
        missing = {key for key in packages if key not in self._advisories}
        if not missing:
            return
        parsed: dict[int, Advisory] = {}  # a record listed under several packages: once
        found = self.store.advisory_lines(missing, self._snapshot)
        for key in missing:
            advisories = []
            for _, record, line in found.get(key, ()):
                advisory = parsed.get(record)
                if advisory is None:
                    advisory = parsed[record] = Advisory(orjson.loads(line), line=line)
                advisories.append(advisory)
            self._advisories[key] = advisories

    def prefetch_cves(self, cves: Iterable[str]) -> None:
        """Load the KEV and EPSS rows, the ``cve`` table records and the aliasing GitHub
        advisories of every CVE not loaded yet (None or empty when it has none)."""
        wanted = set(cves)
        for dtype, table in self._tables.items():
            missing = wanted.difference(table)
            if missing:
                lines = self.store.lookup_lines(dtype, missing, self._snapshot)
                for cve in missing:
                    line = lines.get(cve)
                    table[cve] = orjson.loads(line) if line is not None else None
        missing = wanted.difference(self._cve)
        if missing:
            found = self.store.lookup_all(DatasetType.CVE, missing, self._snapshot)
            for cve in missing:
                self._cve[cve] = [orjson.loads(line) for line in found.get(cve, ())]
        missing = wanted.difference(self._ghsa)
        if missing:
            aliased = self.store.alias_lines(missing, self._snapshot)
            for cve in missing:
                self._ghsa[cve] = [orjson.loads(line) for _, line in aliased.get(cve, ())]

    def cve_records(self, cve: str) -> Sequence[Mapping[str, Any]]:
        if cve not in self._cve:
            self.prefetch_cves([cve])
        return self._cve[cve]

    def ghsa_records(self, cve: str) -> Sequence[Mapping[str, Any]]:
        if cve not in self._ghsa:
            self.prefetch_cves([cve])
        return self._ghsa[cve]

    def advisories(self, ecosystem: str, name: str) -> Sequence[Advisory]:
        key = (ecosystem, name)
        if key not in self._advisories:
            self.prefetch([key])
        return self._advisories[key]

    def _table(self, dtype: DatasetType, cve: str) -> Mapping[str, Any] | None:
        table = self._tables[dtype]
        if cve not in table:
            self.prefetch_cves([cve])
        return table[cve]

    def kev(self, cve: str) -> Mapping[str, Any] | None:
        return self._table(DatasetType.KEV, cve)

    def reach_records(self, ids: Iterable[str]) -> Sequence[Mapping[str, Any]]:
        """The curated reachability records (``reachability`` datasets) of any of ``ids``."""
        wanted = sorted(set(ids))
        missing = [i for i in wanted if i not in self._reach]
        if missing:
            found = self.store.lookup_all(DatasetType.REACHABILITY, missing, self._snapshot)
            for rid in missing:
                self._reach[rid] = [orjson.loads(line) for line in found.get(rid, ())]
        return [r for i in wanted for r in self._reach[i]]

    def epss(self, cve: str) -> Mapping[str, Any] | None:
        return self._table(DatasetType.EPSS, cve)

    def ecosystems(self) -> frozenset[str] | None:
        if self._ecosystems is None:
            self._ecosystems = self.store.ecosystems(self._snapshot)
        return self._ecosystems


class RecordingAdvisories:
    """An advisory source answering from another one (a memoizing one, shared by every image
    of a run: each package's records are read and parsed once for all of them) and recording
    what the matcher asked of it for this one inventory: the (ecosystem, normalized name)
    package keys, what each key's records were compared with (:class:`Probe`: the version,
    distribution rules, module stream) and the CVE ids it read KEV, EPSS and ratings for.
    Those are what a verdict depends on in the knowledge, so the incremental rescan indexes
    them (appliance/rescan.py).
    """

    def __init__(self, inner: KnowledgeAdvisories) -> None:
        self.inner = inner
        self.keys: set[tuple[str, str]] = set()
        self.cves: set[str] = set()
        self.probes: set[Probe] = set()

    def probed(self, probes: Iterable[Probe]) -> None:
        self.probes.update(probes)

    @property
    def snapshot(self) -> str | None:
        return self.inner.snapshot

    def _key(self, ecosystem: str, name: str) -> None:
        self.keys.add((ecosystem, normalize_name(ecosystem, name)))

    def prefetch(self, packages: Iterable[tuple[str, str]]) -> None:
        asked = list(packages)
        for ecosystem, name in asked:
            self._key(ecosystem, name)
        self.inner.prefetch(asked)

    def advisories(self, ecosystem: str, name: str) -> Sequence[Advisory]:
        self._key(ecosystem, name)
        return self.inner.advisories(ecosystem, name)

    def prefetch_cves(self, cves: Iterable[str]) -> None:
        asked = list(cves)
        self.cves.update(asked)
        self.inner.prefetch_cves(asked)

    def cve_records(self, cve: str) -> Sequence[Mapping[str, Any]]:
        self.cves.add(cve)
        return self.inner.cve_records(cve)

    def ghsa_records(self, cve: str) -> Sequence[Mapping[str, Any]]:
        self.cves.add(cve)
        return self.inner.ghsa_records(cve)

    def kev(self, cve: str) -> Mapping[str, Any] | None:
        self.cves.add(cve)
        return self.inner.kev(cve)

    def epss(self, cve: str) -> Mapping[str, Any] | None:
        self.cves.add(cve)
        return self.inner.epss(cve)

    def ecosystems(self) -> frozenset[str] | None:
        return self.inner.ecosystems()

    def reach_records(self, ids: Iterable[str]) -> Sequence[Mapping[str, Any]]:
        """The curated reachability records, as the inner source has them: a rescan judges
        Python findings with the same curated data as ``stella gate`` (a change of those
        datasets re-gates every image, appliance/store/delta.py)."""
        return self.inner.reach_records(ids)


def match_inventory(
    store: KnowledgeStore, inventory: Inventory, snapshot: Digest | None = None
) -> FindingsReport:
    """Findings for ``inventory`` under ``snapshot`` (default: the active snapshot).

    The cyclic garbage collector is paused for the match, as for a scan: matching allocates
    many short-lived records and nothing in it forms cycles worth collecting mid-way; pausing
    saves about a quarter of a cold match."""
    with collection_paused():
        return match(inventory, KnowledgeAdvisories(store, snapshot))


def inventory_of(scan: ScanResult) -> Inventory:
    """What to match, from a scan: packages, OS, the layer of each file, and the components
    the entrypoint trace reaches (the others stay ``unknown``, never ``present-not-reached``)."""
    file_layers = {
        e.path: str(e.layer_digest)
        for found in scan.packages
        for e in found.evidence
        if e.layer_digest is not None
    }
    reach: dict[str, list[str]] = {}
    for r in scan.entry_trace.reachable:
        reach.setdefault(r.purl, []).extend(r.chain[:1] or (r.file,))
    return Inventory.of(
        [found.package for found in scan.packages],
        scan.analysis.os,
        file_layers=file_layers,
        reachability=[
            ReachabilityFact(purl, Reachability.REACHABLE, tuple(sorted(set(chain))))
            for purl, chain in reach.items()
        ],
        target=scan.ref,
        python=scan.entry_trace.python,
    )
